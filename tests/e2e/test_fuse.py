"""`gofetch run` over the slow-storage emulator (FUSE): warming works where the mount
keeps its page cache, and is detected as futile where every open drops it."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, make_files
from test_run import JOB, evict, resident, warmed

sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))

if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip("FUSE tests need /dev/fuse and root (mounting a FUSE file system)", allow_module_level=True)

from mount import SlowMount  # noqa: E402


def run_over_mount(tmp_path, gofetch_bin, python_bin, keep_cache):
    source = tmp_path / "source"
    make_files(str(source), 60, seed=11, min_size=60_000, max_size=140_000)
    with SlowMount(source, latency_ms=5, keep_cache=keep_cache) as mount:
        order = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        probe = tmp_path / "probe"
        probe.mkdir()
        for i, path in enumerate(order):
            os.symlink(path, probe / str(i))
        config = tmp_path / "config.yaml"
        config.write_text("trace:\n  exclude_prefixes: [/proc, /sys, /dev, /usr, /lib, /lib64, /etc, /run, %s]\n" % probe)
        evict(order)
        script = tmp_path / "job.py"
        script.write_text(JOB)
        out = tmp_path / "before.json"
        result = subprocess.run(
            [gofetch_bin, "run", "--config", str(config), "--db", str(tmp_path / "t.db"), "--json", "--",
             python_bin, str(script), ",".join(order), str(probe), str(out)],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr[result.stderr.index("{"):])["summary"]["prefetch"]
    return json.load(open(out)), summary


def test_warming_through_a_mount_that_keeps_its_cache(tmp_path, gofetch_bin, python_bin):
    before, summary = run_over_mount(tmp_path, gofetch_bin, python_bin, keep_cache=True)
    warm = [warmed(probe) for probe in before]
    print(f"FUSE keep_cache: resident before open {sum(map(resident, before))}/{len(warm)}, "
          f"warmed then reclaimed: {sum(warm) - sum(map(resident, before))}; prefetch: {summary}")
    assert summary["volatileMounts"] == 0
    assert sum(warm[10:]) >= 0.9 * len(warm[10:])


def test_a_mount_that_drops_its_cache_at_open_is_detected(tmp_path, gofetch_bin, python_bin):
    before, summary = run_over_mount(tmp_path, gofetch_bin, python_bin, keep_cache=False)
    print(f"FUSE without keep_cache: resident before open {sum(map(resident, before))}/{len(before)}; prefetch: {summary}")
    assert summary["volatileMounts"] == 1
    assert summary["cannotLast"] >= 1
    assert summary["completed"] <= 1  # nothing is warmed in vain after the first check
