"""Slow storage the benchmark's data set is read through.

`fuse` (default): bench/emulator's slowfs, a FUSE mirror of the data folder
where every read request the kernel sends costs `latency_ms` (concurrent
requests overlap, as against network storage), optionally all sharing one
link of `bandwidth_mbps`; keep_cache is on, so pages stay cached across opens.

`blkio`: the data set in an ext4 image (built once with `mkfs.ext4 -d`, kept
beside the data set), attached read-only to a loop device with direct I/O (no
second copy of the pages in the image file's own cache), mounted read-only,
and a cgroup v1 blkio group with `blkio.throttle.read_iops_device` (and
`read_bps_device` with a bandwidth) on that loop device. The job and gofetch
run in that group, so the throttle is shared by the job's reads and gofetch's
prefetching, as on a throttled cloud disk. Unlike the FUSE latency, an IOPS
limit is not helped by concurrency.

Both are context managers; `path` is where the data set appears. Leaving
unmounts (and detaches the loop device, removes the blkio group); the harness's
Cleanup also does so on signals.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from . import BENCH_DIR
from .cgroups import BlkioCgroup, PREFIX, _pid_alive
from .datasets import Dataset

EMULATOR_DIR = os.path.join(BENCH_DIR, "emulator")
SLOWFS = os.path.join(EMULATOR_DIR, "build", "slowfs")
MOUNT_BASE = "/tmp"


def _slowmount_module():
    """bench/emulator/mount.py, told not to rebuild slowfs (the harness uses the binary as built)."""
    if EMULATOR_DIR not in sys.path:
        sys.path.insert(0, EMULATOR_DIR)
    import mount as slowmount  # noqa: E402

    def use_built_binary():
        if not os.access(SLOWFS, os.X_OK):
            raise RuntimeError(f"{SLOWFS} is missing: build it with make -C bench/emulator")
        return slowmount.BINARY

    slowmount.build = use_built_binary
    return slowmount


def fuse_unavailable() -> Optional[str]:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not os.access(SLOWFS, os.X_OK):
        return f"{SLOWFS} is not built"
    if not shutil.which("fusermount3"):
        return "fusermount3 is not installed"
    return None


class SlowStorage:
    kind = "fuse"

    def __init__(self, dataset: Dataset, latency_ms: float, bandwidth_mbps: float = 0.0,
                 max_read_kb: int = 128, threads: int = 64):
        self.dataset = dataset
        self.latency_ms = latency_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.max_read_kb = max_read_kb
        self.threads = threads
        self.mount = None
        self.path = ""
        self.cgroups: List = []  # groups the job must join (none here)

    def __enter__(self) -> "SlowStorage":
        slowmount = _slowmount_module()
        self.mount = slowmount.SlowMount(
            self.dataset.root, latency_ms=self.latency_ms, bandwidth_mbps=self.bandwidth_mbps,
            keep_cache=True, max_read_kb=self.max_read_kb, threads=self.threads)
        self.mount.start()
        self.path = self.mount.path
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.mount is not None:
            self.mount.stop()
            self.mount = None

    def files(self) -> List[str]:
        return [os.path.join(self.path, rel) for rel in self.dataset.files]

    def describe(self) -> dict:
        info = {"storage": "fuse", "latency_ms": self.latency_ms, "bandwidth_mbps": self.bandwidth_mbps or None,
                "max_read_kb": self.max_read_kb, "keep_cache": True, "threads": self.threads, "mount": self.path}
        try:
            with open(self.mount.bdi_path()) as f:
                info["read_ahead_kb"] = int(f.read())
        except (OSError, AttributeError, ValueError):
            pass
        return info

    def stats(self) -> dict:
        return {}


def _run(cmd: List[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout.strip()


def _is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == real for line in f if len(line.split()) > 1)


def blkio_unavailable() -> Optional[str]:
    for tool in ("mkfs.ext4", "losetup", "mount", "umount"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not os.path.isfile("/sys/fs/cgroup/blkio/cgroup.procs"):
        return "no cgroup v1 blkio controller"
    return None


class BlkioStorage:
    kind = "blkio"

    def __init__(self, dataset: Dataset, iops: int, bandwidth_mbps: float = 0.0, log=print):
        self.dataset = dataset
        self.iops = iops
        self.bandwidth_mbps = bandwidth_mbps
        self.log = log
        self.image = os.path.join(os.path.dirname(dataset.root), f"{dataset.name}.ext4")
        self.loop = ""
        self.device = ""
        self.path = ""
        self.group: Optional[BlkioCgroup] = None
        self.cgroups: List = []

    def _build_image(self) -> None:
        manifest = os.path.join(self.dataset.root, "MANIFEST.json")
        if os.path.exists(self.image) and os.path.getmtime(self.image) >= os.path.getmtime(manifest):
            return
        size_mb = int(self.dataset.total_bytes * 1.2 / (1 << 20)) + len(self.dataset.files) // 64 + 64
        self.log(f"building {self.image} ({size_mb} MiB ext4 image of {self.dataset.root}) ...")
        tmp = self.image + ".tmp"
        _run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-L", "gofetch-bench",
              "-d", self.dataset.root, tmp, f"{size_mb}M"])
        os.rename(tmp, self.image)

    def __enter__(self) -> "BlkioStorage":
        try:
            self._build_image()
            self.loop = _run(["losetup", "--find", "--show", "--read-only", "--direct-io=on", self.image])
            st = os.stat(self.loop)
            self.device = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            self.path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=MOUNT_BASE)
            _run(["mount", "-t", "ext4", "-o", "ro,noatime,noload", self.loop, self.path])
            self.group = BlkioCgroup(f"{PREFIX}{os.getpid()}").create()
            self.group.throttle_read(self.device, iops=self.iops,
                                     bps=int(self.bandwidth_mbps * (1 << 20)) if self.bandwidth_mbps else None)
            self.cgroups = [self.group]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.group is not None:
            try:
                self.group.remove()
            finally:
                self.group = None
        if self.path:
            if _is_mounted(self.path):
                if subprocess.run(["umount", self.path], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", self.path], capture_output=True)
            try:
                os.rmdir(self.path)
            except OSError:
                pass
            self.path = ""
        if self.loop:
            for _ in range(50):
                if subprocess.run(["losetup", "-d", self.loop], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            self.loop = ""

    def files(self) -> List[str]:
        return [os.path.join(self.path, rel) for rel in self.dataset.files]

    def describe(self) -> dict:
        info = {"storage": "blkio", "read_iops": self.iops, "bandwidth_mbps": self.bandwidth_mbps or None,
                "image": self.image, "loop": self.loop, "device": self.device, "mount": self.path}
        try:
            with open(f"/sys/block/{os.path.basename(self.loop)}/queue/read_ahead_kb") as f:
                info["read_ahead_kb"] = int(f.read())
        except OSError:
            pass
        return info

    def stats(self) -> dict:
        return self.group.serviced(self.device) if self.group else {}


def remove_stale(log=print) -> None:
    """Unmount loop mounts (and detach their devices) left by dead harness processes."""
    try:
        with open("/proc/self/mounts") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return
    for fields in mounts:
        if len(fields) < 2:
            continue
        source, target = fields[0], fields[1]
        base = os.path.basename(target)
        if os.path.dirname(target) != MOUNT_BASE or not base.startswith(PREFIX):
            continue
        try:
            pid = int(base[len(PREFIX):].split("-")[0])
        except ValueError:
            continue
        if _pid_alive(pid):
            continue
        subprocess.run(["umount", "-l", target], capture_output=True)
        try:
            os.rmdir(target)
        except OSError:
            pass
        if source.startswith("/dev/loop"):
            subprocess.run(["losetup", "-d", source], capture_output=True)
        log(f"removed stale mount {target}")
