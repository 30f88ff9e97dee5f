"""Tests of bench/floor: the model of a first epoch without the job's order."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOOR = os.path.join(ROOT, "bench", "floor")
sys.path.insert(0, FLOOR)

from model import MiB, Setup, simulate, sweep  # noqa: E402


def test_one_reader_without_prefetch_pays_latency_and_transfer_per_file():
    # One worker, one file per batch, nothing else to do: the epoch is the reads, one after another.
    s = Setup(files=50, file_bytes=64 * 1024, latency_s=0.002, link_mibps=16, workers=1, batch=1,
              prefetch_factor=1, item_s=0.0, batch_s=0.0)
    o = simulate(s, "none")
    per_file = 0.002 + 64 * 1024 / (16 * MiB)
    assert o.cold_reads == 50
    assert o.epoch_s == pytest.approx(50 * per_file)
    assert o.stall_s == pytest.approx(50 * per_file)


def test_a_head_start_long_enough_for_the_data_set_leaves_only_the_loaders_own_work():
    # Long enough for one read at a time, each paying the latency: every policy gets all in.
    s = Setup(files=600, head_start_s=600 * (0.003 + 103 * 1024 / (30 * MiB)) + 1)
    warm = simulate(Setup(files=600, latency_s=0.0, link_mibps=1e9), "none")
    for policy in ("window:1", "window:2", "paced", "first"):
        o = simulate(s, policy)
        assert o.cold_reads == 0, policy
        assert o.stall_s == pytest.approx(warm.stall_s, abs=0.01), policy


def test_every_file_is_read_once_by_the_job_or_the_prefetcher():
    s = Setup(files=800)
    for policy, o in sweep(s).items():
        assert 0 <= o.cold_reads <= s.files, policy
        if policy == "none":
            assert o.cold_reads == s.files


def test_without_the_order_the_capped_first_epoch_stays_above_the_link_bound():
    # S1-cap's job at the quick size: prefetch helps, the job's priority helps more, and
    # not even that reaches the bound from a cold start.
    s = Setup(files=1500)
    o = sweep(s, ["none", "window:2", "paced", "first"])
    assert o["first"].stall_s < o["paced"].stall_s < o["window:2"].stall_s < o["none"].stall_s
    assert o["first"].stall_s > 1.1 * s.link_bound_s


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
