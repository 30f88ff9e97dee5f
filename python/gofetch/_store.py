"""The hook's writer of the trace store (docs/store.md), with the standard library's sqlite3.

Only the hook's root process writes (its DataLoader workers and other children
send their events to it), so one connection, in one thread, allocates file ids.
The Swift store holds an exclusive ``flock`` on ``<db>.lock`` while it writes a
database; the writer takes the same lock (non-blocking) before it writes and
leaves the database alone while someone else holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import sqlite3
import sys
import time
from typing import Dict, List, Optional, Tuple

# Copied from Sources/GoFetchStore/StoreSchema.swift (schema version 2: its
# `statements`, then `version2`);
# every statement is idempotent, so either side may create the file first.
SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        started_ns INTEGER NOT NULL,
        ended_ns INTEGER,
        command TEXT NOT NULL,
        source TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        first_seen_ns INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        time_ns INTEGER NOT NULL,
        mono_ns INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        tid INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        worker_id INTEGER,
        epoch INTEGER,
        file_id INTEGER NOT NULL REFERENCES files(id),
        kind INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        source INTEGER NOT NULL,
        flags INTEGER NOT NULL
    )
    """,
    # Version 3 has no index on events (it cost 40 % of an insert); a run's events are
    # the id range in run_spans, which each writer widens per transaction.
    "DROP INDEX IF EXISTS events_by_run_time",
    """
    CREATE VIEW IF NOT EXISTS traces AS
    SELECT e.time_ns / 1e9 AS timestamp,
           e.pid AS pid,
           e.worker_id AS worker_id,
           f.path AS file_path,
           e.offset AS offset,
           e.length AS length,
           CASE e.kind WHEN 1 THEN 'open' WHEN 2 THEN 'read' WHEN 3 THEN 'mmap' WHEN 4 THEN 'close' ELSE 'unknown' END AS access_type,
           e.epoch AS epoch,
           e.run_id AS run_id,
           e.tid AS tid,
           e.duration_ns AS duration_ns
    FROM events e JOIN files f ON f.id = e.file_id
    """,
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1')",
    """
    CREATE TABLE IF NOT EXISTS samples (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        time_ns INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        accesses INTEGER NOT NULL,
        cold_accesses INTEGER NOT NULL,
        covered_accesses INTEGER NOT NULL,
        stall_ns INTEGER NOT NULL,
        issued INTEGER NOT NULL,
        useful INTEGER NOT NULL,
        late INTEGER NOT NULL,
        wasted INTEGER NOT NULL,
        skipped INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        bytes_prefetched INTEGER NOT NULL,
        outstanding_bytes INTEGER NOT NULL,
        budget_bytes INTEGER NOT NULL,
        events INTEGER NOT NULL,
        events_dropped INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS samples_by_run_time ON samples(run_id, time_ns)",
    """
    CREATE TABLE IF NOT EXISTS run_results (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        summary TEXT NOT NULL
    )
    """,
    "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
]

_RUN_SPANS = """
    CREATE TABLE run_spans (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        first_event_id INTEGER NOT NULL,
        last_event_id INTEGER NOT NULL
    )
    """
_BACKFILL_RUN_SPANS = (
    "INSERT OR REPLACE INTO run_spans (run_id, first_event_id, last_event_id) "
    "SELECT run_id, MIN(id), MAX(id) FROM events GROUP BY run_id"
)


def create_schema(connection) -> None:
    """Creates or completes the store's schema (version 3), as the daemon's StoreSchema does."""
    for statement in SCHEMA:
        connection.execute(statement)
    if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'run_spans'").fetchone() is None:
        connection.execute(_RUN_SPANS)  # new, or a store from before version 3: its runs' spans, once
        connection.execute(_BACKFILL_RUN_SPANS)


_EXTEND_RUN_SPAN = (
    "INSERT INTO run_spans (run_id, first_event_id, last_event_id) VALUES (?1, ?2, ?3) "
    "ON CONFLICT(run_id) DO UPDATE SET first_event_id = MIN(first_event_id, excluded.first_event_id), "
    "last_event_id = MAX(last_event_id, excluded.last_event_id)"
)

SOURCE_PYTHON_HOOK = 2
KIND_OPEN = 1
UNKNOWN_EPOCH = 0xFFFFFFFF
_U32_MAX = 0xFFFFFFFF
_I64 = 1 << 63

_INSERT_EVENT = (
    "INSERT INTO events (run_id, time_ns, mono_ns, pid, tid, uid, worker_id, epoch, file_id, kind, offset, "
    "length, duration_ns, source, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _i64(value: int) -> int:
    """SQLite integers are signed 64-bit; the Swift store keeps u64 values by bit pattern."""
    return value - (1 << 64) if value >= _I64 else value


def _make_private(path: str) -> None:
    """The store holds every user's paths and timings: created readable by its owner
    only (SQLite gives its -wal and -shm the database's mode); an older store and its
    journals are made so when they are ours."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        try:
            os.chmod(name, 0o600)
        except OSError:
            pass


def command_line() -> str:
    argv = getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv
    try:
        return shlex.join(argv)
    except Exception:
        return " ".join(map(str, argv))


# A batch: (pid, uid, events); an event is the hook's tuple
# (kind, (path, dev, ino, size), fd, offset, length, mono_ns, duration_ns, tid, worker, epoch, flags).
Batch = Tuple[int, int, list]


class StoreWriter:
    """Writes batches of hook events in transactions; never raises (counts instead)."""

    RETRY_OPEN_S = 2.0

    def __init__(self, path: str, counters, busy_timeout_ms: int = 1000, command: Optional[str] = None,
                 started_ns: Optional[int] = None):
        self.path = os.path.abspath(path)
        self.started_ns = started_ns if started_ns is not None else time.time_ns()
        self.counters = counters
        self.busy_timeout_ms = busy_timeout_ms
        self.command = command if command is not None else command_line()
        self.connection: Optional[sqlite3.Connection] = None
        self.lock_fd: Optional[int] = None
        self.run_id: Optional[int] = None
        self.locked_by_other = False
        self.next_attempt = 0.0
        # path -> (id, dev, ino, size), for rows committed by this writer
        self.files: Dict[str, Tuple[int, int, int, int]] = {}
        self.retry: List[Batch] = []

    # -- opening ---------------------------------------------------------------------

    def _take_lock(self) -> bool:
        if self.lock_fd is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self.lock_fd = os.open(self.path + ".lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                if not self.locked_by_other:
                    self.counters.db_lock_busy += 1
                self.locked_by_other = True
                return False
            raise
        self.locked_by_other = False
        return True

    def ready(self) -> bool:
        """Opens the store (lock, connection, schema, run) when due; True when it can be written."""
        if self.connection is not None:
            return True
        now = time.monotonic()
        if now < self.next_attempt:
            return False
        self.next_attempt = now + self.RETRY_OPEN_S
        connection = None
        try:
            if not self._take_lock():
                return False
            _make_private(self.path)
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000.0, isolation_level=None,
                                         check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("BEGIN IMMEDIATE")
            try:
                create_schema(connection)
                if self.run_id is None:
                    cursor = connection.execute(
                        "INSERT INTO runs (started_ns, command, source) VALUES (?, ?, 'python-hook')",
                        (self.started_ns, self.command))
                    run_id = cursor.lastrowid
                else:
                    run_id = self.run_id
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            self.run_id = run_id
            self.connection = connection
            return True
        except Exception:
            self.counters.db_errors += 1
            if connection is not None:
                try:
                    connection.close()
                except Exception:
                    pass
            self._unlock()
            return False

    def _unlock(self) -> None:
        if self.lock_fd is not None:
            try:
                os.close(self.lock_fd)  # releases the flock (the last descriptor of it in this process family)
            except OSError:
                pass
            self.lock_fd = None

    # -- writing ---------------------------------------------------------------------

    def write(self, batches: List[Batch]) -> None:
        """Writes ``batches`` (after the batches that failed once before) in
        transactions of at most ``EVENTS_PER_TRANSACTION`` events, so that on a disk
        that fills up what fits is kept. A batch that fails gets one more try with
        the next write, then goes (counted)."""
        count = sum(len(b[2]) for b in batches)
        if not self.ready():
            if self.locked_by_other:
                self.counters.db_skipped_locked += count
            else:
                self.counters.db_dropped += count
            return
        retry, self.retry = self.retry, []
        self.counters.db_dropped += sum(len(b[2]) for b in self._write_chunks(retry))
        self.retry = [b for b in self._write_chunks(batches) if b[2]]

    EVENTS_PER_TRANSACTION = 500

    def _write_chunks(self, batches: List[Batch]) -> List[Batch]:
        """Writes ``batches`` a transaction per chunk; returns what was not written."""
        chunks = self._chunked(batches)
        for index, chunk in enumerate(chunks):
            if self.connection is None or not self._write_one(chunk):
                return [batch for rest in chunks[index:] for batch in rest]
        return []

    @classmethod
    def _chunked(cls, batches: List[Batch]) -> List[List[Batch]]:
        """``batches`` cut into chunks of ``EVENTS_PER_TRANSACTION`` events (the last may be smaller)."""
        chunks: List[List[Batch]] = []
        chunk: List[Batch] = []
        size = 0
        for pid, uid, events in batches:
            start = 0
            while start < len(events):
                take = min(len(events) - start, cls.EVENTS_PER_TRANSACTION - size)
                chunk.append((pid, uid, events[start:start + take]))
                size += take
                start += take
                if size == cls.EVENTS_PER_TRANSACTION:
                    chunks.append(chunk)
                    chunk, size = [], 0
        if chunk:
            chunks.append(chunk)
        return chunks

    def _write_one(self, chunk: List[Batch]) -> bool:
        try:
            self.counters.db_written += self._write(chunk)
            return True
        except Exception as error:
            self.counters.db_errors += 1
            self._rollback()
            if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
                self._close_connection()  # a corrupt or unusable file: reopen later
            return False

    def _rollback(self) -> None:
        if self.connection is not None:
            try:
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
            except Exception:
                self._close_connection()

    def _write(self, batches: List[Batch]) -> int:
        connection = self.connection
        assert connection is not None
        offset = time.time_ns() - time.monotonic_ns()  # wall = monotonic + offset
        new_files: Dict[str, Tuple[int, int, int, int]] = {}
        ids: Dict[str, int] = {}  # path -> id, for this batch
        rows = []
        append = rows.append
        run_id = self.run_id
        files = self.files
        connection.execute("BEGIN IMMEDIATE")
        for pid, uid, events in batches:
            for kind, info, _fd, off, length, mono, duration, tid, worker, epoch, flags in events:
                path = info[0]
                file_id = ids.get(path)
                if file_id is None or kind == KIND_OPEN:
                    file_id = self._file_id(connection, info, mono + offset, new_files)
                    ids[path] = file_id
                if off >= _I64 or length >= _I64 or mono >= _I64:
                    off, length, mono = _i64(off), _i64(length), _i64(mono)
                append((run_id, mono + offset, mono, pid, tid, uid,
                        None if worker < 0 else worker, None if epoch == UNKNOWN_EPOCH else epoch,
                        file_id, kind, off, length, duration if duration <= _U32_MAX else _U32_MAX,
                        SOURCE_PYTHON_HOOK, flags))
        if rows:
            # Under the store's lock, this transaction's ids follow the largest one.
            (last_before,), = connection.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchall()
            connection.executemany(_INSERT_EVENT, rows)
            connection.execute(_EXTEND_RUN_SPAN, (run_id, last_before + 1, last_before + len(rows)))
        connection.execute("COMMIT")
        files.update(new_files)
        return len(rows)

    def _file_id(self, connection, info, wall: int, new_files) -> int:
        """The file's id (inserted when new); a replaced file keeps its id and gets the new identity."""
        path, dev, ino, size = info
        identity = (_i64(dev), _i64(ino), _i64(size))
        record = new_files.get(path) or self.files.get(path)
        if record is None:
            row = connection.execute("SELECT id, dev, ino, size FROM files WHERE path = ?", (path,)).fetchone()
            if row is None:
                cursor = connection.execute(
                    "INSERT INTO files (path, dev, ino, size, first_seen_ns) VALUES (?, ?, ?, ?, ?)",
                    (path,) + identity + (wall,))
                record = (cursor.lastrowid,) + identity
                new_files[path] = record
                return record[0]
            record = tuple(row)
            new_files[path] = record
        if record[1:] != identity:
            connection.execute("UPDATE files SET dev = ?, ino = ?, size = ? WHERE id = ?", identity + (record[0],))
            record = (record[0],) + identity
            new_files[path] = record
        return record[0]

    # -- closing ---------------------------------------------------------------------

    def _close_connection(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:
                pass
            self.connection = None

    def close(self) -> None:
        """Ends the run (``ended_ns``), closes the connection, releases the lock."""
        if self.retry:
            self.counters.db_dropped += sum(len(b[2]) for b in self.retry)
            self.retry = []
        if self.connection is not None and self.run_id is not None:
            try:
                self.connection.execute("UPDATE runs SET ended_ns = ? WHERE id = ?", (time.time_ns(), self.run_id))
            except Exception:
                self.counters.db_errors += 1
        self._close_connection()
        self._unlock()

    def abandon_after_fork(self, graveyard: list) -> None:
        """In a forked child: never touch (or close) the parent's connection; drop the lock descriptor.

        Closing the child's copy of the lock descriptor does not release the
        parent's flock (the lock belongs to the open file description).
        """
        if self.connection is not None:
            graveyard.append(self.connection)  # kept alive: closing it here could disturb the parent's WAL
            self.connection = None
        if self.lock_fd is not None:
            try:
                os.close(self.lock_fd)
            except OSError:
                pass
            self.lock_fd = None
