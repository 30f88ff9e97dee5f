"""Tests of the benchmark harness's pieces (bench/harness), on tiny data sets.

The loader tests need nothing special. The cgroup, mount and clean-up tests need
root and (for the mounts) /dev/fuse; without them they are skipped with the reason.
The mounts also need fusermount3 and the built slowfs, which scripts/setup provides:
without them they fail. The last test runs bench/run end to end on 48 files and
also needs the gofetch release build.
"""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)

from harness import cgroups, loader, pagecache  # noqa: E402
from harness.cleanup import Cleanup  # noqa: E402
from harness.datasets import ensure_images  # noqa: E402


def _skip(reason):
    print(f"skipped: {reason}", file=sys.stderr)
    pytest.skip(reason)


def need_root():
    if os.geteuid() != 0:
        _skip("needs root (cgroups, drop_caches, mounts)")
    why = cgroups.available("memory")
    if why:
        _skip(why)


def need_fuse():
    need_root()
    if not os.path.exists("/dev/fuse"):
        _skip("no /dev/fuse")
    from harness.storage import fuse_unavailable

    # The rest (fusermount3, the built slowfs) is what scripts/setup provides: missing, a failure.
    why = fuse_unavailable()
    assert why is None, f"{why}: scripts/setup installs fuse3 and builds slowfs (scripts/build)"


# ---------------------------------------------------------------------------
# the loader, on a fake slow source


class SlowSource:
    """Map-style source whose samples cost `delay` seconds each; a batch returns its indices."""

    iterable = False

    def __init__(self, n, delay, jitter=None):
        self.n = n
        self.delay = delay
        self.jitter = jitter or {}

    def __len__(self):
        return self.n

    def load_batch(self, indices):
        time.sleep(self.delay * len(indices) + self.jitter.get(indices[0], 0.0))
        return len(indices), 0, tuple(indices)


def make_loader(source, batch_size, workers, order="sequential", prefetch_factor=2):
    sampler = loader.EpochSampler(len(source), order, seed=1)
    return loader.DataLoader(source, batch_size, workers, prefetch_factor, sampler)


def test_stall_without_workers_is_the_load_time():
    # 4 batches of 5 samples at 10 ms: every batch is loaded in the main loop.
    dl = make_loader(SlowSource(20, 0.010), 5, 0)
    (epoch,) = loader.measure_epochs(dl, 1, step_s=0.0)
    assert epoch["batches"] == 4 and epoch["samples"] == 20
    assert 0.19 <= epoch["stall_s"] <= 0.40
    assert epoch["wall_s"] >= epoch["stall_s"]
    assert all(0.045 <= s <= 0.12 for s in epoch["stalls_s"])


def test_workers_hide_the_load_time_behind_the_step():
    # A batch costs 40 ms per worker; 2 workers and a 60 ms step keep ahead after the first batch.
    dl = make_loader(SlowSource(48, 0.010), 4, 2)
    (epoch,) = loader.measure_epochs(dl, 1, step_s=0.060)
    assert epoch["batches"] == 12
    assert epoch["first_batch_stall_s"] >= 0.035
    later = sum(epoch["stalls_s"][1:])
    assert later < 0.1, epoch["stalls_s"]
    assert epoch["max_outstanding_batches"] == 4  # prefetch_factor 2 x 2 workers
    # And without the step, the stalls are the loading itself (2 workers in parallel).
    (busy,) = loader.measure_epochs(make_loader(SlowSource(48, 0.010), 4, 2), 1, step_s=0.0)
    assert 0.2 <= busy["stall_s"] <= 0.6


def test_batches_come_in_order_round_robin_despite_out_of_order_completion():
    # Batch 0 (indices 0-3) is slow: later batches finish first and must wait.
    source = SlowSource(40, 0.001, jitter={0: 0.15})
    dl = make_loader(source, 4, 3)
    it = iter(dl)
    got = [batch[2] for batch in it]
    it.close()
    assert [i for b in got for i in b] == list(range(40))
    assert it.dispatched_to == [i % 3 for i in range(10)]
    assert it.max_outstanding == 6


def test_sampler_orders():
    shuffled = loader.EpochSampler(100, "shuffle", seed=3)
    e1, e2 = list(shuffled), list(shuffled)
    assert sorted(e1) == list(range(100)) and e1 != e2
    fixed = loader.EpochSampler(100, "fixed", seed=3)
    f1, f2 = list(fixed), list(fixed)
    assert f1 == f2 and f1 != list(range(100))
    assert loader.epoch_order(5, "sequential", 0, 7) == [0, 1, 2, 3, 4]


def _tar(path, sizes):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, size in enumerate(sizes):
            info = tarfile.TarInfo(f"r{i:03d}.bin")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes([i % 251]) * size))


def test_tar_shards_each_worker_its_own_shard(tmp_path):
    sizes = [[70_000, 1, 300_000, 5], [123_456] * 7, [512] * 3]
    for k, s in enumerate(sizes):
        _tar(tmp_path / f"shard-{k}.tar", s)
    source = loader.TarShardSource(str(tmp_path), [f"shard-{k}.tar" for k in range(3)], read_size=64 << 10)
    assert [len(r) for r in source.records(str(tmp_path / "shard-0.tar"))] == sizes[0]
    for workers in (0, 2):
        dl = loader.DataLoader(source, 3, workers, 2, None)
        (epoch,) = loader.measure_epochs(dl, 1, step_s=0.0)
        assert epoch["samples"] == sum(len(s) for s in sizes)
        assert epoch["decoded_bytes"] == sum(sum(s) for s in sizes)
    # Worker 0 reads shards 0 and 2, worker 1 shard 1.
    assert [b[0] for b in source.worker_batches(0, 2, 3)] == [3, 3, 1]
    assert [b[0] for b in source.worker_batches(1, 2, 3)] == [3, 3, 1]


def test_worker_error_is_reported():
    class Broken(SlowSource):
        def load_batch(self, indices):
            raise OSError("disk on fire")

    it = iter(make_loader(Broken(8, 0), 4, 2))
    with pytest.raises(loader.WorkerError, match="disk on fire"):
        next(it)
    it.close()


# ---------------------------------------------------------------------------
# cgroups, mounts and clean-up (root)


def _test_group(name):
    return cgroups.MemoryCgroup(f"{cgroups.harness_group_name()}-test-{name}")


def test_cgroup_create_limit_enter_remove():
    need_root()
    group = _test_group("cg").create()
    try:
        group.set_limit(64 << 20)
        assert group.limit() == 64 << 20
        child = group.child("job").create()
        proc = subprocess.Popen(cgroups.wrapper_command([child], ["sleep", "30"]))
        deadline = time.monotonic() + 5
        while proc.pid not in group.procs() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.pid in child.procs() and proc.pid in group.procs()
        figures = group.figures()
        assert figures["limit_bytes"] == 64 << 20 and figures["max_usage_bytes"] > 0
    finally:
        group.remove()
    assert not os.path.exists(group.path)
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_remove_stale_cgroup_of_a_dead_harness():
    need_root()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = cgroups.MemoryCgroup(cgroups.harness_group_name(dead.pid)).create()
    stale.child("x").create()
    cgroups.remove_stale(log=lambda s: None)
    assert not os.path.exists(stale.path)


def _tiny_images(tmp_path, count=12):
    return ensure_images(str(tmp_path / "data"), count, classes=3, log=lambda s: None)


def test_cleanup_after_an_exception_leaves_no_mount_cgroup_or_process(tmp_path):
    need_fuse()
    from harness.storage import SlowStorage, _slowmount_module

    ds = _tiny_images(tmp_path)
    seen = {}
    with pytest.raises(RuntimeError, match="boom"):
        with Cleanup(log=lambda s: None) as cleanup:
            st = SlowStorage(ds, latency_ms=1).__enter__()
            cleanup.push("unmount", st.close)
            group = _test_group("exc").create()
            cleanup.push("remove cgroup", group.remove)
            proc = subprocess.Popen(cgroups.wrapper_command([group], ["sleep", "60"]))
            seen.update(path=st.path, group=group.path, pid=proc.pid)
            deadline = time.monotonic() + 5  # a member, so clean-up must kill it (not merely outrun it)
            while proc.pid not in group.procs() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proc.pid in group.procs()
            with open(st.files()[0], "rb") as f:  # the mount works
                assert len(f.read()) == ds.sizes[0]
            raise RuntimeError("boom")
    assert not _slowmount_module().is_slowfs_mounted(seen["path"])
    assert not os.path.exists(seen["group"])
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_sigterm_cleans_up(tmp_path):
    need_fuse()
    ds = _tiny_images(tmp_path)
    script = textwrap.dedent(f"""
        import os, subprocess, sys, time
        sys.path.insert(0, {BENCH!r})
        from harness import cgroups
        from harness.cleanup import Cleanup
        from harness.datasets import ensure_images
        from harness.storage import SlowStorage
        ds = ensure_images({str(tmp_path / "data")!r}, 12, classes=3, log=lambda s: None)
        with Cleanup() as cleanup:
            with SlowStorage(ds, latency_ms=1) as st:
                group = cgroups.MemoryCgroup(cgroups.harness_group_name() + "-sig").create()
                cleanup.push("remove cgroup", group.remove)
                proc = subprocess.Popen(cgroups.wrapper_command([group], ["sleep", "60"]))
                print(st.path, group.path, proc.pid, flush=True)
                time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    path, group, pid = child.stdout.readline().split()
    assert os.path.isdir(group)
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=20)
    from harness.storage import _slowmount_module

    assert not _slowmount_module().is_slowfs_mounted(path)
    assert not os.path.exists(group)
    assert _dead(int(pid))


def _dead(pid, timeout=5.0):
    """Gone, or a zombie (its parent died; init may be slow to reap it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_drop_and_residency(tmp_path):
    need_root()
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(1 << 20))
    pagecache.prewarm([str(path)])
    assert pagecache.residency([str(path)]) > 0.99
    pagecache.drop([str(path)])
    assert pagecache.residency([str(path)]) < 0.05


# ---------------------------------------------------------------------------
# bench/run, end to end on 48 files


def test_bench_run_end_to_end(tmp_path):
    need_fuse()
    from harness.main import find_gofetch

    # The release build when there is one, else the debug build scripts/test made:
    # the harness is under test here, not gofetch's speed.
    gofetch = find_gofetch(None)
    if gofetch is None or not os.path.exists(os.path.join(os.path.dirname(gofetch), "libgofetch_preload.so")):
        bin_dir = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.strip()
        gofetch = os.path.join(bin_dir, "gofetch")
    assert os.path.exists(os.path.join(os.path.dirname(gofetch), "libgofetch_preload.so")), "run scripts/build first"
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, os.path.join(BENCH, "run"), "--scenarios", "S4", "--modes", "no-prefetch,gofetch,warm",
         "--image-files", "48", "--epochs", "1", "--latency-ms", "2", "--gofetch", gofetch,
         "--data-dir", str(tmp_path / "data"), "--out-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # The harness is under test, not the build: scripts/test has built everything already.
        env=dict(os.environ, GOFETCH_BENCH_NO_BUILD="1"))
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output
    results = json.loads((out / "results.json").read_text())
    modes = results["scenarios"]["S4"]["modes"]
    assert {m: modes[m]["status"] for m in modes} == {"no-prefetch": "ok", "gofetch": "ok", "warm": "ok"}
    assert modes["no-prefetch"]["stall_ratio"] == 1.0
    assert modes["warm"]["resident_at_start"] > 0.99
    assert modes["no-prefetch"]["resident_at_start"] < 0.05
    assert modes["gofetch"]["gofetch"]["events"] > 0
    assert (out / modes["gofetch"]["gofetch_summary_file"]).exists()
    assert results["scenarios"]["S4"]["memory_limit_bytes"]["gofetch"] > 0
    assert "| S4 | gofetch |" in (out / "table.md").read_text()
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{cgroups.harness_group_name(run.pid)}"), "cgroup left behind"
    with open("/proc/self/mounts") as f:
        assert str(tmp_path) not in f.read()


# ---------------------------------------------------------------------------
# the hook check and the report


def test_hook_check_names_what_is_missing(tmp_path):
    from harness.main import check_hook

    (tmp_path / "gofetch").mkdir()
    (tmp_path / "gofetch" / "__init__.py").write_text("")
    assert "has no lookahead" in check_hook(sys.executable, str(tmp_path))
    (tmp_path / "gofetch" / "__init__.py").write_text("def lookahead(loader, path_of=None):\n    return loader\n")
    assert check_hook(sys.executable, str(tmp_path)) is None
    assert "No module named" in check_hook(sys.executable, str(tmp_path / "nowhere"))


def _epochs(stalls, walls):
    return [{"epoch": i + 1, "stall_s": s, "wall_s": w} for i, (s, w) in enumerate(zip(stalls, walls))]


def test_report_ratios_goals_and_unavailable_rows(tmp_path):
    from harness import report

    ok = lambda stalls, walls, **kw: {"status": "ok", "epochs": _epochs(stalls, walls), **kw}  # noqa: E731
    results = {
        "meta": {"quick": True, "storage_kind": "fuse", "storage": {"latency_ms": 4}, "cpus": 2, "runtime_s": 1},
        "scenarios": {
            "S2": {"title": "t", "params": {}, "dataset": {}, "modes": {
                "no-prefetch": ok([10, 10], [12, 12]), "loader": ok([3, 3], [5, 5]),
                "gofetch": ok([3, 0.5], [5, 3]), "warm": ok([0.1, 0.1], [3, 3])}},
            "S1": {"title": "t", "params": {}, "dataset": {}, "modes": {
                "gofetch": {"mode": "gofetch", "status": "n/a", "reason": "hook not available yet: no lookahead"}}},
        },
    }
    table = report.write(results, str(tmp_path))
    s2 = results["scenarios"]["S2"]
    assert s2["modes"]["gofetch"]["stall_ratio"] == pytest.approx(3.5 / 20)
    assert s2["modes"]["gofetch"]["epoch_vs_warm"] == pytest.approx(8 / 6)
    goals = {g["goal"]: g["met"] for g in s2["goals"]}
    assert goals["stall ratio from epoch 2 <= 0.10"] is True  # 0.5 / 10
    assert goals["stall below the loader's own prefetching (gofetch/loader < 1)"] is True
    assert results["scenarios"]["S1"]["goals"][0]["met"] is None
    assert "| S1 | gofetch | n/a |" in table and "hook not available yet" in table
    assert json.loads((tmp_path / "results.json").read_text())["scenarios"]["S2"]["goals"]
