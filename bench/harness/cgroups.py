"""cgroup v1 memory and blkio groups for the benchmark's jobs.

Layout: `/sys/fs/cgroup/<controller>/gofetch-bench-<harness pid>/` is the
harness's parent group; every run gets a child `<scenario>-<mode>` (memory)
so that its peak usage and limit hits are its own. A run's processes enter
their groups before anything else happens: the command is started through
`wrapper_command`, a shell that writes its own pid to each `cgroup.procs` and
then execs the real command (gofetch, then the job gofetch starts, and the
job's workers all inherit the groups).

Removing a group first kills whatever is still in it (SIGKILL, repeated until
`cgroup.procs` is empty), then removes it. Page-cache charges left in a removed
v1 memory group move to its parent.
"""

from __future__ import annotations

import copy
import errno
import os
import signal
import time
from typing import Dict, List, Optional, Sequence

CGROUP_ROOT = "/sys/fs/cgroup"
PREFIX = "gofetch-bench-"

# Enters every cgroup.procs file named before "--", then execs the rest.
_WRAPPER = ('while [ "$1" != "--" ]; do echo $$ > "$1" || { echo "cannot enter cgroup $1" >&2; exit 125; }; '
            'shift; done; shift; exec "$@"')


def wrapper_command(groups: Sequence["Cgroup"], command: Sequence[str]) -> List[str]:
    """`command`, started in `groups` (the tiny wrapper: write own pid, then exec)."""
    return ["/bin/sh", "-c", _WRAPPER, "gofetch-bench-cgroup"] + \
        [g.procs_file for g in groups] + ["--"] + list(command)


def available(controller: str) -> Optional[str]:
    """None when the v1 controller can be used here, else why not."""
    path = os.path.join(CGROUP_ROOT, controller)
    if not os.path.isfile(os.path.join(path, "cgroup.procs")):
        return f"no cgroup v1 {controller} controller at {path}"
    if controller == "memory" and not os.path.exists(os.path.join(path, "memory.limit_in_bytes")):
        return f"{path} is not a cgroup v1 memory hierarchy"
    if not os.access(path, os.W_OK):
        return f"{path} is not writable (not root?)"
    return None


class Cgroup:
    def __init__(self, controller: str, name: str):
        self.controller = controller
        self.name = name
        self.path = os.path.join(CGROUP_ROOT, controller, name)

    @property
    def procs_file(self) -> str:
        return os.path.join(self.path, "cgroup.procs")

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def create(self) -> "Cgroup":
        os.makedirs(self.path, exist_ok=True)
        return self

    def write(self, key: str, value) -> None:
        with open(os.path.join(self.path, key), "w") as f:
            f.write(str(value))

    def read(self, key: str) -> str:
        with open(os.path.join(self.path, key)) as f:
            return f.read()

    def read_int(self, key: str) -> int:
        return int(self.read(key).strip())

    def procs(self) -> List[int]:
        pids = []
        for root, dirs, _ in os.walk(self.path):
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    pids.extend(int(line) for line in f if line.strip())
            except OSError:
                pass
        return pids

    def add(self, pid: int) -> None:
        self.write("cgroup.procs", pid)

    def kill_all(self, timeout: float = 10.0) -> int:
        """SIGKILL everything in the group and its children until it is empty."""
        killed = 0
        deadline = time.monotonic() + timeout
        while True:
            pids = self.procs() if self.exists() else []
            if not pids:
                return killed
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path}: processes {pids} did not die")
            time.sleep(0.02)

    def remove(self) -> None:
        if not self.exists():
            return
        self.kill_all()
        # Children first (deepest paths first).
        dirs = [root for root, _, _ in os.walk(self.path)]
        for d in sorted(dirs, key=len, reverse=True):
            for attempt in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    # EBUSY while the last tasks are exiting, or when a process
                    # entered the group after it was emptied (a wrapper that had
                    # been started but not yet written its pid): empty it again.
                    if e.errno != errno.EBUSY or attempt == 99:
                        raise
                    time.sleep(0.05)
                    self.kill_all()

    def child(self, name: str) -> "Cgroup":
        child = copy.copy(self)
        child.name = os.path.join(self.name, name)
        child.path = os.path.join(self.path, name)
        return child


class MemoryCgroup(Cgroup):
    def __init__(self, name: str):
        super().__init__("memory", name)

    def set_limit(self, nbytes: Optional[int]) -> None:
        if nbytes is None:
            return
        self.write("memory.limit_in_bytes", int(nbytes))

    def limit(self) -> int:
        return self.read_int("memory.limit_in_bytes")

    def stat(self) -> Dict[str, int]:
        out = {}
        for line in self.read("memory.stat").splitlines():
            key, _, value = line.partition(" ")
            try:
                out[key] = int(value)
            except ValueError:
                pass
        return out

    def figures(self) -> dict:
        """What a run used: peak usage, limit hits, page cache and anon at the end."""
        stat = self.stat()
        limit = self.limit()
        return {
            "limit_bytes": limit if limit < (1 << 62) else None,
            "max_usage_bytes": self.read_int("memory.max_usage_in_bytes"),
            "usage_bytes": self.read_int("memory.usage_in_bytes"),
            "failcnt": self.read_int("memory.failcnt"),
            "cache_bytes": stat.get("total_cache", stat.get("cache", 0)),
            "rss_bytes": stat.get("total_rss", stat.get("rss", 0)),
            "pgmajfault": stat.get("total_pgmajfault", stat.get("pgmajfault", 0)),
        }


class BlkioCgroup(Cgroup):
    def __init__(self, name: str):
        super().__init__("blkio", name)

    def throttle_read(self, device: str, iops: Optional[int] = None, bps: Optional[int] = None) -> None:
        """`device` is "MAJOR:MINOR"."""
        if iops:
            self.write("blkio.throttle.read_iops_device", f"{device} {int(iops)}")
        if bps:
            self.write("blkio.throttle.read_bps_device", f"{device} {int(bps)}")

    def serviced(self, device: str) -> dict:
        out = {}
        for key in ("blkio.throttle.io_serviced_recursive", "blkio.throttle.io_service_bytes_recursive"):
            try:
                for line in self.read(key).splitlines():
                    parts = line.split()
                    if len(parts) == 3 and parts[0] == device and parts[1] == "Read":
                        out["read_ios" if "serviced" in key else "read_bytes"] = int(parts[2])
            except OSError:
                pass
        return out


class PeakSampler:
    """Samples memory.stat of some groups every `interval` s in a thread: the peak
    anonymous memory (rss) and page cache of each (memory.max_usage_in_bytes only
    gives their sum)."""

    def __init__(self, groups: Dict[str, "MemoryCgroup"], interval: float = 0.02):
        import threading

        self.groups = groups
        self.interval = interval
        self.peaks: Dict[str, Dict[str, int]] = {k: {"rss_bytes": 0, "cache_bytes": 0} for k in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, group in self.groups.items():
                try:
                    stat = group.stat()
                except OSError:
                    continue
                peak = self.peaks[name]
                peak["rss_bytes"] = max(peak["rss_bytes"], stat.get("total_rss", 0))
                peak["cache_bytes"] = max(peak["cache_bytes"], stat.get("total_cache", 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def harness_group_name(pid: Optional[int] = None) -> str:
    return f"{PREFIX}{pid or os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_stale(log=print) -> List[str]:
    """Remove gofetch-bench-<pid> groups whose harness process no longer exists."""
    removed = []
    for controller in ("memory", "blkio"):
        base = os.path.join(CGROUP_ROOT, controller)
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            if not name.startswith(PREFIX):
                continue
            try:
                pid = int(name[len(PREFIX):])
            except ValueError:
                continue
            if _pid_alive(pid):
                continue
            try:
                Cgroup(controller, name).remove()
                removed.append(os.path.join(base, name))
                log(f"removed stale cgroup {os.path.join(base, name)}")
            except OSError as e:
                log(f"could not remove stale cgroup {os.path.join(base, name)}: {e}")
    return removed
