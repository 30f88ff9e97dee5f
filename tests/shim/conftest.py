"""Fixtures for the preload-shim tests: build the shim, listen like the daemon, run traced programs."""

from __future__ import annotations

import os
import pathlib
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from gofetch import wire  # noqa: E402

SHIM = ROOT / "preload" / "build" / "libgofetch_preload.so"


def _real_python() -> str:
    """The interpreter binary itself: pyenv's `python3` is a shell script that forks several processes."""
    for candidate in (sys.executable, getattr(sys, "_base_executable", None), "/usr/bin/python3"):
        if not candidate:
            continue
        path = os.path.realpath(candidate)
        try:
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    return path
        except OSError:
            continue
    raise RuntimeError("no ELF Python interpreter found")


PYTHON = _real_python()


@dataclass
class Message:
    conn: int
    peer_pid: int  # SO_PEERCRED of the connection
    header: wire.Header
    records: List[wire.Record]


class Listener:
    """A stand-in for the daemon: accepts SOCK_SEQPACKET connections and decodes every message.

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
                    except BlockingIOError:
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
                cid = key.data
                conn = self._open[cid]
                while True:
                    try:
                        data = conn.recv(wire.MAX_MESSAGE + 1)
                    except BlockingIOError:
                        break
                    except ConnectionError:
                        data = b""
                    with self._lock:
                        self._last_activity = time.monotonic()
                        if not data:
                            sel.unregister(conn)
                            conn.close()
                            del self._open[cid]
                            break
                        try:
                            header, records = wire.decode_message(data)
                        except ValueError as e:
                            self.errors.append(f"{e}: {data[:64]!r}")
                            continue
                        self.messages.append(Message(cid, self._peer[cid], header, records))
        sel.close()

    def start_reading(self) -> None:
        self._reading.set()

    def wait_quiet(self, timeout: float = 10.0, quiet: float = 0.15) -> None:
        """Waits until every connection reached EOF and nothing happened for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = time.monotonic() - self._last_activity
                done = not self._open or not self._reading.is_set()
            if done and idle >= quiet:
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

    def records(self, kind: Optional[int] = None) -> List[tuple]:
        """(message, record) pairs in arrival order."""
        with self._lock:
            return [(m, r) for m in self.messages for r in m.records if kind is None or r.kind == kind]

    def opens(self) -> List[wire.Record]:
        return [r for _, r in self.records(wire.Kind.OPEN)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in self._open.values():
            conn.close()


@pytest.fixture(scope="session")
def shim() -> str:
    result = subprocess.run(["make", "-C", str(ROOT / "preload")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr, result.stderr
    assert SHIM.exists()
    return str(SHIM)


@pytest.fixture
def listener(tmp_path):
    made: List[Listener] = []

    def make(reading: bool = True, name: str = "gofetch.sock") -> Listener:
        lst = Listener(str(tmp_path / name), reading=reading)
        made.append(lst)
        return lst

    yield make
    for lst in made:
        lst.close()
        assert not lst.errors, lst.errors


def traced_env(shim: Optional[str], socket_path: Optional[str], **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOFETCH_", "PYTHON", "LD_PRELOAD"))}
    if shim:
        env["LD_PRELOAD"] = shim
    if socket_path:
        env["GOFETCH_SOCKET"] = socket_path
    env.update(extra)
    return env


def run(
    args: Sequence[str],
    *,
    shim: Optional[str],
    socket_path: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    cwd: Optional[str] = None,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args),
        env=traced_env(shim, socket_path, **(env or {})),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, f"exit {result.returncode}\nstdout:{result.stdout}\nstderr:{result.stderr}"
    return result


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return run([PYTHON, "-c", code], **kwargs)


@pytest.fixture(scope="session")
def cprog(tmp_path_factory) -> Dict[str, str]:
    """The C test program, built plain and fortified."""
    out = tmp_path_factory.mktemp("cprog")
    src = pathlib.Path(__file__).with_name("traced_prog.c")
    built = {}
    for name, flags in (("plain", ["-O2", "-U_FORTIFY_SOURCE"]), ("fortify", ["-O2", "-D_FORTIFY_SOURCE=2"])):
        exe = str(out / f"traced_prog_{name}")
        subprocess.run(["cc", *flags, "-Wall", "-o", exe, str(src), "-pthread"], check=True)
        built[name] = exe
    return built
