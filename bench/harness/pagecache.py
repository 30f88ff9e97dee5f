"""Page cache: drop it, measure what is resident, warm it completely.

- `drop(paths)`: sync, `echo 3 > /proc/sys/vm/drop_caches` (page cache, dentries
  and inodes of every file system, the FUSE mount's and its source's included),
  then `posix_fadvise(POSIX_FADV_DONTNEED)` on every file given (the mount's
  files and the source's), for pages drop_caches could not drop (mapped or
  otherwise pinned ones).
- `residency(paths)`: resident pages / pages of the files, by mmap + mincore
  (`fd_residency(fd)`: of one open file, as a job checks a file it opened).
- `prewarm(paths)`: read every file completely with a pool of threads, in the
  harness's own process (so, in the root cgroups: pages are charged there and a
  job's memory limit does not evict them, and a blkio throttle does not slow it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, Sequence, Tuple

PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_PROT_READ, _MAP_SHARED = 1, 1
_MAP_FAILED = ctypes.c_void_p(-1).value


def drop_caches_available() -> str | None:
    if not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        return "/proc/sys/vm/drop_caches is not writable (not root?)"
    return None


def drop(paths: Iterable[str]) -> float:
    """Drop the page cache (see module doc); returns the seconds it took."""
    started = time.monotonic()
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
        except OSError:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
    return time.monotonic() - started


def file_residency(path: str) -> Tuple[int, int]:
    """(resident pages, pages) of one file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0, 0
    try:
        return fd_residency(fd)
    finally:
        os.close(fd)


def fd_residency(fd: int) -> Tuple[int, int]:
    """(resident pages, pages) of an open file, by mmap + mincore (nothing is read)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, 0
    pages = (size + PAGE - 1) // PAGE
    addr = _libc.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
    if addr in (None, _MAP_FAILED):
        return 0, pages
    try:
        vec = ctypes.create_string_buffer(pages)
        if _libc.mincore(addr, size, vec) != 0:
            return 0, pages
        return sum(b & 1 for b in vec.raw), pages
    finally:
        _libc.munmap(addr, size)


def residency(paths: Sequence[str]) -> float:
    """Fraction of the files' pages that are resident (0 when there are none)."""
    resident = total = 0
    for path in paths:
        r, t = file_residency(path)
        resident += r
        total += t
    return resident / total if total else 0.0


def _read_all(path: str, chunk: int = 1 << 20) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(chunk)
            if not b:
                return n
            n += len(b)


def prewarm(paths: List[str], threads: int = 16) -> Tuple[int, float]:
    """Read every file completely; returns (bytes, seconds)."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        total = sum(pool.map(_read_all, paths))
    return total, time.monotonic() - started
