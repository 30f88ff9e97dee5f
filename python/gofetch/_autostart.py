"""Turns the client on at interpreter start-up (``python/inject/sitecustomize.py``).

``gofetch run`` and ``gofetch env`` set ``GOFETCH_PYTHON_HOOK``: ``1`` when the
preload shim reports the accesses (the client then only announces and tags; without
the shim loaded it reports them itself), ``announce`` when a kernel trace source
reports them (the client never does). The lookahead plans every map-style torch
DataLoader once the application imports torch; gofetch never imports torch itself.
"""

from __future__ import annotations

import os
import sys


def start(mode: str) -> None:
    from . import enable_hook
    from . import _runtime

    enable_hook(None, accesses=(mode != "announce"))
    shim = _runtime._shim is not None
    reporter = "kernel source" if mode == "announce" else ("preload shim" if shim else "client")
    _status("on", "Python %d.%d, accesses by the %s" % (sys.version_info[0], sys.version_info[1], reporter))


def _status(state: str, detail: str) -> None:
    path = os.environ.get("GOFETCH_HOOK_STATUS")
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"{state} {os.getpid()} {detail}\n".encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except OSError:
        pass
