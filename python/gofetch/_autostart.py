"""Turns the client on at interpreter start-up (``python/inject/sitecustomize.py``).

``gofetch run`` and ``gofetch env`` set ``GOFETCH_PYTHON_HOOK``: ``1`` when the
preload shim reports the accesses (the client then only announces and tags; without
the shim loaded it reports them itself), ``announce`` when a kernel trace source
reports them (the client never does). The lookahead plans every map-style torch
DataLoader once the application imports torch; gofetch never imports torch itself.
"""

from __future__ import annotations

import sys


def start(mode: str) -> str:
    """Turns the client on; returns how it reports, for the run's status line."""
    from . import enable_hook
    from . import _runtime

    enable_hook(None, accesses=(mode != "announce"))
    shim = _runtime.shim_reports_accesses()
    reporter = "kernel source" if mode == "announce" else ("preload shim" if shim else "client")
    return "Python %d.%d, accesses by the %s" % (sys.version_info[0], sys.version_info[1], reporter)
