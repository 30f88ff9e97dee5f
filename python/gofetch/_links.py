"""Sockets of the hook: the connection to the daemon, and the channel from the
hook's child processes (DataLoader workers) to its root process.

Both are ``AF_UNIX`` ``SOCK_SEQPACKET``: one message per packet, per-process
connections. Sends never wait on the I/O path (``MSG_DONTWAIT``); a full socket
drops the message and counts it. A lost connection is re-established with
exponential backoff; a forked child starts with no connection and makes its own.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from typing import List, Optional

SEND_FLAGS = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)
_FULL = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)
_PEERCRED = struct.Struct("3i")


def default_socket_path() -> str:
    env = os.environ.get("GOFETCH_SOCKET")
    if env:
        return env
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return f"{base}/gofetch-{os.getuid()}/gofetch.sock"
    if os.getuid() == 0:
        return "/run/gofetch/gofetch.sock"  # the system daemon's
    return f"/tmp/gofetch-{os.getuid()}/gofetch.sock"


def peer_credentials(sock: socket.socket):
    """(pid, uid, gid) of the peer."""
    return _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))


class Link:
    """A client connection with backoff; ``send`` is non-blocking unless given a wait."""

    BACKOFF_MIN = 0.05
    BACKOFF_MAX = 2.0

    def __init__(self, address: str, sndbuf: int = 1 << 20):
        self.address = address
        self.sndbuf = sndbuf
        self.sock: Optional[socket.socket] = None
        self.generation = 0  # counts successful connections
        self.backoff = self.BACKOFF_MIN
        self.next_attempt = 0.0
        self.failures = 0  # connection attempts that failed
        # The socket there belongs to neither this user nor root: never sent to, nor tried again.
        self.untrusted = False

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self, force: bool = False) -> bool:
        """Connects when not connected and the backoff allows (or ``force``); True when connected."""
        if self.sock is not None:
            return True
        if self.untrusted:
            return False
        now = time.monotonic()
        if now < self.next_attempt and not force:
            return False
        sock = None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            except OSError:
                pass
            sock.settimeout(0.2)  # connecting to a local socket does not wait unless its backlog is full
            sock.connect(self.address)
            sock.setblocking(False)
            # Only a daemon of this user's or root's: someone else may have made the
            # socket's folder first (/tmp/gofetch-<uid>) to receive every path we open.
            if peer_credentials(sock)[1] not in (os.getuid(), 0):
                sock.close()
                self.untrusted = True
                return False
        except OSError:
            if sock is not None:
                sock.close()
            self.failures += 1
            self.next_attempt = now + self.backoff
            self.backoff = min(self.backoff * 2, self.BACKOFF_MAX)
            return False
        self.sock = sock
        self.generation += 1
        self.backoff = self.BACKOFF_MIN
        return True

    def send(self, message: bytes, wait: float = 0.0) -> Optional[bool]:
        """True sent; False the socket is full (dropped); None not connected or the connection broke."""
        sock = self.sock
        if sock is None:
            return None
        deadline = None
        while True:
            try:
                sock.send(message, SEND_FLAGS)
                return True
            except OSError as error:
                if error.errno in _FULL:
                    if wait <= 0:
                        return False
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + wait
                    remaining = deadline - now
                    if remaining <= 0:
                        return False
                    try:
                        select.select([], [sock], [], min(remaining, 0.05))
                    except (OSError, ValueError):
                        return False
                    continue
                if error.errno == errno.EMSGSIZE:
                    return False
                self.disconnect(retry_now=False)
                return None

    def disconnect(self, retry_now: bool = True) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self.next_attempt = 0.0 if retry_now else time.monotonic() + self.backoff

    def forget_after_fork(self) -> None:
        """In a forked child: close this process's copy of the parent's socket, reconnect from scratch."""
        self.disconnect(retry_now=True)
        self.backoff = self.BACKOFF_MIN
        self.generation = 0
        self.failures = 0


class CollectorServer:
    """The root's end of the channel from its children: accepts and receives, never blocks."""

    def __init__(self):
        self.address = "\0gofetch-hook-%d-%s" % (os.getpid(), os.urandom(6).hex())
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        self.sock.bind(self.address)
        self.sock.listen(256)
        self.conns: List[socket.socket] = []
        self.uid = os.getuid()
        self.rejected = 0

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                _, uid, _ = peer_credentials(conn)
                if uid != self.uid:
                    self.rejected += 1
                    conn.close()
                    continue
                conn.setblocking(False)
                try:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                except OSError:
                    pass
                self.conns.append(conn)
            except OSError:
                conn.close()

    def receive(self, limit: int = 4096) -> List[bytes]:
        """Every message waiting (at most ``limit``), oldest connection first."""
        self._accept()
        out: List[bytes] = []
        for conn in list(self.conns):
            while len(out) < limit:
                try:
                    data = conn.recv(1 << 18)
                except OSError as error:
                    if error.errno not in _FULL:
                        self._drop(conn)
                    break
                if not data:
                    self._drop(conn)
                    break
                out.append(data)
        return out

    def _drop(self, conn: socket.socket) -> None:
        try:
            self.conns.remove(conn)
        except ValueError:
            pass
        try:
            conn.close()
        except OSError:
            pass

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
        self.conns = []
        try:
            self.sock.close()
        except OSError:
            pass
