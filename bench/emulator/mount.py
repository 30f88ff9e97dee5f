#!/usr/bin/env python3
"""Mount bench/emulator's slowfs from Python, and always unmount it again.

    from mount import SlowMount
    with SlowMount("/data/train", latency_ms=5, bandwidth_mbps=200) as m:
        run_job(m.path)          # m.path mirrors /data/train, slowly

or, from a shell, until Ctrl-C:

    python3 bench/emulator/mount.py SOURCE MOUNT --latency-ms 5

Standard library only. slowfs is built with make on first use. The mount is
undone on normal exit, on exceptions, on SIGINT, and on SIGTERM of this process
(a SIGTERM handler that raises SystemExit is installed while a mount is open,
unless the program has its own). Where the mount was made from the main thread,
slowfs is also told by the kernel to stop should this process die outright
(PR_SET_PDEATHSIG), so even a SIGKILL leaves no mount behind.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional

HERE = pathlib.Path(__file__).resolve().parent
BINARY = HERE / "build" / "slowfs"

_PR_SET_PDEATHSIG = 1


def build() -> pathlib.Path:
    """Build slowfs if it is missing or older than its source; return its path."""
    result = subprocess.run(["make", "-s", "-C", str(HERE)], capture_output=True, text=True)
    if result.returncode != 0 or not BINARY.exists():
        raise RuntimeError(f"building slowfs failed (run bench/emulator/setup.sh?):\n{result.stdout}{result.stderr}")
    return BINARY


def _mountinfo_entry(path: str) -> Optional[List[str]]:
    """The /proc/self/mountinfo fields of the mount at `path`, the topmost one."""
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
                if len(fields) > 4 and _unescape(fields[4]) == path:
                    found = fields
    except OSError:
        return None
    return found


def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def is_slowfs_mounted(path: str) -> bool:
    """Whether a slowfs mount sits at `path` (per /proc/self/mountinfo)."""
    fields = _mountinfo_entry(os.path.realpath(path))
    if not fields:
        return False
    try:
        fstype = fields[fields.index("-") + 1]
    except (ValueError, IndexError):
        return False
    return fstype == "fuse.slowfs"


_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: slowfs gets SIGTERM, which it
    # handles by unmounting, when the thread that started it goes away.
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class SlowMount:
    """A slowfs mount of `source` for the length of a `with` block.

    Parameters mirror slowfs's options: `latency_ms` per read request,
    `bandwidth_mbps` (MiB/s shared by all reads, 0 = unlimited), `keep_cache`
    (False: every open() drops the file's page cache), `max_read_kb` (largest
    read request), `open_latency_ms`, `threads`. `mountpoint` defaults to a new
    temporary directory, removed afterwards. slowfs's output goes to `log`
    (a path; default: a temporary file whose text `log_text()` returns), or
    to this process's own stdout and stderr with `inherit_output=True`.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        latency_ms: float = 2.0,
        bandwidth_mbps: float = 0.0,
        keep_cache: bool = True,
        max_read_kb: int = 128,
        open_latency_ms: float = 0.0,
        threads: int = 64,
        mountpoint: Optional[str | os.PathLike] = None,
        log: Optional[str | os.PathLike] = None,
        timeout: float = 10.0,
        inherit_output: bool = False,
    ) -> None:
        self.source = os.path.realpath(source)
        if not os.path.isdir(self.source):
            raise NotADirectoryError(self.source)
        self.latency_ms = latency_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.keep_cache = keep_cache
        self.max_read_kb = max_read_kb
        self.open_latency_ms = open_latency_ms
        self.threads = threads
        self.timeout = timeout
        self._own_mountpoint = mountpoint is None
        self._mountpoint_arg = mountpoint
        self._log_arg = log
        self.path = ""
        self.process: Optional[subprocess.Popen] = None
        self._log_path = ""
        self._inherit_output = inherit_output
        self._own_log = log is None and not inherit_output
        self._previous_sigterm = None
        self._closed = True
        # slowfs's output, kept when it exits (its own log file is then removed).
        self.final_log = ""

    # The command slowfs runs with, in the foreground so that we own its lifetime.
    def command(self) -> List[str]:
        cmd = [str(BINARY), self.source, self.path, "-f",
               "--latency-ms", repr(float(self.latency_ms)),
               "--bandwidth-mbps", repr(float(self.bandwidth_mbps)),
               "--open-latency-ms", repr(float(self.open_latency_ms)),
               "--max-read-kb", str(int(self.max_read_kb)),
               "--threads", str(int(self.threads))]
        if not self.keep_cache:
            cmd.append("--no-keep-cache")
        return cmd

    def __enter__(self) -> "SlowMount":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        build()
        if self._own_mountpoint:
            self.path = tempfile.mkdtemp(prefix="slowfs-")
        else:
            self.path = os.path.realpath(self._mountpoint_arg)
            os.makedirs(self.path, exist_ok=True)
        if self._own_log:
            fd, self._log_path = tempfile.mkstemp(prefix="slowfs-", suffix=".log")
            os.close(fd)
        elif not self._inherit_output:
            self._log_path = os.fspath(self._log_arg)
        self._closed = False
        atexit.register(self.stop)
        self._install_sigterm()
        try:
            in_main = threading.current_thread() is threading.main_thread()
            log = None if self._inherit_output else open(self._log_path, "ab")
            try:
                self.process = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    # Its own session: a Ctrl-C at the terminal reaches only us, and we unmount in order.
                    start_new_session=True,
                    preexec_fn=_die_with_parent if in_main else None)
            finally:
                if log:
                    log.close()
            deadline = time.monotonic() + self.timeout
            while not is_slowfs_mounted(self.path):
                if self.process.poll() is not None:
                    raise RuntimeError(f"slowfs exited with {self.process.returncode} before mounting:\n{self.log_text()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"slowfs did not mount {self.path} within {self.timeout} s:\n{self.log_text()}")
                time.sleep(0.01)
            # The first request waits for the INIT handshake; make one now so the
            # caller's first timed access measures storage, not start-up.
            os.stat(self.path)
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        if not self._log_path:
            return ""
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stats(self) -> dict:
        """Counters slowfs prints when it unmounts (after the `with` block):
        opens, reads (requests), bytes, largest (request, bytes), peak (requests in flight)."""
        m = re.search(r"slowfs: unmounted .*: (\d+) opens, (\d+) read requests, (\d+) bytes, "
                      r"largest request (\d+) bytes, at most (\d+) requests in flight", self.final_log or self.log_text())
        if not m:
            return {}
        return dict(zip(("opens", "reads", "bytes", "largest", "peak"), map(int, m.groups())))

    @property
    def device(self) -> int:
        """st_dev of the mount: its bdi is /sys/class/bdi/MAJOR:MINOR."""
        return os.stat(self.path).st_dev

    def bdi_path(self, name: str = "read_ahead_kb") -> str:
        dev = self.device
        return f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/{name}"

    def stop(self) -> None:
        """Unmount and end slowfs; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.stop)
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            # A second SIGTERM must not cut the clean-up short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self._unmount_and_reap()
        finally:
            self._restore_sigterm()
            if self._own_mountpoint and self.path:
                try:
                    os.rmdir(self.path)
                except OSError:
                    pass
            self.final_log = self.log_text()
            if self._own_log and self._log_path:
                try:
                    os.unlink(self._log_path)
                except OSError:
                    pass

    def _unmount_and_reap(self) -> None:
        proc = self.process
        if self.path and is_slowfs_mounted(self.path):
            # A clean unmount makes slowfs's loop end by itself.
            if not _run_quiet(["fusermount3", "-u", self.path]):
                # Busy (a file still open): SIGTERM lets slowfs unmount itself;
                # a lazy unmount detaches it in any case.
                if proc and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    _wait(proc, 2.0)
                if is_slowfs_mounted(self.path):
                    _run_quiet(["fusermount3", "-uz", self.path]) or _run_quiet(["umount", "-l", self.path])
        if proc and proc.poll() is None:
            if not _wait(proc, 2.0):
                proc.send_signal(signal.SIGTERM)
                if not _wait(proc, 2.0):
                    proc.kill()
                    proc.wait()
        if self.path and is_slowfs_mounted(self.path):
            # slowfs died and left the mount without its server ("Transport
            # endpoint is not connected"): only a lazy unmount removes it.
            _run_quiet(["umount", "-l", self.path])

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_sigterm(signum, frame):
            # SystemExit unwinds the `with` block, whose exit unmounts.
            raise SystemExit(128 + signum)

        self._previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._previous_sigterm = None


def _run_quiet(cmd: List[str]) -> bool:
    if not shutil.which(cmd[0]):
        return False
    try:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _wait(proc: subprocess.Popen, seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Mount SOURCE on MOUNT through slowfs until Ctrl-C.")
    parser.add_argument("source")
    parser.add_argument("mount")
    parser.add_argument("--latency-ms", type=float, default=2.0, help="delay of every read request (default 2)")
    parser.add_argument("--bandwidth-mbps", type=float, default=0.0, help="MiB/s shared by all reads, 0 = unlimited")
    parser.add_argument("--open-latency-ms", type=float, default=0.0, help="delay of every open (default 0)")
    parser.add_argument("--no-keep-cache", action="store_true", help="every open() drops the file's page cache")
    parser.add_argument("--max-read-kb", type=int, default=128, help="largest read request (default 128)")
    parser.add_argument("--threads", type=int, default=64, help="slowfs worker threads (default 64)")
    args = parser.parse_args(argv)

    mount = SlowMount(args.source, latency_ms=args.latency_ms, bandwidth_mbps=args.bandwidth_mbps,
                      keep_cache=not args.no_keep_cache, max_read_kb=args.max_read_kb,
                      open_latency_ms=args.open_latency_ms, threads=args.threads, mountpoint=args.mount,
                      inherit_output=True)
    try:
        with mount:
            print("slowfs: Ctrl-C to unmount", flush=True)
            while mount.process and mount.process.poll() is None:
                time.sleep(0.5)
            print(f"slowfs exited with {mount.process.returncode if mount.process else '?'}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except SystemExit as e:  # SIGTERM
        return int(e.code or 0)


if __name__ == "__main__":
    sys.exit(main())
