"""`gofetch run`: files are resident before the job opens them, and nothing else is warmed."""
import ctypes
import json
import os
import subprocess
import textwrap

from conftest import make_files

# The job reads a fixed list twice. After each read in the first pass it evicts the
# file (as a page cache smaller than the data set would), so the second pass finds
# only what gofetch warmed. Before each open in the second pass it records whether
# the file was resident, measured with cachestat(2) through a symlink in a folder
# the shim does not trace (so the probe itself is not an access gofetch sees).
JOB = textwrap.dedent(
    """
    import ctypes, json, os, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    class CacheStat(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]
    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
    def resident_fraction(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            stat = CacheStat()
            if libc.syscall(451, fd, ctypes.byref(Range(0, 0)), ctypes.byref(stat), 0) != 0:
                raise OSError(ctypes.get_errno(), "cachestat")
            pages = (os.fstat(fd).st_size + 4095) // 4096
            return stat.cache / max(pages, 1)
        finally:
            os.close(fd)
    files, probe_dir, out = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    for p in files:
        with open(p, "rb") as f:
            f.read()
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        time.sleep(0.01)
    before = []
    for i, p in enumerate(files):
        before.append(resident_fraction(os.path.join(probe_dir, str(i))))
        with open(p, "rb") as f:
            f.read()
        time.sleep(0.01)   # the model's step
    json.dump(before, open(out, "w"))
    """
)


def evict(paths):
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def resident_pages(path):
    class CacheStat(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]

    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        stat = CacheStat()
        assert libc.syscall(451, fd, ctypes.byref(Range(0, 0)), ctypes.byref(stat), 0) == 0
        return stat.cache
    finally:
        os.close(fd)


def test_second_pass_finds_files_resident_before_open(tmp_path, gofetch_bin, python_bin):
    data = tmp_path / "data"
    files = make_files(str(data), 150, seed=7, min_size=60_000, max_size=140_000)
    decoys = make_files(str(tmp_path / "decoys"), 40, seed=8, min_size=60_000, max_size=140_000)
    order = sorted(files, key=lambda p: hash(p) % 1000)  # a fixed order that is not the directory's
    probe = tmp_path / "probe"
    probe.mkdir()
    for i, path in enumerate(order):
        os.symlink(path, probe / str(i))
    config = tmp_path / "config.yaml"
    config.write_text(
        "trace:\n  exclude_prefixes: [/proc, /sys, /dev, /usr, /lib, /lib64, /etc, /run, %s]\n" % probe
    )
    evict(list(files) + list(decoys))  # caches dropped for everything involved
    assert sum(resident_pages(p) for p in files) == 0

    out = tmp_path / "before.json"
    script = tmp_path / "job.py"
    script.write_text(JOB)
    result = subprocess.run(
        [gofetch_bin, "run", "--config", str(config), "--db", str(tmp_path / "t.db"), "--json", "--",
         python_bin, str(script), ",".join(order), str(probe), str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    before = json.load(open(out))
    summary = json.loads(result.stderr[result.stderr.index("{"):])["summary"]["prefetch"]

    warm = [fraction >= 0.99 for fraction in before]
    print(f"resident before open in pass 2: {sum(warm)}/{len(warm)}; prefetch: {summary}")
    # The first few files of the pass come before the predictor has shown it is right.
    assert sum(warm[10:]) >= 0.9 * len(warm[10:]), (sum(warm), summary)
    assert summary["completed"] >= 0.9 * (len(files) - 10), summary
    # Nothing outside the job's files was warmed.
    assert sum(resident_pages(p) for p in decoys) == 0
