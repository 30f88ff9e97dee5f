"""Undo everything the harness set up, whatever way it ends.

`Cleanup` is a last-in-first-out list of undo actions (kill a job's processes,
remove a cgroup, unmount, detach a loop device). Used as a context manager it

- installs SIGINT, SIGTERM and SIGHUP handlers that raise `Interrupted`, so a
  Ctrl-C or a `kill` unwinds the stack like an exception does (every `finally`
  and `with` block runs);
- on leaving (normally, by an exception, or by `Interrupted`) ignores those
  signals while it runs every action still registered, newest first, each in
  its own try (one failing does not stop the others), and reports failures;
- registers itself with atexit as a last resort.

A SIGKILL of the harness cannot be caught: slowfs then unmounts itself (it is
started with PR_SET_PDEATHSIG), and the next harness start removes cgroups and
loop mounts left by harness processes that no longer exist (`cgroups.remove_stale`,
`storage.remove_stale`).
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import traceback
from typing import Callable, List, Optional, Tuple

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised in the main thread when the harness receives SIGINT/SIGTERM/SIGHUP."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class Cleanup:
    def __init__(self, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)):
        self._actions: List[Tuple[int, str, Callable[[], None]]] = []
        self._next = 0
        self._lock = threading.Lock()
        self._previous = {}
        self._entered = False
        self.log = log
        self.failures: List[str] = []

    # -- registry -------------------------------------------------------
    def push(self, name: str, action: Callable[[], None]) -> int:
        with self._lock:
            self._next += 1
            self._actions.append((self._next, name, action))
            return self._next

    def discard(self, token: int) -> None:
        """Forget an action (its resource was released in the normal way)."""
        with self._lock:
            self._actions = [a for a in self._actions if a[0] != token]

    def release(self, token: int) -> None:
        """Run one action now and forget it."""
        with self._lock:
            found = [a for a in self._actions if a[0] == token]
            self._actions = [a for a in self._actions if a[0] != token]
        for _, name, action in found:
            self._run(name, action)

    def pending(self) -> List[str]:
        with self._lock:
            return [name for _, name, _ in self._actions]

    def run_all(self) -> None:
        while True:
            with self._lock:
                if not self._actions:
                    return
                _, name, action = self._actions.pop()
            self._run(name, action)

    def _run(self, name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - clean-up must go on
            message = f"clean-up '{name}' failed: {exc!r}"
            self.failures.append(message)
            self.log(message)
            if not isinstance(exc, Exception):
                self.log(traceback.format_exc())

    # -- context manager and signals -------------------------------------
    def __enter__(self) -> "Cleanup":
        self._entered = True
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        atexit.register(self.run_all)
        return self

    def _on_signal(self, signum, frame) -> None:
        # Further signals are ignored until the clean-up is over.
        for sig in HANDLED_SIGNALS:
            try:
                signal.signal(sig, signal.SIG_IGN)
            except (ValueError, OSError):
                pass
        raise Interrupted(signum)

    def __exit__(self, exc_type, exc, tb) -> Optional[bool]:
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in HANDLED_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
        try:
            self.run_all()
        finally:
            atexit.unregister(self.run_all)
            if in_main:
                for sig, previous in self._previous.items():
                    signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            self._previous.clear()
            self._entered = False
        return None
