"""The hook never breaks the job: the daemon going away, a locked database, a
daemon holding the store's lock, a full disk, an overloaded queue. In each case
the job finishes (exit 0), every read returns the file's bytes, no exception
reaches it, and the counters say what was lost."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import time
import uuid

import pytest

from gofetch_testlib import JOBS, PYTHON, Listener, job_env, listener, make_folder, run_job  # noqa: F401
from gofetch import wire


def query(db, sql, *args):
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


class PausingJob:
    """read_job.py in the main process with pauses the test resumes one by one."""

    def __init__(self, config, env):
        self.proc = subprocess.Popen([PYTHON, str(JOBS / "read_job.py"), json.dumps(config)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_pause(self):
        line = self.proc.stdout.readline().strip()
        assert line == "PAUSE", (line, self.proc.stderr.read() if self.proc.poll() is not None else "")

    def resume(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        result["_stderr"] = err
        return result

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def opened_paths(lst, pid):
    return [r.path for _, r in lst.records(wire.Kind.OPEN, pid=pid)]


def test_daemon_gone_mid_run_and_back(tmp_path):
    files = make_folder(tmp_path / "data", classes=3, per_class=10)
    db = str(tmp_path / "t.db")
    sock = str(tmp_path / "gofetch.sock")
    first = Listener(sock)
    second = None
    job = PausingJob(dict(files=files, db=db, pauses=[10, 20], pause_sleep=0.0, read_sleep=0.003, styles=["full"]),
                     job_env(sock))
    try:
        job.wait_pause()
        pid = job.proc.pid
        assert wait_until(lambda: len(opened_paths(first, pid)) == 10)
        first.close()  # the daemon goes away (socket closed and removed) while the job runs
        job.resume()
        job.wait_pause()
        second = Listener(sock)  # and comes back: the pump reconnects (backoff at most 2 s)
        assert wait_until(lambda: second.connections > 0, timeout=5.0)
        job.resume()
        out = job.finish()
    finally:
        job.kill()
    second.wait_quiet()
    assert out["bad"] == {}
    stats = out["stats"]
    assert stats["daemon_sent"] >= 60  # open, read, close of the first and the last ten files
    assert stats["daemon_dropped"] + stats["daemon_unconnected"] >= 30  # the middle ten's open, read, close
    assert stats["daemon_connects"] == 2 and stats["errors"] == 0
    assert opened_paths(first, pid) == files[:10]
    assert opened_paths(second, pid) == files[20:]  # files 10-19 were read while no daemon listened
    # the store got everything regardless
    assert query(db, "SELECT COUNT(DISTINCT file_id) FROM events WHERE kind = 1") == [(30,)]
    assert stats["db_written"] == stats["recorded"]
    second.close()


def test_database_locked_mid_run(tmp_path):
    files = make_folder(tmp_path / "data", classes=3, per_class=10)
    db = str(tmp_path / "t.db")
    job = PausingJob(dict(files=files, db=db, pauses=[10, 20], read_sleep=0.03, styles=["full"], disable_at_end=True,
                          hook_args=dict(busy_timeout_ms=100, db_interval=0.05)), job_env())
    holder = None
    try:
        job.wait_pause()
        assert wait_until(lambda: os.path.exists(db)
                          and query(db, "SELECT COUNT(DISTINCT file_id) FROM events WHERE kind = 4")[0][0] == 10)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        started = time.monotonic()
        job.resume()
        job.wait_pause()
        assert time.monotonic() - started < 5  # reading went on at full speed
        time.sleep(0.5)  # every write of those events fails twice (tried every 50 ms, 100 ms busy timeout)
        holder.execute("ROLLBACK")
        holder.close()
        holder = None
        job.resume()
        out = job.finish()
    finally:
        if holder is not None:
            holder.close()
        job.kill()
    assert out["bad"] == {}
    stats = out["stats"]
    assert stats["db_errors"] > 0 and stats["db_dropped"] > 0
    assert stats["db_written"] + stats["db_dropped"] == stats["recorded"]  # every event accounted for
    written = {p for (p,) in query(db, "SELECT DISTINCT file_path FROM traces")}
    assert set(files[:10]) <= written and set(files[20:]) <= written
    assert not set(files[10:20]) <= written
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_daemon_holds_the_store_lock(tmp_path, listener):
    """A daemon writing the same store holds <db>.lock: the hook leaves SQLite alone and the
    daemon gets the events on its socket instead."""
    files = make_folder(tmp_path / "data", classes=2, per_class=4)
    db = str(tmp_path / "t.db")
    lock = os.open(db + ".lock", os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lst = listener()
    try:
        out = run_job("read_job.py", dict(files=files, db=db, workers=2, epochs=1, styles=["full", "text"],
                                          disable_at_end=True), job_env(lst.path))
    finally:
        os.close(lock)
    lst.wait_quiet()
    assert out["bad"] == {}
    stats = out["stats"]
    assert stats["db_locked_by_other"] is True and stats["db_lock_busy"] == 1
    assert stats["db_written"] == 0 and stats["db_errors"] == 0
    assert stats["db_skipped_locked"] == stats["collector_received"] > 0
    assert not os.path.exists(db) or query(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'events'") == [(0,)]
    # what the daemon received: every file, twice (two styles), from the workers
    opened = [r.path for m, r in lst.records(wire.Kind.OPEN) if m.peer_pid != out["pid"]]
    assert sorted(opened) == sorted(files * 2)
    reads = sum(r.length for _, r in lst.records(wire.Kind.READ))
    assert reads == 2 * sum(os.path.getsize(p) for p in files)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (the schema, the WAL and its index need about 100 KiB), or None."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full(tmp_path, small_disk):
    # About 8,600 events: more than 256 KiB holds (schema 3 has no index on events,
    # and 2,900 events of 40 files had come to fit).
    files = make_folder(tmp_path / "data", classes=4, per_class=30, min_size=50, max_size=400)
    # Small transactions (written every 5 ms), so that some fit before the disk is full.
    config = dict(files=files, workers=2, epochs=3, styles=["full", "tiny", "text"], disable_at_end=True,
                  hook_args=dict(flush_interval=0.005, db_interval=0.005))
    if small_disk is not None:
        config["db"] = str(small_disk / "t.db")
    else:
        config["db"] = str(tmp_path / "t.db")
        config["simulate_disk_full"] = True
    out = run_job("read_job.py", config, job_env())
    assert out["bad"] == {}
    stats = out["stats"]
    assert stats["db_errors"] > 0 and stats["db_dropped"] > 0, stats
    assert stats["db_written"] + stats["db_dropped"] == stats["collector_received"] + stats["recorded"]
    if small_disk is not None:
        assert stats["db_written"] > 0  # it wrote until the disk was full
        assert query(config["db"], "PRAGMA integrity_check") == [("ok",)]


def test_queue_overload_drops_and_counts(tmp_path):
    files = make_folder(tmp_path / "data", classes=1, per_class=3, min_size=60000, max_size=60000)
    out = run_job("read_job.py", dict(files=files, db=str(tmp_path / "t.db"), styles=["tiny", "full"],
                                      disable_at_end=True, hook_args=dict(queue_capacity=1024, flush_interval=0.5)),
                  job_env())
    assert out["bad"] == {}
    stats = out["stats"]
    assert stats["queue_dropped"] > 0 and stats["dropped"] >= stats["queue_dropped"]
    assert stats["db_written"] == stats["recorded"]
    reads = 3 * (60000 // 16 + 1) + 3  # tiny reads (and their end-of-file reads), then one read() each
    assert stats["recorded"] + stats["queue_dropped"] == reads + 6 * 2  # plus opens and closes


def test_a_forked_worker_does_not_collect_the_heap_it_inherited(tmp_path):
    """With the client loaded, a forked child (a DataLoader worker) freezes what it
    inherited: its garbage collector then never walks the parent's heap. Without it,
    the client's own objects moved the collector's counts so that every forked
    torch worker ran a full collection within its first samples (0.3 s a worker and
    an epoch, measured in bench/'s torch job: first-batch stall 0.38-0.48 s against
    0.11-0.16 s without the client; 0.10-0.22 s with this)."""
    code = (
        "import gc, os, sys\n"
        "from gofetch import enable_hook\n"
        "enable_hook(None)\n"
        "heap = [[i] for i in range(100000)]\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if gc.get_freeze_count() >= 100000 else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child', os.waitstatus_to_exitcode(status), 'parent frozen', gc.get_freeze_count())\n"
    )
    result = subprocess.run([PYTHON, "-c", code], env=job_env(str(tmp_path / "no-daemon.sock")), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # The child froze its inheritance; the job's own process is left as it was.
    assert result.stdout.split() == ["child", "0", "parent", "frozen", "0"], result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="listening as another user (nobody) needs root")
def test_a_socket_of_another_user_is_never_sent_to(tmp_path):
    """Someone else made the socket's folder first (as /tmp/gofetch-<uid> can be): the
    client connects, sees the listener is neither its own user nor root, and sends
    nothing, ever; the job runs as usual and its store still gets everything."""
    from squatter import Squatter

    files = make_folder(tmp_path / "data", classes=2, per_class=10)
    db = str(tmp_path / "t.db")
    with Squatter() as squat:
        out = run_job("read_job.py", dict(files=files, db=db, workers=0, epochs=2, styles=["full"]), job_env(squat.path))
    assert out["bad"] == {}
    assert squat.received["bytes"] == 0, squat.received
    stats = out["stats"]
    assert stats["daemon_untrusted"] and not stats["daemon_connected"] and stats["daemon_sent"] == 0
    assert stats["daemon_connects"] == 0 and stats["errors"] == 0
    assert query(db, "SELECT COUNT(DISTINCT file_id) FROM events WHERE kind = 1") == [(20,)]
