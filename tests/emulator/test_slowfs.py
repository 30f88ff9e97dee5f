"""The slow-storage emulator (bench/emulator/slowfs) really behaves as slow storage
that a prefetcher can help: reads cost the injected latency, overlap, respect the
bandwidth cap, and what was read stays in the page cache across opens (unless
--no-keep-cache). Also pins down the kernel behaviour gofetch relies on for FUSE:
fadvise(WILLNEED) is honoured but reads at most the readahead window per call.

Needs root and /dev/fuse; builds slowfs with make (libfuse3-dev, pkg-config:
bench/emulator/setup.sh installs them).

Memory reclaim can take pages away at any moment, and on this workplace's machines
it does even with gigabytes free (a DAMON "pageout" scheme pages out unmapped page
cache in physical regions it deems cold, every few seconds). Reclaim leaves shadow
entries that cachestat counts as evicted, where invalidation and fadvise(DONTNEED)
leave none; a test that finds pages missing *and* evicted ran into reclaim, not
into slowfs or FUSE, and is tried again (up to 3 times).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

if not os.path.exists("/dev/fuse"):
    pytest.skip("slowfs needs /dev/fuse, which this machine lacks", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("slowfs tests need root (mounting, drop_caches, read_ahead_kb)", allow_module_level=True)

import mount as slowmount  # noqa: E402  (bench/emulator, put on sys.path by conftest)
from mount import SlowMount  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
KiB = 1024
MiB = 1024 * 1024

# --- cachestat(2) through ctypes ----------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_CACHESTAT = 451  # x86_64 and arm64 alike (the generic table)


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


def cachestat(fd: int, offset: int = 0, length: int = 0) -> _Cachestat:
    """cachestat(2) of [offset, offset+length) (length 0: to the end)."""
    rng, out = _CachestatRange(offset, length), _Cachestat()
    if _libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(out), 0) != 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            pytest.skip("kernel without cachestat (6.5+)")
        raise OSError(err, os.strerror(err))
    return out


def resident_pages(fd: int, offset: int = 0, length: int = 0) -> int:
    return cachestat(fd, offset, length).nr_cache


class ReclaimInterference(Exception):
    """Memory reclaim took pages the test needed resident."""


def expect_resident(fd: int, expected: int) -> int:
    """Assert `expected` pages of the file are resident, telling reclaim apart."""
    st = cachestat(fd)
    if st.nr_cache < expected and st.nr_evicted > 0:
        raise ReclaimInterference(f"{expected - st.nr_cache} of {expected} pages missing, "
                                  f"{st.nr_evicted} evicted by reclaim")
    assert st.nr_cache == expected
    return st.nr_cache


def despite_reclaim(test):
    """Run `test` again (3 times at most) when reclaim interfered with it."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        for attempt in range(1, 4):
            try:
                return test(*args, **kwargs)
            except ReclaimInterference as e:
                print(f"attempt {attempt}: {e}")
                last = e
        pytest.fail(f"reclaim interfered three times running: {last}")
    return run


def settle(fd: int, timeout: float = 2.0, quiet: float = 0.15) -> int:
    """Resident pages once they stop changing (asynchronous readahead has landed)."""
    last, since, deadline = resident_pages(fd), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = resident_pages(fd)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def timed_read(path: str, chunk: int = 1 * MiB) -> float:
    """Seconds to open, read whole and close `path`."""
    start = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, chunk):
            pass
    finally:
        os.close(fd)
    return time.monotonic() - start


def warm_read(path: str, pages: int) -> float:
    """Seconds to open and read `path` whole, all `pages` of it found resident."""
    fd = os.open(path, os.O_RDONLY)
    try:
        expect_resident(fd, pages)
        start = time.monotonic()
        read_all(fd)
        return time.monotonic() - start
    finally:
        os.close(fd)


def read_all(fd: int, chunk: int = 1 * MiB) -> int:
    total, off = 0, 0
    while True:
        data = os.pread(fd, chunk, off)
        if not data:
            return total
        total += len(data)
        off += len(data)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> pathlib.Path:
    """The mirrored directory. Every mount is a new super block, so each starts
    with a cold page cache for these files, whatever an earlier mount read."""
    root = tmp_path_factory.mktemp("slowfs-src")
    sizes = {"small.bin": 64 * KiB, "big.bin": 1 * MiB, "big2.bin": 1 * MiB,
             "big3.bin": 1 * MiB, "huge.bin": 8 * MiB}
    for i in range(8):
        sizes[f"par{i}.bin"] = 64 * KiB
    for name, size in sizes.items():
        (root / name).write_bytes(os.urandom(size))
    (root / "secret.bin").write_bytes(b"only root may read this\n")
    (root / "secret.bin").chmod(0o600)
    root.chmod(0o755)  # mktemp made it 0700: other users could not even look in
    (root / "sub").mkdir()
    (root / "sub" / "note.txt").write_text("hello\n")
    (root / "link").symlink_to("sub/note.txt")
    return root


# --- 1. latency ------------------------------------------------------------------

def test_cold_read_costs_the_latency(source, figure):
    with SlowMount(source, latency_ms=20) as m:
        small = timed_read(f"{m.path}/small.bin")
        big = timed_read(f"{m.path}/big.bin")
        # The mirror is faithful: contents, listing, symlinks.
        assert pathlib.Path(m.path, "big.bin").read_bytes() == (source / "big.bin").read_bytes()
        assert sorted(os.listdir(m.path)) == sorted(os.listdir(source))
        assert pathlib.Path(m.path, "link").read_text() == "hello\n"
        assert os.readlink(f"{m.path}/link") == "sub/note.txt"
    stats = m.stats()
    figure(f"latency 20 ms: cold 64 KiB read {ms(small)}, cold 1 MiB read {ms(big)} "
           f"(1 MiB chunks; {stats.get('reads')} requests in all, largest {stats.get('largest')} B, "
           f"at most {stats.get('peak')} in flight)")
    assert small >= 0.020
    # Readahead may put several requests in flight at once: at least one latency.
    assert big >= 0.020
    assert stats["largest"] <= 128 * KiB


# --- 2. keep_cache ---------------------------------------------------------------

@despite_reclaim
def test_reread_after_reopen_is_served_from_page_cache(source, figure):
    with SlowMount(source, latency_ms=20) as m:
        path = f"{m.path}/big.bin"
        cold = timed_read(path)
        # A new open() leaves every page in place (keep_cache), and the read
        # never reaches slowfs.
        warm = warm_read(path, MiB // PAGE)
    figure(f"keep_cache: 1 MiB cold {ms(cold)}, re-read after close/open {ms(warm)}")
    assert warm < 0.010


# --- 3. dropping the cache makes it slow again ----------------------------------

@despite_reclaim
def test_read_is_slow_again_after_dropping_the_cache(source, figure):
    with SlowMount(source, latency_ms=20) as m:
        path = f"{m.path}/big.bin"
        timed_read(path)
        assert warm_read(path, MiB // PAGE) < 0.010
        # Per file: the source's pages (so slowfs's own pread is cold too) and the mount's.
        for p in (str(source / "big.bin"), path):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                if p == path:
                    assert resident_pages(fd) == 0
            finally:
                os.close(fd)
        after_dontneed = timed_read(path)
        # And the whole machine's, as a benchmark would between runs.
        small = f"{m.path}/small.bin"
        timed_read(small)
        assert warm_read(small, 64 * KiB // PAGE) < 0.010
        os.sync()
        pathlib.Path("/proc/sys/vm/drop_caches").write_text("3\n")
        after_drop = timed_read(small)
    figure(f"after fadvise(DONTNEED) 1 MiB read {ms(after_dontneed)}; after drop_caches 64 KiB read {ms(after_drop)}")
    assert after_dontneed >= 0.020
    assert after_drop >= 0.020


# --- 4. WILLNEED is honoured, one readahead window per call ---------------------

@despite_reclaim
def test_willneed_makes_pages_resident_in_readahead_window_slices(source, figure):
    with SlowMount(source, latency_ms=20) as m:
        window = int(pathlib.Path(m.bdi_path()).read_text()) * KiB
        pages = MiB // PAGE

        # One hint for the whole file reads only the first window.
        fd = os.open(f"{m.path}/big.bin", os.O_RDONLY)
        try:
            start = time.monotonic()
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            hint_cost = time.monotonic() - start
            right_after = resident_pages(fd)  # counts folios still being read
            settle(fd)
            one_hint = expect_resident(fd, window // PAGE)
        finally:
            os.close(fd)

        # Hints in slices of the window cover it all, and the read is then a cache hit.
        fd = os.open(f"{m.path}/big2.bin", os.O_RDONLY)
        try:
            for off in range(0, MiB, window):
                os.posix_fadvise(fd, off, window, os.POSIX_FADV_WILLNEED)
            settle(fd)
            sliced = expect_resident(fd, pages)
            start = time.monotonic()
            assert read_all(fd) == MiB
            read_after_slices = time.monotonic() - start
        finally:
            os.close(fd)

        # A read straight after the hint waits for the requests in flight.
        fd = os.open(f"{m.path}/big3.bin", os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, window, os.POSIX_FADV_WILLNEED)
            start = time.monotonic()
            os.pread(fd, window, 0)
            read_right_after_hint = time.monotonic() - start
        finally:
            os.close(fd)

    figure(f"read_ahead_kb of the FUSE bdi {window // KiB}; fadvise returned in {ms(hint_cost)} "
           f"with {right_after} pages already counted by cachestat (in flight); "
           f"one WILLNEED of 1 MiB -> {one_hint}/{pages} pages; slices of {window // KiB} KiB -> {sliced}/{pages}, "
           f"then 1 MiB read {ms(read_after_slices)}; a read right after the hint {ms(read_right_after_hint)}")
    assert window == 128 * KiB
    assert hint_cost < 0.020  # asynchronous: it returns before the storage could serve one request (20 ms)
    assert one_hint == window // PAGE < pages
    assert sliced == pages
    assert read_after_slices < 0.010


@despite_reclaim
def test_larger_readahead_window_widens_one_hint_and_max_read_the_requests(source, figure):
    """Root may raise read_ahead_kb of the mount's bdi: one hint then covers more,
    split into requests of at most max_read."""
    results = {}
    for max_read_kb in (128, 1024):
        with SlowMount(source, latency_ms=20, max_read_kb=max_read_kb) as m:
            pathlib.Path(m.bdi_path()).write_text("1024\n")  # this mount's bdi only
            fd = os.open(f"{m.path}/big.bin", os.O_RDONLY)  # opened after: takes the new window
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                settle(fd)
                resident = expect_resident(fd, MiB // PAGE)
            finally:
                os.close(fd)
            cold = timed_read(f"{m.path}/big2.bin")
        results[max_read_kb] = (resident, cold, m.stats())
    for max_read_kb, (resident, cold, stats) in results.items():
        figure(f"read_ahead_kb 1024, max_read {max_read_kb} KiB: one WILLNEED of 1 MiB -> {resident} pages; "
               f"cold 1 MiB read {ms(cold)}; {stats['reads']} requests for 2 MiB, largest {stats['largest'] // KiB} KiB, "
               f"at most {stats['peak']} in flight")
        assert resident == MiB // PAGE
        assert stats["largest"] == max_read_kb * KiB
        assert 0.020 <= cold < 0.080  # all requests of the window in flight together: ~one latency


# --- 5. --no-keep-cache ----------------------------------------------------------

@despite_reclaim
def test_no_keep_cache_drops_pages_on_every_open(source, figure):
    with SlowMount(source, latency_ms=5, keep_cache=False) as m:
        path = f"{m.path}/big.bin"
        fd1 = os.open(path, os.O_RDONLY)
        try:
            read_all(fd1)
            warmed = expect_resident(fd1, MiB // PAGE)
            fd2 = os.open(path, os.O_RDONLY)  # another open of the same file
            try:
                dropped = cachestat(fd2)
            finally:
                os.close(fd2)
            # Still on the first fd: pages read again go into the cache as usual.
            read_all(fd1)
            reread = expect_resident(fd1, MiB // PAGE)
        finally:
            os.close(fd1)
        second = timed_read(path)
    figure(f"--no-keep-cache: {warmed} pages warmed through fd1, {dropped.nr_cache} left after another open() "
           f"(evicted count {dropped.nr_evicted}: invalidated, not reclaimed); "
           f"a later open+read took {ms(second)} (cold again)")
    assert dropped.nr_cache == 0
    assert reread == MiB // PAGE
    assert second >= 0.005


# --- 6. concurrency --------------------------------------------------------------

def test_concurrent_reads_overlap(source, figure):
    with SlowMount(source, latency_ms=50) as m:
        barrier = threading.Barrier(8)
        times = [0.0] * 8

        def worker(i: int) -> None:
            barrier.wait()
            times[i] = timed_read(f"{m.path}/par{i}.bin")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.monotonic() - start
    stats = m.stats()
    figure(f"8 threads x cold 64 KiB at 50 ms: all done in {ms(total)} (serial would be 400 ms); "
           f"each {ms(min(times))}..{ms(max(times))}; at most {stats['peak']} requests in flight")
    assert min(times) >= 0.050
    assert total < 0.200
    assert stats["peak"] >= 4


# --- 7. bandwidth ----------------------------------------------------------------

def test_bandwidth_cap(source, figure):
    with SlowMount(source, latency_ms=1, bandwidth_mbps=20) as m:
        elapsed = timed_read(f"{m.path}/huge.bin")
    figure(f"--bandwidth-mbps 20: cold 8 MiB read {ms(elapsed)} (8 MiB / 20 MiB/s = 400 ms), "
           f"{m.stats()['reads']} requests")
    assert elapsed >= 0.35
    assert elapsed < 2.0


# --- 8. read-only, and no mount left behind -------------------------------------

def test_writes_are_refused_and_unmount_is_clean(source, figure):
    with SlowMount(source, latency_ms=1) as m:
        mnt, proc = m.path, m.process
        for attempt in (
            lambda: os.open(f"{mnt}/small.bin", os.O_WRONLY),
            lambda: os.open(f"{mnt}/small.bin", os.O_RDWR),
            lambda: os.open(f"{mnt}/new.bin", os.O_WRONLY | os.O_CREAT, 0o644),
            lambda: os.mkdir(f"{mnt}/newdir"),
            lambda: os.unlink(f"{mnt}/small.bin"),
            lambda: os.truncate(f"{mnt}/small.bin", 0),
        ):
            with pytest.raises(OSError) as err:
                attempt()
            assert err.value.errno == errno.EROFS
        assert (source / "small.bin").stat().st_size == 64 * KiB
        assert slowmount.is_slowfs_mounted(mnt)
    assert not slowmount.is_slowfs_mounted(mnt)
    assert proc.poll() == 0
    assert not os.path.exists(mnt)
    figure(f"writes refused with EROFS; slowfs exited {proc.returncode}, mount and mount point gone")


def test_kernel_checks_permissions_for_other_users(source, figure):
    """default_permissions + allow_other: other users get in, but only to what
    the mode bits allow them, although slowfs itself reads everything as root."""
    nobody = 65534
    with SlowMount(source, latency_ms=1) as m:
        readable = subprocess.run(["cat", f"{m.path}/small.bin"], user=nobody, group=nobody,
                                  capture_output=True)
        secret = subprocess.run(["cat", f"{m.path}/secret.bin"], user=nobody, group=nobody,
                                capture_output=True, text=True)
        as_root = pathlib.Path(m.path, "secret.bin").read_bytes()
    figure(f"uid {nobody}: 0644 file read {len(readable.stdout)} bytes; 0600 file: {secret.stderr.strip()}")
    assert readable.returncode == 0 and len(readable.stdout) == 64 * KiB
    assert secret.returncode != 0 and "Permission denied" in secret.stderr
    assert as_root == b"only root may read this\n"


def test_unmounts_on_exception_and_with_a_file_still_open(source):
    with pytest.raises(RuntimeError, match="boom"):
        with SlowMount(source, latency_ms=1) as m:
            fd = os.open(f"{m.path}/small.bin", os.O_RDONLY)  # keeps the mount busy
            raise RuntimeError("boom")
    try:
        assert not slowmount.is_slowfs_mounted(m.path)
        assert m.process.poll() is not None
    finally:
        os.close(fd)


_CHILD = """
import os, sys, time
sys.path.insert(0, {emulator!r})
from mount import SlowMount
with SlowMount({source!r}, latency_ms=1) as m:
    print(m.path, m.process.pid, m._log_path, flush=True)
    while True:
        time.sleep(0.1)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_parent_signal_unmounts(source, sig):
    code = _CHILD.format(emulator=os.path.dirname(slowmount.__file__), source=str(source))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = []
    try:
        line = child.stdout.readline().split()
        assert line, "the child did not mount"
        mnt, server = line[0], int(line[1])
        assert slowmount.is_slowfs_mounted(mnt)
        child.send_signal(sig)
        child.wait(timeout=10)
        # With SIGKILL nothing runs in the child: slowfs gets SIGTERM from the
        # kernel (PR_SET_PDEATHSIG) and unmounts itself.
        deadline = time.monotonic() + 5
        while slowmount.is_slowfs_mounted(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not slowmount.is_slowfs_mounted(mnt)
        deadline = time.monotonic() + 5
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(server)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if len(line) == 3 and sig == signal.SIGKILL:
            # The child had no chance to remove its mount point and log.
            for remove, path in ((os.rmdir, line[0]), (os.unlink, line[2])):
                try:
                    remove(path)
                except OSError:
                    pass


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its new parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
