"""A stand-in for the daemon, shared by the shim's and the Python hook's tests:
accepts SOCK_SEQPACKET connections and decodes every message with gofetch.wire."""

from __future__ import annotations

import os
import pathlib
import selectors
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

PYTHON_DIR = pathlib.Path(__file__).resolve().parents[2] / "python"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

from gofetch import wire  # noqa: E402


@dataclass
class Message:
    conn: int
    peer_pid: int  # SO_PEERCRED of the connection
    header: wire.Header
    records: List[wire.Record]


class Listener:
    """Accepts connections like the daemon and keeps every decoded message.

    With reading=False it accepts but never reads, so senders fill their socket
    buffers; start_reading() drains from then on.
    """

    def __init__(self, path: str, reading: bool = True):
        self.path = path
        self.messages: List[Message] = []
        self.errors: List[str] = []
        self.connections = 0
        self._lock = threading.RLock()
        self._reading = threading.Event()
        if reading:
            self._reading.set()
        self._stop = threading.Event()
        self._open: Dict[int, socket.socket] = {}
        self._peer: Dict[int, int] = {}
        self._registered: set = set()
        self._last_activity = time.monotonic()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock.bind(path)
        self._sock.listen(128)
        self._sock.setblocking(False)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ, None)
        next_id = 0
        while not self._stop.is_set():
            if self._reading.is_set():
                for cid, conn in list(self._open.items()):
                    if cid not in self._registered:
                        sel.register(conn, selectors.EVENT_READ, cid)
                        self._registered.add(cid)
            for key, _ in sel.select(timeout=0.01):
                if key.data is None:
                    try:
                        conn, _ = self._sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                    with self._lock:
                        self._open[next_id] = conn
                        self._peer[next_id] = struct.unpack("3i", cred)[0]
                        self.connections += 1
                        self._last_activity = time.monotonic()
                    next_id += 1
                    continue
                self._drain(sel, key.data)
        sel.close()

    def _drain(self, sel: selectors.BaseSelector, cid: int) -> None:
        conn = self._open[cid]
        while True:
            try:
                data = conn.recv(wire.MAX_MESSAGE + 1)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            with self._lock:
                self._last_activity = time.monotonic()
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    del self._open[cid]
                    return
                try:
                    header, records = wire.decode_message(data)
                except ValueError as error:
                    self.errors.append(f"{error}: {data[:64]!r}")
                    continue
                self.messages.append(Message(cid, self._peer[cid], header, records))

    def start_reading(self) -> None:
        self._reading.set()

    def wait_quiet(self, timeout: float = 10.0, quiet: float = 0.15, until_closed: bool = True) -> None:
        """Waits until nothing arrived for `quiet` seconds and, with until_closed,
        every connection reached EOF; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = time.monotonic() - self._last_activity
                closed = not until_closed or not self._open or not self._reading.is_set()
            if closed and idle >= quiet:
                return
            time.sleep(0.02)
        raise AssertionError(f"listener not quiet after {timeout}s ({len(self._open)} connections open)")

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self):
                    return True
            time.sleep(0.01)
        return False

    def records(self, kind: Optional[int] = None, pid: Optional[int] = None) -> List[tuple]:
        """(message, record) pairs in arrival order; `pid` keeps one connection's peer."""
        with self._lock:
            return [(m, r) for m in self.messages for r in m.records
                    if (kind is None or r.kind == kind) and (pid is None or m.peer_pid == pid)]

    def opens(self) -> List[wire.Record]:
        return [r for _, r in self.records(wire.Kind.OPEN)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in list(self._open.values()):
            conn.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def listener_fixture(tmp_path, **defaults):
    """The body of a `listener` fixture: yields a factory, closes every listener
    made, and fails the test if any message did not decode."""
    made: List[Listener] = []

    def make(name: str = "gofetch.sock", **options) -> Listener:
        lst = Listener(str(tmp_path / name), **{**defaults, **options})
        made.append(lst)
        return lst

    yield make
    for lst in made:
        lst.close()
        assert not lst.errors, lst.errors
