"""Tests of bench/floor: the model of a first epoch without the job's order."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOOR = os.path.join(ROOT, "bench", "floor")
sys.path.insert(0, FLOOR)

from model import MiB, Setup, simulate, sweep  # noqa: E402


def xfer(nbytes, mibps):
    return nbytes / (mibps * MiB)


def test_one_reader_without_prefetch_pays_latency_and_transfer_per_file():
    # One worker, one file per batch, nothing else to do: the epoch is the reads, one after another.
    s = Setup(files=50, file_bytes=64 * 1024, latency_s=0.002, link_mibps=16, workers=1, batch=1,
              prefetch_factor=1, item_s=0.0, batch_s=0.0)
    o = simulate(s, "none")
    per_file = 0.002 + xfer(64 * 1024, 16)
    assert (o.cold_reads, o.batches, o.prefetched) == (50, 50, 0)
    assert o.epoch_s == pytest.approx(50 * per_file)
    assert o.stall_s == pytest.approx(50 * per_file)
    assert o.cold_wait_s == pytest.approx(50 * per_file)


def test_a_read_in_two_round_trips_pays_the_latency_twice():
    s = Setup(files=40, file_bytes=64 * 1024, latency_s=0.002, link_mibps=16, workers=1, batch=1,
              prefetch_factor=1, item_s=0.0, batch_s=0.0, round_trips=2)
    assert simulate(s, "none").epoch_s == pytest.approx(40 * (2 * 0.002 + xfer(64 * 1024, 16)))


def test_a_second_round_trip_is_sent_when_the_first_returns():
    # Two readers of one file each, two requests per read, nothing else: A's first request
    # crosses, then B's; A's second arrives when its first returns, so it queues behind B's first.
    latency, nbytes, mibps = 0.002, 64 * 1024, 16
    half = xfer(nbytes / 2, mibps)
    s = Setup(files=2, file_bytes=nbytes, latency_s=latency, link_mibps=mibps, workers=2, batch=1,
              prefetch_factor=1, item_s=0.0, batch_s=0.0, round_trips=2)
    assert simulate(s, "none").epoch_s == pytest.approx(2 * latency + 3 * half)


@pytest.mark.parametrize("workers,prefetch_factor", [(1, 1), (2, 2), (3, 1)])
def test_no_more_batches_are_outstanding_than_the_loader_allows(workers, prefetch_factor):
    # Loading is instant and training slow, so the workers run as far ahead as allowed.
    s = Setup(files=64, batch=4, workers=workers, prefetch_factor=prefetch_factor, latency_s=0.0,
              link_mibps=1e9, item_s=0.0, batch_s=1.0)
    o = simulate(s, "none")
    assert o.most_outstanding == workers * prefetch_factor
    assert o.batches == 16


def test_prefetch_alone_keeps_the_link_full_when_paced_and_pays_each_latency_with_one_read_at_a_time():
    n, size, mibps, latency = 200, 100 * 1024, 30.0, 0.003
    # The job starts after the prefetcher is done, so nothing else is on the link.
    base = dict(files=n, file_bytes=size, link_mibps=mibps, latency_s=latency, head_start_s=60.0)
    assert simulate(Setup(**base), "paced").prefetch_done_s == pytest.approx(latency + n * xfer(size, mibps))
    # Alone on the link, its own reads are all there is: pacing by them is as good.
    assert simulate(Setup(**base), "own").prefetch_done_s == pytest.approx(latency + n * xfer(size, mibps))
    assert simulate(Setup(**base), "window:1").prefetch_done_s == pytest.approx(n * (latency + xfer(size, mibps)))


def test_the_jobs_reads_queue_behind_one_prefetch_at_most_when_paced_and_none_with_first():
    # One reader and a link kept full by prefetch: with `first` each cold read costs its
    # latency and transfer, paced at most one prefetch's transfer more; with a window of
    # four it also waits for the prefetches queued ahead.
    s = Setup(files=400, workers=1, batch=1, prefetch_factor=1, item_s=0.0, batch_s=0.0)
    alone = s.latency_s + xfer(s.file_bytes, s.link_mibps)
    first = simulate(s, "first")
    assert first.cold_reads > 100
    assert first.cold_wait_s <= (first.cold_reads + first.waited_on_prefetch) * alone + 1e-9
    paced = simulate(s, "paced")
    assert paced.longest_cold_wait_s <= alone + xfer(s.file_bytes, s.link_mibps) + 1e-9
    window = simulate(s, "window:4")
    assert window.cold_wait_s > 1.5 * (window.cold_reads + window.waited_on_prefetch) * alone


def test_a_head_start_long_enough_for_the_data_set_leaves_only_the_loaders_own_work():
    # Long enough for one read at a time, each paying the latency: every policy gets all in.
    s = Setup(files=600, head_start_s=600 * (0.003 + xfer(106_086, 30)) + 1)
    warm = simulate(Setup(files=600, latency_s=0.0, link_mibps=1e9), "none")
    for policy in ("window:1", "window:2", "paced", "first"):
        o = simulate(s, policy)
        assert (o.cold_reads, o.prefetched) == (0, 600), policy
        assert o.stall_s == pytest.approx(warm.stall_s, abs=0.01), policy


def test_every_file_is_read_once_and_every_batch_delivered():
    s = Setup(files=800, head_start_s=-0.3)
    for policy, o in sweep(s).items():
        assert o.batches == s.batches, policy
        if policy == "first":
            # The job may read a file itself while its prefetch is still crossing.
            assert o.cold_reads + o.prefetched >= s.files
        else:
            assert o.cold_reads + o.prefetched == s.files, policy
    assert sweep(s, ["none"])["none"].cold_reads == s.files


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_without_the_order_the_capped_first_epoch_stays_above_the_link_bound(seed):
    # S1-cap's job at the quick size: prefetch helps, pacing more, the job's priority
    # most, and not even that comes within 1.1 x the bound from a cold start.
    s = Setup(files=1500, seed=seed)
    o = sweep(s, ["none", "window:2", "own", "paced", "first"])
    assert o["first"].stall_s < o["paced"].stall_s < o["window:2"].stall_s < o["none"].stall_s
    assert o["first"].stall_s > 1.1 * s.link_bound_s
    # Paced by its own reads alone, it does not back off for the job's: no better than
    # the window.
    assert o["own"].stall_s >= o["window:2"].stall_s


def test_the_link_bound_is_the_transfer_less_the_jobs_work():
    s = Setup(files=1600, file_bytes=1024 * 1024, link_mibps=100, batch=16, batch_s=0.05)
    assert s.link_bound_s == pytest.approx(16.0 - 100 * 0.05)
    assert Setup(files=16, batch=16, batch_s=10.0).link_bound_s == 0.0


def test_an_unknown_policy_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match="none, window:K"):
        simulate(Setup(files=10), "window:0")
    with pytest.raises(ValueError, match="'lifo'"):
        simulate(Setup(files=10), "lifo")


def test_the_command_prints_the_table_and_refuses_bad_values():
    run = os.path.join(FLOOR, "run")
    ok = subprocess.run([sys.executable, run, "--files", "300", "--policies", "none,paced"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    rows = [line for line in ok.stdout.splitlines() if line.startswith("| none") or line.startswith("| paced")]
    assert len(rows) == 2
    bad = subprocess.run([sys.executable, run, "--link-mibps", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "--link-mibps must be above 0, got 0" in bad.stderr
