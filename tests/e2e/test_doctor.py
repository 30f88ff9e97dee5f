"""gofetch doctor: each finding matches the machine, checked independently; the
fix is given for what is missing; a missing shim fails it."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from test_accounting import needs_fuse

MEMORY = "/sys/fs/cgroup/memory"


def doctor(gofetch_bin, *args, env=None, prefix=()):
    result = subprocess.run([*prefix, gofetch_bin, "doctor", "--json", *args], capture_output=True, text=True, timeout=60,
                            env=env, cwd="/")
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)}


def test_findings_match_the_machine(tmp_path, gofetch_bin):
    code, checks = doctor(gofetch_bin, str(tmp_path))
    assert code == 0
    assert checks["root"]["status"] == ("ok" if os.geteuid() == 0 else "note")
    assert checks["kernel"]["found"] == f"Linux {os.uname().release}"
    assert checks["preload shim"]["found"] == os.path.join(os.path.dirname(gofetch_bin), "libgofetch_preload.so")
    assert checks["Python client"]["found"].startswith(os.path.join(ROOT, "python"))
    assert checks["cachestat"]["status"] == "ok"  # this kernel has it (6.5+); the accounting tests use it
    btf = os.path.exists("/sys/kernel/btf/vmlinux")
    assert (checks["ebpf source"]["status"] == "missing") == (not btf)
    assert checks["FUSE"]["status"] == ("ok" if os.path.exists("/dev/fuse") else "note")
    assert checks["memory pressure"]["status"] == ("ok" if os.path.exists("/proc/pressure/memory") else "note")
    assert "block device" in checks["data's storage"]["found"]
    for check in checks.values():
        assert check["status"] == "ok" or check["fix"], check  # what is not ok says what to do


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(MEMORY, os.W_OK), reason="needs root and the cgroup v1 memory controller")
def test_the_memory_cgroup_and_its_limit(tmp_path, gofetch_bin):
    group = os.path.join(MEMORY, f"gofetch-test-doctor-{os.getpid()}")
    os.mkdir(group)
    try:
        with open(os.path.join(group, "memory.limit_in_bytes"), "w") as f:
            f.write(str(300 << 20))
        _, checks = doctor(gofetch_bin, prefix=["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', group])
    finally:
        os.rmdir(group)
    found = checks["memory cgroup"]["found"]
    assert found.startswith(f"v1 {group}") and "limit 300.0 MiB" in found, found


@needs_fuse
def test_a_fuse_data_set_and_a_missing_shim(tmp_path, gofetch_bin):
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    source = tmp_path / "source"
    source.mkdir()
    (source / "a.bin").write_bytes(b"x" * 4096)
    with SlowMount(source, latency_ms=1) as mount:
        _, checks = doctor(gofetch_bin, mount.path)
    assert "FUSE or a network file system" in checks["data's storage"]["found"]
    # Without its shim an installed copy says what is missing, with the fix, and fails.
    alone = tmp_path / "bin"
    alone.mkdir()
    shutil.copy(gofetch_bin, alone / "gofetch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOFETCH_")}
    code, checks = doctor(str(alone / "gofetch"), env=env)
    assert code == 1
    assert checks["preload shim"]["status"] == "missing" and "scripts/build" in checks["preload shim"]["fix"]
