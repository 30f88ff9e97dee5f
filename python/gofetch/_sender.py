"""The sender of one process's client: a thread that takes what the interception
(``_runtime``) queued and sends it on, to the daemon, to the root process's
collector, or into the store; and the announcements of the lookahead, encoded
lazily as they are sent. It knows the interception only through the object it
is given (``_runtime._Interception``), and imports nothing of it.
"""

from __future__ import annotations

import collections
import marshal
import os
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from . import _state, wire
from ._links import CollectorServer, Link
from ._state import ANNOUNCE, CLOSE, EPOCH, MAP, OPEN

_HEADER = struct.Struct("<2sBBHHIIQ")
UNKNOWN_EPOCH = wire.UNKNOWN_EPOCH
# The longest an idle sender waits between passes (``Runtime._run``), seconds.
IDLE_WAIT = 0.32


class Announcement:
    """A lookahead list for the daemon; ``messages(pid)`` encodes it lazily (in the pump)."""

    def __init__(self, epoch: int, worker: int, entries: Callable[[], Any]):
        self.epoch = epoch
        self.worker = worker
        self.entries = entries  # () -> iterable of (path str, worker, size)
        self.records = 0
        try:
            self.cwd = os.getcwd()  # relative paths are relative to it now, not when encoded
        except OSError:
            self.cwd = "/"

    def messages(self, pid: int, sizes: Dict[str, int]):
        cwd = self.cwd
        body: List[bytes] = [wire.pack_record(EPOCH, 0, -1, 0, self.worker, 0, 0, 0, 0, 0, 0, self.epoch)]
        size = wire.HEADER_SIZE + wire.RECORD_SIZE
        position = 0
        for path, worker, known in self.entries():
            path = os.fsdecode(os.fspath(path))
            if not path.startswith("/"):
                path = cwd.rstrip("/") + "/" + (path[2:] if path.startswith("./") else path)
            raw = os.fsencode(path)
            if len(raw) > wire.MAX_PATH:
                continue
            length = known or sizes.get(path, 0)
            record = wire.pack_record(wire.Kind.LOOKAHEAD, 0, -1, wire.Flag.ANNOUNCEMENT_START if position == 0 else 0, worker, 0,
                                      0, 0, position, length, 0, self.epoch, raw)
            position += 1
            if size + len(record) > wire.MAX_MESSAGE or len(body) == 0xFFFF:
                yield _message(body, pid)
                body, size = [], wire.HEADER_SIZE
            body.append(record)
            size += len(record)
        if body:
            yield _message(body, pid)
        self.records = position


def _message(body: List[bytes], pid: int, dropped: int = 0) -> bytes:
    return _HEADER.pack(wire.MAGIC, wire.VERSION, wire.Source.PYTHON_HOOK, len(body), wire.HEADER_SIZE,
                        pid & 0xFFFFFFFF, min(dropped, 0xFFFFFFFF), time.monotonic_ns()) + b"".join(body)


class Runtime:
    ROOT, CLIENT, LITE = "root", "client", "lite"

    def __init__(self, *, role: str, db: Optional[str], socket_path: Optional[str], stream: bool,
                 flush_interval: float, db_interval: float, busy_timeout_ms: int, collector_address: Optional[str],
                 interception):
        self.interception = interception
        self.role = role
        self.db = db
        self.socket_path = socket_path
        self.stream = stream
        self.flush_interval = flush_interval
        self.db_interval = db_interval
        self.busy_timeout_ms = busy_timeout_ms
        self.pid = os.getpid()
        self.uid = os.getuid()
        self.daemon = Link(socket_path) if (stream and socket_path) else None
        self.collector: Optional[CollectorServer] = None
        self.collector_link: Optional[Link] = None
        self.collector_address = collector_address
        self.store = None
        self.pending: List[tuple] = []      # root: (pid, uid, events) batches not yet written
        self.pending_events = 0
        self.backlog: "collections.deque" = collections.deque()  # client: encoded messages not yet sent
        self.backlog_events = 0
        self.last_db_write = 0.0
        self.last_epoch_sent: Optional[int] = None
        self.announcement: Optional[Announcement] = None
        self.announce_iter = None
        self.announce_generation = -1
        self.announce_not_before = 0.0
        self.known_sizes: Dict[str, int] = {}
        self._held: Optional[bytes] = None
        self.seen_generation = 0
        self.final_deadline: Optional[float] = None
        self.ticks = 0
        self.force_write = False
        self.forward_events = True  # client: the root keeps a store (else only learned mappings go up)
        self.wake = threading.Event()
        self.stopping = False
        self.stopped = False
        self.thread: Optional[threading.Thread] = None
        self.graveyard: list = []
        self.shutdown_lock = threading.Lock()
        if role == self.ROOT:
            try:
                self.collector = CollectorServer()
                self.collector_address = self.collector.address
            except OSError:
                _state.counters.internal_errors += 1  # children then keep their events (and stream them only)
            if db is not None:
                from ._store import StoreWriter
                self.store = StoreWriter(db, _state.counters, busy_timeout_ms=busy_timeout_ms)
        elif role == self.CLIENT and collector_address:
            self.collector_link = Link(collector_address, sndbuf=4 << 20)

    # -- thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="gofetch-hook", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        wait = self.flush_interval
        while not self.stopping:
            self.wake.wait(wait)
            self.wake.clear()
            if self.stopping:
                break
            busy = True
            try:
                busy = self.tick(final=False)
            except Exception:
                _state.counters.internal_errors += 1
            self.ticks += 1
            # Idle, a process whose accesses the shim reports has nothing to send until an
            # announcement or an epoch (both wake this thread): it looks less often, up to
            # IDLE_WAIT. Every pass costs the job CPU and the GIL (about 0.2 ms of CPU a pass
            # here, 1 % of a core at 50 passes a second in the training loop's process).
            wait = min(IDLE_WAIT, wait * 2) if not busy and self._may_idle() else self.flush_interval
        try:
            self.tick(final=True)
        except Exception:
            _state.counters.internal_errors += 1
        finally:
            self.stopped = True

    def _may_idle(self) -> bool:
        """Whether this pass may come seldom: nothing reaches the queue unannounced (no accesses
        traced here for the daemon, no store, no events forwarded to the root's), and no data
        set's mapping is being learned from the children. A forked worker also needs the shim
        to stamp its records alone (``shim_tags_alone``): where the shim cannot read the shared
        epoch cell, the worker's pass is what hands it a new epoch, and its tags must not lag."""
        if self.store is not None or self.interception.sends_accesses() or _state.learning:
            return False
        if self.role == self.CLIENT:
            return not self.forward_events and self.interception.shim_tags_alone()
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Final flush (from atexit, os._exit, disable_hook). Idempotent."""
        with self.shutdown_lock:
            if self.stopped:
                return
            thread = self.thread
            self.stopping = True
            self.wake.set()
            if thread is not None and thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout)
            elif not self.stopped:
                try:
                    self.tick(final=True)
                except Exception:
                    _state.counters.internal_errors += 1
                self.stopped = True

    # -- one pass ----------------------------------------------------------------------------

    def _final_wait(self, final: bool) -> float:
        """How long a send may wait: never during the run; at exit, within one overall deadline."""
        if not final:
            return 0.0
        if self.final_deadline is None:
            self.final_deadline = time.monotonic() + 1.5
        return max(0.0, min(0.5, self.final_deadline - time.monotonic()))

    def tick(self, final: bool) -> bool:
        """One pass; whether it had anything to do or left anything for the next."""
        items: List[tuple] = []
        events: List[tuple] = []
        maps: List[tuple] = []
        q = self.interception.queue()
        for _ in range(len(q)):
            try:
                item = q.popleft()
            except IndexError:
                break
            kind = item[0]
            items.append(item)
            if kind == MAP:
                maps.append(item)
            elif OPEN <= kind <= CLOSE:
                events.append(item)
        self.interception.before_send()
        received = False
        if self.role == self.ROOT:
            # Children's data first: an announcement built below may need the mappings they learnt.
            for _, key, index, path in maps:
                self.interception.learn(key, index, path)
            received = self._receive(events, final)
        if self.daemon is not None:
            self._stream(items, final)
        else:
            for item in items:
                if item[0] == ANNOUNCE:
                    _state.counters.lookahead_dropped += 1
        if self.role == self.ROOT:
            self._write_store(final)
        elif self.role == self.CLIENT:
            self._forward(events, maps, final)
        announcing = self.announcement is not None and (self.announce_iter is not None
                                                        or self.announce_generation != self.seen_generation)
        return bool(items) or received or announcing or bool(self.backlog) or bool(self.pending)

    # -- daemon ------------------------------------------------------------------------------

    def _dropped_total(self) -> int:
        return _state.counters.queue_dropped + _state.counters.daemon_dropped + _state.counters.daemon_unconnected

    def _stream(self, items: List[tuple], final: bool) -> None:
        """Sends this process's items in queue order: events, epoch records, announcements."""
        if self.role == self.CLIENT and self.announcement is None and all(item[0] == MAP for item in items):
            return  # a forked worker whose shim reports its accesses connects only once it has something to send
        link = self.daemon
        send_events = self.interception.sends_accesses()
        if not link.connect(force=final):
            for item in items:
                kind = item[0]
                if kind == ANNOUNCE:
                    self._start_announcement(item[1], item[2])  # the latest is sent once connected
                elif send_events and OPEN <= kind <= CLOSE:
                    _state.counters.daemon_unconnected += 1
            return
        generation = link.generation
        if generation != self.seen_generation:
            self.seen_generation = generation
            _state.counters.daemon_connects += 1
            self.last_epoch_sent = None
        self._announce(link, generation, final)  # one in progress, or the latest again on a new connection
        records: List[bytes] = []
        for item in items:
            kind = item[0]
            if kind == MAP:
                continue
            if kind == EPOCH:
                records.append(wire.pack_record(EPOCH, 0, -1, 0, item[2], 0, 0, 0, 0, 0, 0, item[1]))
                self.last_epoch_sent = item[1]
                continue
            if kind == ANNOUNCE:
                announcement = item[1]
                if item[2] > 0 and not final:
                    # Its list comes a little later: the epoch starts here, in order.
                    records.append(wire.pack_record(EPOCH, 0, -1, 0, announcement.worker, 0, 0, 0, 0, 0, 0,
                                                    announcement.epoch))
                self._send_records(records, final)
                records = []
                self._start_announcement(announcement, item[2])
                self._announce(link, generation, final)
                continue
            if not send_events:
                continue
            _, info, fd, offset, length, t0, duration, tid, worker, epoch, flags = item
            if epoch != self.last_epoch_sent:
                self.last_epoch_sent = epoch
                if epoch != UNKNOWN_EPOCH:
                    records.append(wire.pack_record(EPOCH, 0, -1, 0, worker, 0, 0, 0, 0, 0, 0, epoch))
            if duration > 0xFFFFFFFF:
                duration = 0xFFFFFFFF
            if kind == OPEN:
                records.append(wire.pack_record(OPEN, tid, fd, flags, worker, t0, info[1], info[2], offset,
                                                length, duration, epoch, os.fsencode(info[0])))
            else:
                records.append(wire.pack_record(kind, tid, fd, flags, worker, t0, info[1], info[2], offset,
                                                length, duration, epoch))
        self._send_records(records, final)

    def _send_records(self, records: List[bytes], final: bool) -> None:
        body: List[bytes] = []
        size = wire.HEADER_SIZE
        for record in records:
            if size + len(record) > wire.MAX_MESSAGE or len(body) == 0xFFFF:
                self._send_daemon(body, self._final_wait(final))
                body, size = [], wire.HEADER_SIZE
            body.append(record)
            size += len(record)
        if body:
            self._send_daemon(body, self._final_wait(final))

    def _send_daemon(self, body: List[bytes], wait: float) -> None:
        result = self.daemon.send(_message(body, self.pid, self._dropped_total()), wait)
        if result:
            _state.counters.daemon_messages += 1
            _state.counters.daemon_sent += len(body)
        else:
            _state.counters.daemon_dropped += len(body)

    def announce(self, announcement: Announcement, delay: float = 0.0) -> None:
        """Queues ``announcement`` behind what this process queued before (it replaces one in
        progress; the latest is re-sent on every new connection). ``delay``: build its list
        that much later (a learned mapping may still be arriving)."""
        self.interception.queue().append((ANNOUNCE, announcement, delay))  # never refused: it is one item
        _state.counters.lookahead_announced += 1
        self.wake.set()

    def _start_announcement(self, announcement: Announcement, delay: float) -> None:
        if self.announcement is not None and (self.announce_iter is not None
                                              or self.announce_generation != self.seen_generation):
            _state.counters.lookahead_dropped += 1  # replaced (its epoch is over) before it was sent whole
        self.announcement = announcement
        self.announce_iter = None
        self._held = None
        self.announce_generation = -1
        self.announce_not_before = time.monotonic() + delay

    def _announce(self, link: Link, generation: int, final: bool) -> None:
        announcement = self.announcement
        if announcement is None or (not final and time.monotonic() < self.announce_not_before):
            return
        if self.announce_generation != generation:
            # New announcement, or a new connection: (re)send it from the start.
            self.announce_generation = generation
            self.announce_iter = announcement.messages(self.pid, self.known_sizes)
            self._held = None
            self.last_epoch_sent = announcement.epoch  # its first message starts with the epoch record
        it = self.announce_iter
        if it is None:
            return
        for _ in range(256):  # at most ~16 MB a pass; the rest on the next ticks
            message = self._held
            if message is None:
                try:
                    message = next(it)
                except StopIteration:
                    _state.counters.lookahead_records += announcement.records
                    self.announce_iter = None
                    return
                except Exception:
                    _state.counters.internal_errors += 1
                    self.announce_iter = None
                    return
            result = link.send(message, self._final_wait(final))
            if result:
                self._held = None
                continue
            if result is False:
                self._held = message  # full: try again on the next tick, nothing lost
                return
            self._held = None  # connection lost: it restarts on the next connection
            return

    # -- root: children and SQLite -----------------------------------------------------------

    def _receive(self, events: List[tuple], final: bool) -> bool:
        """Takes this process's events and what the children sent; whether they sent anything."""
        if events:
            self._pend(self.pid, self.uid, events)
        collector = self.collector
        if collector is None:
            return False
        rounds = 0
        received = False
        while True:
            messages = collector.receive()
            received = received or bool(messages)
            for data in messages:
                try:
                    pid, uid, child_events, maps, _dropped = marshal.loads(data)
                except Exception:
                    _state.counters.internal_errors += 1
                    continue
                _state.counters.collector_messages += 1
                _state.counters.collector_received += len(child_events)
                for key, index, path in maps:
                    self.interception.learn(key, index, path)
                if child_events:
                    self._pend(pid, uid, child_events)
            rounds += 1
            if not messages or not final or rounds > 100:
                break
        return received

    def _write_store(self, final: bool) -> None:
        now = time.monotonic()
        force, self.force_write = self.force_write, False
        if self.pending and (final or force or now - self.last_db_write >= self.db_interval
                             or self.pending_events >= 20000):
            batches, self.pending, self.pending_events = self.pending, [], 0
            self.last_db_write = now
            if self.store is not None:
                self.store.write(batches)

    def _pend(self, pid: int, uid: int, events: List[tuple]) -> None:
        sizes = self.known_sizes
        for event in events:
            if event[0] == OPEN:
                info = event[1]
                sizes[info[0]] = info[3]
        if self.store is None:
            return
        if self.pending_events + len(events) > 4 * self.interception.cap():
            _state.counters.db_dropped += len(events)
            return
        self.pending.append((pid, uid, events))
        self.pending_events += len(events)

    # -- client: to the root -----------------------------------------------------------------

    def _forward(self, events: List[tuple], maps: List[tuple], final: bool) -> None:
        link = self.collector_link
        if link is None:
            return
        maps = [m[1:] for m in maps]
        if not self.forward_events:
            events = []
        chunk = 512
        start = 0
        while start < len(events) or (start == 0 and maps):
            part = events[start:start + chunk]
            data = marshal.dumps((self.pid, self.uid, part, maps if start == 0 else [], _state.counters.queue_dropped))
            if len(data) > 60000 and len(part) > 1:
                chunk = max(1, chunk // 2)
                continue
            self.backlog.append((data, len(part)))
            self.backlog_events += len(part)
            start += len(part)
            if not part:
                break
        while self.backlog_events > self.interception.cap() and self.backlog:
            _, n = self.backlog.popleft()
            self.backlog_events -= n
            _state.counters.collector_dropped += n
        if not self.backlog:
            return
        if not link.connect(force=final):
            if final:
                for _, n in self.backlog:
                    _state.counters.collector_dropped += n
                self.backlog.clear()
                self.backlog_events = 0
            return
        deadline = time.monotonic() + (2.0 if final else 0.0)
        while self.backlog:
            data, n = self.backlog[0]
            wait = max(0.0, deadline - time.monotonic()) if final else 0.0
            result = link.send(data, wait)
            if result:
                self.backlog.popleft()
                self.backlog_events -= n
                _state.counters.collector_sent += n
                continue
            if final or result is None:
                # At exit nothing can wait any longer; a broken channel loses what it held.
                for _, m in self.backlog:
                    _state.counters.collector_dropped += m
                self.backlog.clear()
                self.backlog_events = 0
            return  # full: the rest on the next tick

    # -- fork --------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        self.pid = os.getpid()
        self.thread = None
        self.wake = threading.Event()
        self.shutdown_lock = threading.Lock()
        self.stopping = False
        self.stopped = False
        self.pending = []
        self.pending_events = 0
        self.backlog = collections.deque()
        self.backlog_events = 0
        self.last_epoch_sent = None
        self.announcement = None
        self.announce_iter = None
        self._held = None
        self.seen_generation = 0
        self.final_deadline = None
        if self.daemon is not None:
            self.daemon.forget_after_fork()
        if self.role == self.ROOT:
            self.forward_events = self.store is not None
        if self.store is not None:
            self.store.abandon_after_fork(self.graveyard)
            self.store = None
        if self.collector is not None:
            self.collector.close()
            self.collector = None
        if self.collector_link is not None:
            self.collector_link.forget_after_fork()
        if self.role == self.ROOT or (self.role == self.CLIENT and self.collector_address):
            self.role = self.CLIENT
            if self.collector_link is None:
                self.collector_link = Link(self.collector_address, sndbuf=4 << 20)
        if self.role != self.LITE:
            self.start()
