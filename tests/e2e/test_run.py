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
        # [resident fraction, pages the kernel reclaimed]: fadvise(DONTNEED) leaves no
        # reclaim record, so reclaimed pages after the first pass can only be pages
        # gofetch warmed that the kernel took back before the job came to them.
        fd = os.open(path, os.O_RDONLY)
        try:
            stat = CacheStat()
            if libc.syscall(451, fd, ctypes.byref(Range(0, 0)), ctypes.byref(stat), 0) != 0:
                raise OSError(ctypes.get_errno(), "cachestat")
            pages = (os.fstat(fd).st_size + 4095) // 4096
            return [stat.cache / max(pages, 1), stat.evicted]
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
        time.sleep(0.02)   # the model's step
    json.dump(before, open(out, "w"))
    """
)


def warmed(probe):
    """Resident before the job's open, or warmed and then reclaimed by the kernel.

    This machine's kernel runs a DAMON pageout scheme that reclaims page-cache regions
    it sees idle, which can take prefetched pages back before the job reaches them;
    cachestat's evicted count tells those apart from pages never warmed.
    """
    fraction, evicted = probe
    return fraction >= 0.99 or evicted > 0


def resident(probe):
    return probe[0] >= 0.99


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
    full = json.loads(result.stderr[result.stderr.index("{"):])["summary"]
    summary = full["prefetch"]
    # gofetch's own CPU over its run (getrusage): warming 150 files costs some, and no
    # process uses more than every core the whole run.
    cpu = full["cpu"]
    used = cpu["userNanoseconds"] + cpu["systemNanoseconds"]
    assert 0 < used <= cpu["wallNanoseconds"] * os.cpu_count(), cpu

    warm = [warmed(probe) for probe in before]
    print(f"resident before open in pass 2: {sum(map(resident, before))}/{len(warm)}, "
          f"warmed then reclaimed: {sum(warm) - sum(map(resident, before))}; prefetch: {summary}")
    # The first few files of the pass come before the predictor has shown it is right.
    assert sum(warm[10:]) >= 0.9 * len(warm[10:]), (sum(warm), summary)
    assert summary["completed"] >= 0.9 * (len(files) - 10), summary
    # Nothing outside the job's files was warmed.
    assert sum(resident_pages(p) for p in decoys) == 0


SHUFFLED_JOB = textwrap.dedent(
    """
    import ctypes, json, os, random, sys, time
    sys.path.insert(0, os.path.dirname(sys.argv[0]))
    from probe import resident_fraction
    files, probe_dir, out = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    index = {p: i for i, p in enumerate(files)}
    before = []
    for epoch in range(2):
        order = files[:]
        random.Random(epoch).shuffle(order)   # a new order every epoch
        for p in order:
            if epoch == 1:
                before.append(resident_fraction(os.path.join(probe_dir, str(index[p]))))
            with open(p, "rb") as f:
                f.read()
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            time.sleep(0.02)   # the model's step
    json.dump(before, open(out, "w"))
    """
)

SHARD_JOB = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, os.path.dirname(sys.argv[0]))
    from probe import resident_fraction
    shard, probe, out = sys.argv[1], sys.argv[2], sys.argv[3]
    chunk = 1 << 20
    before = []
    with open(shard, "rb") as f:
        # No kernel readahead for this reader (it reads 8 MiB ahead on this disk and
        # would hide whether gofetch did anything); gofetch's own descriptor is unaffected.
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        for i in range(os.fstat(f.fileno()).st_size // chunk):
            before.append(resident_fraction(probe, i * chunk, chunk))
            f.read(chunk)
            time.sleep(0.02)   # the model's step
    json.dump(before, open(out, "w"))
    """
)

PROBE = textwrap.dedent(
    """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    class CacheStat(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]
    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
    def resident_fraction(path, offset=0, length=0):
        fd = os.open(path, os.O_RDONLY)
        try:
            stat = CacheStat()
            if libc.syscall(451, fd, ctypes.byref(Range(offset, length)), ctypes.byref(stat), 0) != 0:
                raise OSError(ctypes.get_errno(), "cachestat")
            size = length or os.fstat(fd).st_size
            return [stat.cache / max((size + 4095) // 4096, 1), stat.evicted]
        finally:
            os.close(fd)
    """
)


def run_job(tmp_path, gofetch_bin, python_bin, job, args, extra_config="", mode="run"):
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    config = tmp_path / "config.yaml"
    config.write_text(
        "trace:\n  exclude_prefixes: [/proc, /sys, /dev, /usr, /lib, /lib64, /etc, /run, %s]\n%s" % (probe, extra_config)
    )
    (tmp_path / "probe.py").write_text(PROBE)
    script = tmp_path / "job.py"
    script.write_text(job)
    out = tmp_path / "before.json"
    result = subprocess.run(
        [gofetch_bin, mode, "--config", str(config), "--db", str(tmp_path / "t.db"), "--json", "--",
         python_bin, str(script), *args, str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr[result.stderr.index("{"):])["summary"].get("prefetch")
    return json.load(open(out)), summary


def test_shuffled_epoch_is_served_from_the_remaining_set(tmp_path, gofetch_bin, python_bin):
    files = make_files(str(tmp_path / "data"), 200, seed=9, min_size=60_000, max_size=140_000)
    order = sorted(files)
    probe = tmp_path / "probe"
    probe.mkdir()
    for i, path in enumerate(order):
        os.symlink(path, probe / str(i))
    evict(order)
    before, summary = run_job(tmp_path, gofetch_bin, python_bin, SHUFFLED_JOB, [",".join(order), str(probe)])
    warm = [warmed(probe) for probe in before]
    print(f"shuffled epoch 2: resident before open {sum(map(resident, before))}/{len(warm)}, "
          f"warmed then reclaimed: {sum(warm) - sum(map(resident, before))}; prefetch: {summary}")
    assert summary["remainingSetChoices"] > 0 and summary["epochs"] >= 1
    # After the epoch boundary is seen (3 repeats) and the remaining set has shown it is right.
    assert sum(warm[20:]) >= 0.9 * len(warm[20:])


def test_sequential_shard_is_warmed_ahead_of_the_reader(tmp_path, gofetch_bin, python_bin):
    shard = tmp_path / "data" / "shard-000.tar"
    shard.parent.mkdir()
    shard.write_bytes(os.urandom(48 << 20))
    probe = tmp_path / "probe"
    probe.mkdir()
    os.symlink(shard, probe / "shard")
    evict([str(shard)])
    alone, _ = run_job(tmp_path, gofetch_bin, python_bin, SHARD_JOB, [str(shard), str(probe / "shard")], mode="trace")
    evict([str(shard)])
    before, summary = run_job(tmp_path, gofetch_bin, python_bin, SHARD_JOB, [str(shard), str(probe / "shard")])
    warm = [warmed(probe) for probe in before]
    print(f"shard chunks resident before read: {sum(map(resident, before))}/{len(warm)}, warmed then reclaimed: "
          f"{sum(warm) - sum(map(resident, before))} (without prefetch: {sum(map(warmed, alone))}/{len(alone)}); prefetch: {summary}")
    assert sum(map(warmed, alone)) <= 2  # the reader alone gets no help
    # The first chunks come before the sequential pattern is established.
    assert sum(warm[8:]) >= 0.9 * len(warm[8:])
    assert summary["completed"] >= 2
