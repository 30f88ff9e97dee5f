"""gofetch's Python client: traces which files a training job reads and tells the
gofetch daemon, ahead of time, which files it will read next.

    from gofetch import enable_hook
    enable_hook("traces.db")          # every data file the job and its DataLoader workers read

    import gofetch
    gofetch.lookahead(loader)         # announce each epoch's files, in order (automatic with enable_hook)
    gofetch.stats()                   # counters: recorded, dropped, errors, ...

Standard library only; PyTorch is used when the application imports it, never
imported by gofetch. ``gofetch.wire`` is the wire-format codec
(docs/wire-format.md).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional

from . import wire
from ._lookahead import LookaheadSampler, path_resolver
from ._lookahead import lookahead as _lookahead_loader
from ._runtime import sample_scope

__version__ = "0.1.0"

__all__ = [
    "enable_hook", "disable_hook", "stats", "flush", "set_worker", "set_epoch", "get_epoch", "get_worker",
    "lookahead", "LookaheadSampler", "path_resolver", "sample_scope", "wire", "__version__",
]


def enable_hook(
    db=None,
    *,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    socket: Optional[str] = None,
    stream: bool = True,
    lookahead: bool = True,
    trace_mmap: bool = True,
    queue_capacity: int = 1 << 17,
    flush_interval: float = 0.02,
    db_interval: float = 0.1,
    busy_timeout_ms: int = 1000,
    accesses: bool = True,
):
    """Starts tracing this process and the processes it forks.

    db:        SQLite trace store to write (docs/store.md), or None to only stream to the daemon.
    include:   path prefixes to record (default: everything not excluded; env GOFETCH_INCLUDE).
    exclude:   path prefixes never recorded, replacing the default list (/proc /sys /dev /usr /lib
               /lib64 /etc /run /var/lib/dpkg; env GOFETCH_EXCLUDE). The interpreter's prefixes and
               site-packages, dist-packages and __pycache__ are always excluded.
    socket:    the daemon's socket (default $GOFETCH_SOCKET, else
               ${XDG_RUNTIME_DIR:-/tmp}/gofetch-<uid>/gofetch.sock); stream=False never connects.
    lookahead: plan every map-style torch DataLoader (see gofetch.lookahead), once the
               application imports torch.
    accesses:  False sends the daemon no accesses (another tracer reports them, such as a
               kernel trace source); announcements and epoch records still go. With the
               preload shim loaded the shim reports them whatever this says.

    Idempotent: a second call while enabled returns at once. Never raises into
    reads; failures are counted in stats().
    """
    from . import _lookahead as lookahead_module
    from . import _runtime

    rt = _runtime.enable(
        db, include=list(include) if include is not None else None,
        exclude=list(exclude) if exclude is not None else None,
        socket_path=socket, stream=stream, flush_interval=flush_interval, db_interval=db_interval,
        busy_timeout_ms=busy_timeout_ms, queue_capacity=queue_capacity, trace_mmap=trace_mmap,
        accesses=accesses,
    )
    if lookahead:
        lookahead_module.install_torch_integration(auto=True)
    else:
        lookahead_module.install_torch_integration(auto=False)
    return rt


def disable_hook() -> None:
    """Stops tracing: restores open(), writes what is queued, ends the run, closes the store."""
    from . import _runtime

    _runtime.disable()


def stats() -> Dict[str, Any]:
    """This process's counters.

    recorded: events seen; dropped: events a destination did not get because of
    overload or failure (queue, daemon socket, channel to the root process,
    database); errors: internal and database errors. The detail: queue_dropped,
    daemon_sent/daemon_dropped/daemon_unconnected (no daemon), collector_* (the
    channel from workers to the root process), db_written/db_errors/db_dropped/
    db_skipped_locked (a daemon holds the store's lock), lookahead_*, learned.
    """
    from . import _runtime

    return _runtime.stats()


def flush(timeout: float = 5.0) -> bool:
    """Waits until what this process has queued has been handed on (in the root: written)."""
    from . import _runtime

    return _runtime.flush(timeout)


def set_worker(worker_id: Optional[int]) -> None:
    """Tags this process's events with a data-loader worker id (None: -1, the main process)."""
    from . import _runtime

    _runtime.set_worker(worker_id)


def set_epoch(epoch: Optional[int]) -> None:
    """Tags the events of this process and its forked workers with ``epoch`` and tells the daemon.

    A data loader planned by lookahead numbers its epochs itself (0, 1, ...);
    an explicit set_epoch(n) makes its next epoch n.
    """
    from . import _runtime

    _runtime.set_epoch(epoch)


def get_epoch() -> Optional[int]:
    from . import _runtime

    return _runtime.get_epoch()


def get_worker() -> int:
    from . import _runtime

    return _runtime.get_worker()


def lookahead(loader, path_of: Optional[Callable[[Any], Any]] = None):
    """Announces ``loader``'s sample files to the daemon at the start of every epoch, in the
    order it will read them, without changing that order. Returns ``loader``."""
    return _lookahead_loader(loader, path_of)
