"""enable_hook("traces.db"): every data file the job and its forked workers open
and read lands in the trace store (docs/store.md), tagged with worker and epoch."""

from __future__ import annotations

import collections
import json
import os
import sqlite3
import subprocess
import time

import pytest

from gofetch_testlib import PYTHON, find_gofetch_binary, job_env, make_folder, run_job

# Styles that read every byte of the file exactly once (plus end-of-file reads of 0 bytes).
EXACT_STYLES = ["full", "chunks", "readinto", "text", "lines", "pathlib", "relative", "unclosed"]


def query(db, sql, *args):
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """Two epochs, two forked workers (multiprocessing "fork" Processes, which end with os._exit)."""
    root = tmp_path_factory.mktemp("store")
    files = make_folder(root / "data", classes=2, per_class=5)
    db = str(root / "traces.db")
    config = dict(files=files, db=db, workers=2, epochs=2, styles=EXACT_STYLES + ["mmap", "seek"])
    started = time.time_ns()
    out = run_job("read_job.py", config, job_env())
    return dict(files=files, db=db, out=out, started=started, ended=time.time_ns())


def test_job_reads_correct_data_and_counts(traced):
    out = traced["out"]
    assert out["bad"] == {}
    stats = out["stats"]
    assert stats["role"] == "root" and stats["errors"] == 0 and stats["dropped"] == 0
    assert out["flushed"] is True
    # the root wrote its workers' events: every one it received
    assert stats["db_written"] == stats["collector_received"] > 0


def test_every_file_and_byte_with_worker_and_epoch_tags(traced):
    files, db = traced["files"], traced["db"]
    rows = query(db, """
        SELECT f.path, e.kind, e.offset, e.length, e.worker_id, e.epoch, e.pid, e.id
        FROM events e JOIN files f ON f.id = e.file_id ORDER BY e.id""")
    main_pid = traced["out"]["pid"]
    per = collections.defaultdict(lambda: collections.Counter())
    read_bytes = collections.Counter()
    pids = collections.defaultdict(set)
    for path, kind, offset, length, worker, epoch, pid, _ in rows:
        per[(path, epoch)][kind] += 1
        pids[(worker, epoch)].add(pid)
        if kind == 2:
            read_bytes[(path, epoch, worker)] += length
    n_styles = len(EXACT_STYLES) + 2
    for epoch in (0, 1):
        for position, path in enumerate(files):
            worker = position % 2
            counts = per[(path, epoch)]
            assert counts[1] == n_styles and counts[4] == n_styles, (path, epoch, counts)  # open, close
            assert counts[3] == 1  # the mmap style
            size = os.path.getsize(path)
            exact = query(db, """
                SELECT SUM(e.length) FROM events e JOIN files f ON f.id = e.file_id
                WHERE f.path = ? AND e.epoch = ? AND e.kind = 2 AND e.worker_id = ?""", path, epoch, worker)[0][0]
            # every exact style read the whole file once; "seek" read at least all of it
            assert exact >= size * len(EXACT_STYLES) + size
            assert read_bytes[(path, epoch, worker)] == exact
            assert read_bytes[(path, epoch, 1 - worker)] == 0
        for worker in (0, 1):
            assert len(pids[(worker, epoch)]) == 1 and main_pid not in pids[(worker, epoch)]
    # workers of different epochs are different processes
    assert pids[(0, 0)] != pids[(0, 1)]


def test_read_offsets_follow_the_file(traced):
    """The reads of one open run from 0 to the end without gaps; after a seek they start where it went."""
    db = traced["db"]
    rows = query(db, """
        SELECT f.path, e.kind, e.offset, e.length, e.pid, e.tid FROM events e JOIN files f ON f.id = e.file_id
        WHERE e.kind IN (1, 2) ORDER BY e.id""")
    opens = []
    current = {}
    for path, kind, offset, length, pid, tid in rows:
        key = (path, pid, tid)
        if kind == 1:
            current[key] = (path, [])
            opens.append(current[key])
        else:
            current[key][1].append((offset, length))
    sequential = seeking = 0
    for path, reads in opens:
        size = os.path.getsize(path)
        if not reads:
            continue  # the mmap style
        if reads[0][0] == 0:
            position = 0
            for offset, length in reads:
                assert offset == position, (path, reads)
                position += length
            assert position == size
            sequential += 1
        else:
            # seek(size // 2); read(); seek(0); read(size // 2)
            assert reads[0] == (size // 2, size - size // 2), (path, reads)
            assert reads[1][0] == 0, (path, reads)
            seeking += 1
    n = len(traced["files"]) * 2  # files x epochs
    assert sequential == n * len(EXACT_STYLES) and seeking == n


def test_schema_rows_and_view(traced):
    db, files = traced["db"], traced["files"]
    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    tables = {name for (name,) in query(db, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'index')")}
    assert {"meta", "runs", "files", "events", "traces", "run_spans"} <= tables
    assert "events_by_run_time" not in tables  # version 3: no index on events
    # The run's span is exactly the ids of its events.
    assert query(db, "SELECT run_id, first_event_id, last_event_id FROM run_spans") == \
        query(db, "SELECT run_id, MIN(id), MAX(id) FROM events GROUP BY run_id")
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    runs = query(db, "SELECT id, started_ns, ended_ns, command, source FROM runs")
    assert len(runs) == 1
    run_id, started, ended, command, source = runs[0]
    assert source == "python-hook" and "read_job.py" in command
    assert traced["started"] <= started <= ended <= traced["ended"]
    # files: one row per path, identity from fstat at open
    rows = query(db, "SELECT path, dev, ino, size, first_seen_ns FROM files ORDER BY path")
    assert [r[0] for r in rows] == sorted(files)
    for path, dev, ino, size, first_seen in rows:
        st = os.stat(path)
        assert (dev, ino, size) == (st.st_dev, st.st_ino, st.st_size)
        assert traced["started"] <= first_seen <= traced["ended"]
    # events: the columns the store documents
    bad = query(db, """
        SELECT COUNT(*) FROM events WHERE run_id != ? OR source != 2 OR uid != ? OR tid <= 0 OR pid <= 0
        OR duration_ns < 0 OR time_ns < ? OR time_ns > ? OR mono_ns <= 0 OR flags != 0
        OR worker_id IS NULL OR epoch IS NULL OR kind NOT IN (1, 2, 3, 4)""",
                run_id, os.getuid(), traced["started"], traced["ended"])
    assert bad == [(0,)]
    opens = query(db, "SELECT e.offset, e.length, f.size FROM events e JOIN files f ON f.id = e.file_id WHERE kind = 1")
    assert all(flags == os.O_RDONLY | os.O_CLOEXEC and length == size for flags, length, size in opens)
    mmaps = query(db, "SELECT e.offset, e.length, f.size FROM events e JOIN files f ON f.id = e.file_id WHERE kind = 3")
    assert mmaps and all(offset == 0 and length == size for offset, length, size in mmaps)
    # the seed's view
    view = query(db, "SELECT access_type, COUNT(*), SUM(length) FROM traces GROUP BY access_type ORDER BY 1")
    assert [v[0] for v in view] == ["close", "mmap", "open", "read"]
    total_read = query(db, "SELECT SUM(length) FROM events WHERE kind = 2")[0][0]
    assert dict((v[0], v[2]) for v in view)["read"] == total_read
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_gofetch_stats_reads_the_hook_store(traced):
    binary = find_gofetch_binary()
    if binary is None:
        pytest.skip("gofetch binary not built (.build/debug/gofetch); set GOFETCH_BIN")
    db = traced["db"]
    result = subprocess.run([binary, "stats", "--db", db, "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    events = query(db, "SELECT COUNT(*) FROM events")[0][0]
    assert report["events"] == events
    assert report["files"] == report["filesRead"] == len(traced["files"])
    assert report["bytesRead"] == query(db, "SELECT SUM(length) FROM events WHERE kind = 2")[0][0]
    assert [(e["epoch"], e["files"]) for e in report["epochs"]] == [(0, len(traced["files"])), (1, len(traced["files"]))]
    assert report["processes"] == 4
    assert [r["source"] for r in report["runs"]] == ["python-hook"]
    plain = subprocess.run([binary, "stats", "--db", db], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    assert "read_job.py" in plain.stdout


def test_filter_and_no_torch_import(tmp_path):
    """Default excludes (the interpreter's files, /proc, /etc), exclude= and include= lists;
    gofetch never imports torch itself (the stand-in is on the path, unused)."""
    files = make_folder(tmp_path / "data", classes=2, per_class=2)
    db = str(tmp_path / "t.db")
    stdlib_file = os.__file__
    script = f"""
import json, sys, gofetch
gofetch.enable_hook({db!r}, exclude=["/proc", "/etc", {str(tmp_path / 'data' / 'class_1')!r}])
for p in {files!r} + [{stdlib_file!r}, "/etc/hostname", "/proc/self/status"]:
    try:
        with open(p, "rb") as f:
            f.read()
    except OSError:
        pass
gofetch.flush()
print(json.dumps({{"torch": "torch" in sys.modules, "stats": gofetch.stats()}}))
"""
    proc = subprocess.run([PYTHON, "-c", script], env=job_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["torch"] is False
    recorded = {p for (p,) in query(db, "SELECT path FROM files")}
    assert recorded == {p for p in files if "/class_0/" in p}

    script_include = f"""
import gofetch
gofetch.enable_hook({db + '2'!r}, include=[{str(tmp_path / 'data' / 'class_1')!r}])
for p in {files!r}:
    open(p, "rb").read()
"""
    proc = subprocess.run([PYTHON, "-c", script_include], env=job_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    recorded = {p for (p,) in query(db + "2", "SELECT path FROM files")}
    assert recorded == {p for p in files if "/class_1/" in p}


def test_spawned_child_joins_the_root(tmp_path):
    """A child started with the "spawn" method runs enable_hook again (module level): it joins
    the root's store through GOFETCH_HOOK_COLLECTOR instead of writing the database itself."""
    files = make_folder(tmp_path / "data", classes=1, per_class=4)
    db = str(tmp_path / "t.db")
    script = tmp_path / "spawn_job.py"
    script.write_text(f"""
import multiprocessing, os, gofetch
gofetch.enable_hook({db!r})

def child(paths):
    gofetch.set_worker(5)
    for p in paths:
        with open(p, "rb") as f:
            f.read()

if __name__ == "__main__":
    gofetch.set_epoch(2)
    p = multiprocessing.get_context("spawn").Process(target=child, args=({files!r},))
    p.start(); p.join()
    assert p.exitcode == 0
    with open({files[0]!r}, "rb") as f:
        f.read()
""")
    proc = subprocess.run([PYTHON, str(script)], env=job_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = query(db, "SELECT worker_id, COUNT(DISTINCT file_path), COUNT(DISTINCT pid) FROM traces "
                     "WHERE access_type = 'open' GROUP BY worker_id ORDER BY worker_id")
    assert rows == [(5, 4, 1)] or rows == [(None, 1, 1), (5, 4, 1)]
    assert query(db, "SELECT COUNT(*) FROM runs") == [(1,)]



def test_spawned_child_shares_the_epoch_and_a_grandchild_does_not(tmp_path):
    """A child started with a new interpreter by multiprocessing maps its parent's epoch
    cell (GOFETCH_EPOCH_CELL): it sees the epoch the parent sets after it started, and
    sets one the parent sees. A process that inherited the variable from further up
    (here a subprocess of that child) keeps its own epochs."""
    script = tmp_path / "epoch_job.py"
    script.write_text(f"""
import multiprocessing, os, subprocess, sys, time, gofetch
gofetch.enable_hook(None)

def child(started, go, seen):
    started.set(); go.wait()
    seen.put(gofetch.get_epoch())
    gofetch.set_epoch(7)
    code = "import gofetch; gofetch.enable_hook(None); print(gofetch.get_epoch())"
    seen.put(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    started, go, seen = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=child, args=(started, go, seen))
    p.start(); started.wait()
    gofetch.set_epoch(3)
    go.set()
    first, grandchild = seen.get(timeout=60), seen.get(timeout=60)
    p.join()
    print(first, grandchild, gofetch.get_epoch(), p.exitcode)
""")
    proc = subprocess.run([PYTHON, str(script)], env=job_env(), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3", "None", "7", "0"]

OPEN_SEMANTICS = r'''
import builtins, io, json, os, pickle, sqlite3, sys, threading
data = sys.argv[1]
db = sys.argv[2]
calls = []
previous_open = builtins.open
def someone_elses_open(*args, **kwargs):  # a patch installed before gofetch's
    calls.append(args[0])
    return previous_open(*args, **kwargs)
builtins.open = someone_elses_open

import gofetch
gofetch.enable_hook(db)
assert builtins.open is io.open and builtins.open is not someone_elses_open

path = os.path.join(data, "a.bin")
with open(path, "wb") as f:                      # write mode: the earlier patch, not traced
    f.write(b"x" * 5000)
assert calls == [path]
with open(path, "r+b") as f:                     # update mode: untouched
    f.seek(10); f.write(b"y")
with open(path, "rb") as f:
    assert type(f) is io.BufferedReader and isinstance(f.raw, io.FileIO)
    assert f.name == path and f.mode == "rb" and repr(f) == "<_io.BufferedReader name=%r>" % path
    assert f.read(11)[10:] == b"y" and len(f.read()) == 5000 - 11
    try:
        pickle.dumps(f)
        raise AssertionError("a file pickled")
    except TypeError:
        pass
with open(path, encoding="ascii", newline=None) as f:
    assert isinstance(f, io.TextIOWrapper) and f.encoding == "ascii" and f.buffer.raw.name == path
    assert f.read(3) == "xxx"
with open(path, "rb", buffering=0) as f:
    assert isinstance(f, io.FileIO) and f.read(2) == b"xx"
fd = os.open(path, os.O_RDONLY)
with open(fd, "rb", closefd=False) as f:           # a descriptor: untouched
    assert f.read(1) == b"x"
os.close(fd)
opened = []
def opener(p, flags):
    opened.append(p)
    return os.open(p, flags)
with open(path, "rb", opener=opener) as f:
    assert f.read(1) == b"x" and opened == [path]

ERROR_CASES = [
    (lambda: open(os.path.join(data, "missing.bin"), "rb"), FileNotFoundError),
    (lambda: open(data, "rb"), IsADirectoryError),
    (lambda: open(path, "rb", encoding="utf-8"), ValueError),
    (lambda: open(path, "r", buffering=0), ValueError),
    (lambda: open(path, "r", encoding="no-such-codec"), LookupError),
    (lambda: open(path, "rz"), ValueError),
]
def raised():
    out = []
    for call, kind in ERROR_CASES:
        try:
            call()
        except kind as error:
            out.append((type(error).__name__, getattr(error, "errno", None), str(error)))
        else:
            raise AssertionError("no error")
    return out
errors = raised()

# a FIFO: opened once, read as usual, not traced
fifo = os.path.join(data, "pipe")
os.mkfifo(fifo)
def writer():
    with io.FileIO(fifo, "w") as w:
        w.write(b"through the pipe")
t = threading.Thread(target=writer); t.start()
with open(fifo, "rb") as f:
    assert f.read() == b"through the pipe"
t.join()

gofetch.disable_hook()
assert builtins.open is someone_elses_open
assert raised() == errors  # the same exceptions, hook or not
files = [p for (p,) in sqlite3.connect(db).execute("SELECT path FROM files")]
print(json.dumps({"files": files, "stats": gofetch.stats()}))
'''


def test_open_semantics(tmp_path):
    """What open() returns and raises is what it would without the hook; write and update modes,
    descriptors and FIFOs are left alone; an open() patched before the hook keeps working."""
    data = tmp_path / "data"
    data.mkdir()
    db = str(tmp_path / "t.db")
    proc = subprocess.run([PYTHON, "-c", OPEN_SEMANTICS, str(data), db], env=job_env(), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["files"] == [str(data / "a.bin")]
    assert out["stats"]["errors"] == 0


def test_a_store_from_before_version_3_is_migrated_by_the_hook(tmp_path):
    """The hook opening a version-2 store drops its index on events, records each run's span of ids
    (two interleaved runs), and widens its own run's span as it writes."""
    from gofetch import _state, _store
    db = str(tmp_path / "old.db")
    connection = sqlite3.connect(db)
    for statement in _store.SCHEMA[:-1]:  # all but the version stamp
        connection.execute(statement)
    connection.execute("CREATE INDEX events_by_run_time ON events(run_id, time_ns)")
    connection.execute("INSERT INTO runs (id, started_ns, command, source) VALUES (1, 0, 'a', 't'), (2, 0, 'b', 't')")
    connection.execute("INSERT INTO files (id, path, dev, ino, size, first_seen_ns) VALUES (1, '/x', 1, 1, 1, 0)")
    for run in (1, 2, 1):
        connection.executemany(
            "INSERT INTO events (run_id, time_ns, mono_ns, pid, tid, uid, file_id, kind, offset, length, duration_ns, "
            "source, flags) VALUES (?, 0, 0, 1, 1, 0, 1, 2, 0, 1, 1, 1, 0)", [(run,)] * 5)
    connection.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    connection.commit()
    connection.close()

    writer = _store.StoreWriter(db, _state.Counters(), command="migrate")
    event = (2, ("/x", 1, 1, 1), 3, 0, 1, time.monotonic_ns(), 1000, 1, -1, _store.UNKNOWN_EPOCH, 0)
    writer.write([(os.getpid(), os.getuid(), [event] * 3)])
    writer.write([(os.getpid(), os.getuid(), [event] * 2)])
    writer.close()
    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    assert query(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'") == []
    assert query(db, "SELECT run_id, first_event_id, last_event_id FROM run_spans ORDER BY run_id") == \
        [(1, 1, 15), (2, 6, 10), (3, 16, 20)]
    assert query(db, "SELECT COUNT(*) FROM events WHERE run_id = 3") == [(5,)]


def test_writes_go_in_transactions_of_500_events_and_a_failed_one_keeps_the_ones_before(tmp_path, monkeypatch):
    """On a disk that fills up, what fits is kept: 1,200 events go in transactions of
    500; when the second fails, the first stays, and the rest waits for one more try."""
    from gofetch import _state, _store
    db = str(tmp_path / "t.db")
    counters = _state.Counters()
    writer = _store.StoreWriter(db, counters, command="chunks")
    event = (2, ("/x", 1, 1, 1), 3, 0, 1, time.monotonic_ns(), 1000, 1, -1, _store.UNKNOWN_EPOCH, 0)
    real_write, calls = writer._write, []

    def failing_second(chunk):
        calls.append(sum(len(b[2]) for b in chunk))
        if len(calls) == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real_write(chunk)

    monkeypatch.setattr(writer, "_write", failing_second)
    writer.write([(os.getpid(), os.getuid(), [event] * 700), (os.getpid(), os.getuid(), [event] * 500)])
    assert calls == [500, 500]
    assert counters.db_written == 500 and counters.db_errors == 1 and counters.db_dropped == 0
    assert sum(len(b[2]) for b in writer.retry) == 700
    writer.write([(os.getpid(), os.getuid(), [event] * 10)])  # the 700 get their one more try, then the 10
    writer.close()
    assert calls == [500, 500, 500, 200, 10]
    assert counters.db_written == 1210 and counters.db_dropped == 0
    assert query(db, "SELECT COUNT(*) FROM events") == [(1210,)]
