"""The hook's interception: sees the reads and queues them; this process's sender
(``_sender.Runtime``, the pump, a background thread) ships them — to the daemon
over its socket, and into SQLite. This module starts and stops both
(``enable``/``disable``) and owns the per-process state a fork replaces.

Reads are observed by replacing ``builtins.open`` / ``io.open``: for a read-only
open of a wanted path, the file object stack is built the way ``io.open`` builds
it, but on a subclass of ``io.FileIO`` whose ``readinto``/``read``/``readall``/
``seek``/``close`` note what happened. The buffered and text layers above it are
the real ``io.BufferedReader`` / ``io.TextIOWrapper``, so ``with``, ``isinstance``
and ``type(f)`` checks see exactly what they would without the hook; the events
are the raw reads that reach the kernel (as the preload shim sees them).
``mmap.mmap`` of a traced file is recorded too.

Processes: the process that calls ``enable_hook`` first is the *root*. It alone
writes SQLite (one connection in its pump thread, so file ids are allocated in
one place). Its children — forked DataLoader workers, spawned processes that
call ``enable_hook`` with the same database — are *clients*: their pump sends
their events to the root over a ``SOCK_SEQPACKET`` socket in the abstract
namespace (address in ``GOFETCH_HOOK_COLLECTOR``). Every process streams its own
events to the daemon on its own connection, as the wire format wants.

Nothing here raises into the application: every failure is caught and counted.
"""

from __future__ import annotations

import atexit
import builtins
import collections
import ctypes
import gc
import io
import mmap as _mmap_module
import os
import stat
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from . import _state, wire
from ._filter import PathFilter
from ._links import default_socket_path
from ._sender import Runtime
from ._state import CLOSE, EPOCH, MAP, MMAP, OPEN, READ, Counters  # the queue's item kinds

UNKNOWN_EPOCH = wire.UNKNOWN_EPOCH
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)

ENV_COLLECTOR = "GOFETCH_HOOK_COLLECTOR"
ENV_DB = "GOFETCH_HOOK_DB"
# "/proc/PID/fd/N": the epoch cell of process PID, which a child it starts with a new
# interpreter (multiprocessing's spawn and forkserver) maps to share its epochs.
ENV_EPOCH_CELL = "GOFETCH_EPOCH_CELL"

_orig_open = io.open
_fallback_open = io.open  # what untraced opens go to: builtins.open as enable() found it
_orig_os_exit = os._exit
_orig_mmap = _mmap_module.mmap
_FileIO = io.FileIO
_fio_readinto = io.FileIO.readinto
_fio_read = io.FileIO.read
_fio_readall = io.FileIO.readall
_fio_seek = io.FileIO.seek
_fio_close = io.FileIO.close
_mono = time.monotonic_ns
_tid = threading.get_native_id
_READ_MODES = frozenset(("r", "rb", "rt", "br", "tr"))
_BINARY_MODES = frozenset(("rb", "br"))


# ---------------------------------------------------------------------------------------------
# Hot state, module globals (read on every event)

_active = False          # interception on
_q: "collections.deque" = collections.deque()
_cap = 1 << 17
_C = _state.counters


def _parent_epoch_cell() -> Optional[_mmap_module.mmap]:
    """The epoch cell of the process that started this interpreter, when it left one
    (``ENV_EPOCH_CELL``) and is this process's parent: a DataLoader worker under spawn,
    or the forkserver whose forked workers then share it too. Another process that
    inherited the variable (a grandchild, an unrelated job) keeps its own epochs."""
    path = os.environ.get(ENV_EPOCH_CELL, "")
    parts = path.split("/")
    if len(parts) != 5 or parts[:2] != ["", "proc"] or parts[3] != "fd" or parts[2] != str(os.getppid()):
        return None
    global _parent_cell

    def mapped(fd):
        try:
            st = os.fstat(fd)
            return _orig_mmap(fd, _mmap_module.PAGESIZE), (st.st_dev, st.st_ino)
        except (OSError, ValueError):
            return None

    found = _with_file(path, os.O_RDWR, mapped)
    if found is None:
        return None
    _parent_cell = (path, found[1])
    return found[0]


def _with_file(path: str, flags: int, use: Callable[[int], Any]) -> Any:
    """``use(fd)`` on ``path`` opened with ``flags`` (close-on-exec), closed afterwards;
    None when it cannot be opened."""
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return use(fd)
    finally:
        os.close(fd)


def _own_epoch_cell() -> tuple:
    """(cell, fd): a page that forked children share by inheritance and children with a
    new interpreter by opening /proc/PID/fd/fd; fd is -1 where memfd_create is missing."""
    try:
        fd = os.memfd_create("gofetch-epoch", getattr(os, "MFD_CLOEXEC", 1) | getattr(os, "MFD_ALLOW_SEALING", 2))
        os.ftruncate(fd, _mmap_module.PAGESIZE)
        cell = _orig_mmap(fd, _mmap_module.PAGESIZE)
    except (AttributeError, OSError, ValueError):
        return _orig_mmap(-1, _mmap_module.PAGESIZE), -1  # MAP_SHARED|MAP_ANONYMOUS
    try:
        # Its size fixed for good: the shim maps it too, and only a sealed cell (no SIGBUS
        # from a file shrunk under its mapping).
        import fcntl
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    except (ImportError, AttributeError, OSError):
        pass  # the shim then refuses the cell and takes the epoch from set_worker
    return cell, fd


_parent_cell: Optional[tuple] = None  # (path, (dev, ino)) of a parent's cell (a spawned child)
# None: a child that has not learnt its worker id yet (a forked child, or one started by
# multiprocessing with a new interpreter); it asks torch at its first event.
_epoch_cell = _parent_epoch_cell()
_worker: Optional[int] = None if _epoch_cell is not None else -1
_epoch_fd = -1
if _epoch_cell is None:
    _epoch_cell, _epoch_fd = _own_epoch_cell()
_epoch = memoryview(_epoch_cell).cast("I")
if _worker == -1:
    _epoch[0] = UNKNOWN_EPOCH  # a cell of our own; a parent's keeps its epoch
_fd_table: Dict[int, tuple] = {}
_scope = threading.local()   # .v = (dataset key, index) while a sample is being fetched
_learn_sink: Optional[Callable[[int, Any, str], None]] = None
_shim: Optional[Callable[[int, int], None]] = None
_send_accesses = True  # False: another tracer (a kernel source) reports the accesses
# True when no destination wants this process's access events: another tracer (the
# preload shim, a kernel source) reports them and no trace store is written. Opens
# are then only noted (learning, worker tags) and reads go untouched, at no cost.
_light = False
_shim_applied = (None, None)
_shim_reads_epoch = False  # the shim maps the epoch cell itself (_hand_cell_to_shim); forked children inherit it
_filter: Optional[PathFilter] = None
_rt: Optional["Runtime"] = None
_last_rt: Optional["Runtime"] = None
_rt_lock = threading.Lock()


def _current_worker() -> int:
    w = _worker
    if w is None:
        w = _resolve_worker()
    return w


def _resolve_worker() -> int:
    """A child not yet identified: ask torch (only if the application imported it)."""
    global _worker
    data = sys.modules.get("torch.utils.data")
    if data is not None:
        try:
            info = data.get_worker_info()
        except Exception:
            info = None
        if info is not None:
            try:
                _worker = int(info.id)
                _sync_shim()
                return _worker
            except Exception:
                pass
    return -1


def identify_worker() -> None:
    """Learns this process's worker id now if it does not know it (see _resolve_worker)."""
    try:
        if _worker is None:
            _resolve_worker()
    except Exception:
        _C.internal_errors += 1


def _hand_cell_to_shim() -> bool:
    """Hands the preload shim this family's epoch cell: it maps the file itself and stamps
    each record with the cell's epoch at that moment. A forked worker's records then
    carry a new epoch as soon as the root writes it, with no pass of the worker's sender.
    False where the cell is no file (no memfd_create), the shim is older, or it refused."""
    share = _shim_function("gofetch_preload_share_epoch", [ctypes.c_int], ctypes.c_int)
    if share is None:
        return False
    if _epoch_fd >= 0:
        return share(_epoch_fd) == 0
    if _parent_cell is None:
        return False
    path, identity = _parent_cell

    def share_if_same(fd):
        # The same file as mapped at import (the parent's number may name another by now).
        try:
            st = os.fstat(fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == identity and share(fd) == 0

    return _with_file(path, os.O_RDONLY | os.O_NONBLOCK, share_if_same) is True


def _sync_shim() -> None:
    """Tells the preload shim (when loaded) the current worker and epoch."""
    global _shim_applied
    if _shim is None:
        return
    state = (_worker if _worker is not None else -1, _epoch[0])
    if state != _shim_applied:
        _shim_applied = state
        try:
            _shim(state[0], state[1])
        except Exception:
            _C.internal_errors += 1


def _emit(kind: int, raw: "FileIO", offset: int, length: int, t0: int) -> None:
    try:
        if len(_q) >= _cap:
            _C.queue_dropped += 1
            return
        w = _worker
        _q.append((kind, raw._gf, raw._gf_fd, offset, length, t0, _mono() - t0, _tid(),
                   w if w is not None else -1, _epoch[0], 0))
        _C.recorded += 1
    except Exception:
        _C.internal_errors += 1


# ---------------------------------------------------------------------------------------------
# Interception


class FileIO(_FileIO):
    """``io.FileIO`` that records its reads. Named FileIO so that its repr reads the same."""

    # Class-level defaults (instances get their own values in their __dict__ once traced):
    # no Python-level __init__ on the open path.
    _gf = None        # (path, dev, ino, size) while traced
    _gf_fd = -1
    _gf_pos = 0       # file position, kept from the reads and seeks

    def _gf_start(self, path: str, st, t0: int, positioned: bool) -> None:
        fd = self.fileno()
        self._gf = (path, st.st_dev, st.st_ino, st.st_size)
        self._gf_fd = fd
        self._gf_pos = os.lseek(fd, 0, os.SEEK_CUR) if positioned else 0
        _fd_table[fd] = self._gf
        if _worker is None:
            _resolve_worker()
        elif _shim is not None:
            _sync_shim()
        _emit(OPEN, self, OPEN_FLAGS, st.st_size, t0)
        scope = getattr(_scope, "v", None)
        if scope is not None:
            _learn(scope[0], scope[1], path)

    def readinto(self, b):
        if self._gf is None:
            return _fio_readinto(self, b)
        t0 = _mono()
        n = _fio_readinto(self, b)
        if n is not None:
            pos = self._gf_pos
            self._gf_pos = pos + n
            _emit(READ, self, pos, n, t0)
        return n

    def read(self, size=-1):
        if self._gf is None:
            return _fio_read(self, size)
        t0 = _mono()
        data = _fio_read(self, size)
        if data is not None:
            pos = self._gf_pos
            self._gf_pos = pos + len(data)
            _emit(READ, self, pos, len(data), t0)
        return data

    def readall(self):
        if self._gf is None:
            return _fio_readall(self)
        t0 = _mono()
        data = _fio_readall(self)
        if data is not None:
            pos = self._gf_pos
            self._gf_pos = pos + len(data)
            _emit(READ, self, pos, len(data), t0)
        return data

    def seek(self, pos, whence=0):
        result = _fio_seek(self, pos, whence)
        self._gf_pos = result
        return result

    def close(self):
        gf = self._gf
        if gf is None or self.closed:
            return _fio_close(self)
        t0 = _mono()
        try:
            return _fio_close(self)
        finally:
            try:
                if _fd_table.get(self._gf_fd) is gf:
                    del _fd_table[self._gf_fd]
                _emit(CLOSE, self, 0, 0, t0)
                self._gf = None
            except Exception:
                _C.internal_errors += 1


def _wanted_path(file) -> Optional[str]:
    path = os.fspath(file)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        return None
    if path[0] != "/":
        cwd = os.getcwd()
        if path.startswith("./"):
            path = path[2:]
        path = (cwd if cwd != "/" else "") + "/" + path
    if _filter is None or not _filter.wanted(path):
        return None
    if "\0" in path:
        _C.bad_paths += 1  # no file has such a name; the daemon refuses it
        return None
    return path


class _Fallback(Exception):
    pass


def _build(raw, mode, buffering, encoding, errors, newline, regular):
    """What io.open does after creating the raw file, for read-only modes (a regular file
    is never a terminal: no isatty() for it)."""
    binary = mode in _BINARY_MODES
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise _Fallback
    line_buffering = False
    if buffering == 1 or (not regular and buffering < 0 and raw.isatty()):
        if binary:
            raise _Fallback  # io.open warns and ignores it: let it
        buffering = -1
        line_buffering = True
    if buffering < 0:
        buffering = getattr(raw, "_blksize", 0)
        if buffering <= 1:
            buffering = io.DEFAULT_BUFFER_SIZE
    if buffering == 0:
        if binary:
            return raw
        raise _Fallback
    buffer = io.BufferedReader(raw, buffering)
    if binary:
        return buffer
    text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
    text.mode = mode
    return text


def _traced_open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None, closefd=True, opener=None):
    if _active and type(mode) is str and mode in _READ_MODES and not isinstance(file, int):
        try:
            path = _wanted_path(file)
        except Exception:
            path = None
        if path is not None and _light:
            result = _fallback_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
            try:
                _note_open(path)
            except Exception:
                _C.internal_errors += 1
            return result
        if path is not None:
            t0 = _mono()
            try:
                raw = FileIO(os.fspath(file), "r", closefd, opener)
            except OSError:
                raise  # exactly what io.open raises
            except Exception:
                return _fallback_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
            try:
                st = os.fstat(raw.fileno())
                regular = stat.S_ISREG(st.st_mode)
            except Exception:
                st, regular = None, False
            try:
                result = _build(raw, mode, buffering, encoding, errors, newline, regular)
            except Exception:
                try:
                    raw.close()
                except Exception:
                    pass
                if not regular:
                    raise  # never open a FIFO or a device twice; io.open fails the same way
                return _fallback_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
            if regular:  # FIFOs, devices...: not data, not traced
                try:
                    raw._gf_start(path, st, t0, opener is not None)
                except Exception:
                    raw._gf = None
                    _C.internal_errors += 1
            return result
    return _fallback_open(file, mode, buffering, encoding, errors, newline, closefd, opener)


def _note_open(path: str) -> None:
    """What an open tells when another tracer reports the accesses: the worker's tags
    for the shim, and which file a sample being learned opened."""
    if _worker is None:
        _resolve_worker()
    elif _shim is not None:
        _sync_shim()
    scope = getattr(_scope, "v", None)
    if scope is not None:
        _learn(scope[0], scope[1], path)


_traced_open.__doc__ = _orig_open.__doc__
_traced_open.__name__ = "open"
_traced_open.__qualname__ = "open"


class mmap(_orig_mmap):  # noqa: N801  (stands in for mmap.mmap)
    """``mmap.mmap`` that records a mapping of a traced file."""

    def __new__(cls, *args, **kwargs):
        m = _orig_mmap.__new__(cls, *args, **kwargs)
        if _active:
            try:
                fileno = args[0] if args else kwargs.get("fileno", -1)
                info = _fd_table.get(fileno) if fileno >= 0 else None
                if info is not None:
                    st = os.fstat(fileno)
                    if (st.st_dev, st.st_ino) == (info[1], info[2]):
                        offset = kwargs.get("offset", args[5] if len(args) >= 6 else 0)
                        _record_mmap(info, fileno, offset, len(m))
            except Exception:
                _C.internal_errors += 1
        return m


def _record_mmap(info, fd, offset, length) -> None:
    if len(_q) >= _cap:
        _C.queue_dropped += 1
        return
    w = _worker
    _q.append((MMAP, info, fd, offset, length, _mono(), 0, _tid(), w if w is not None else -1, _epoch[0], 0))
    _C.recorded += 1


def _learn(key, index, path) -> None:
    """The sample ``index`` of dataset ``key`` opened ``path`` (lookahead learns the mapping)."""
    try:
        sink = _learn_sink
        if sink is not None:
            sink(key, index, path)
        elif len(_q) < _cap:
            _q.append((MAP, key, index, path))
    except Exception:
        _C.internal_errors += 1


class sample_scope:  # noqa: N801
    """Context: files opened inside belong to sample ``index`` of the dataset with key ``key``."""

    __slots__ = ("value", "saved")

    def __init__(self, key, index):
        self.value = (key, index)

    def __enter__(self):
        self.saved = getattr(_scope, "v", None)
        _scope.v = self.value
        return self

    def __exit__(self, *exc):
        _scope.v = self.saved
        rt = _rt
        if rt is not None and rt.role == Runtime.CLIENT and _q:
            rt.wake.set()  # the root may need this mapping for the next epoch's announcement
        return False


# ---------------------------------------------------------------------------------------------
# The runtime of one process


def _shim_function(name: str, argtypes: list, restype):
    """The preload shim's exported function `name` when the shim is loaded, else None."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        return None
    function.argtypes = argtypes
    function.restype = restype
    return function


def _find_shim() -> Optional[Callable[[int, int], None]]:
    return _shim_function("gofetch_preload_set_worker", [ctypes.c_int, ctypes.c_uint], None)


class _Interception:
    """What this process's sender (``_sender.Runtime``) asks of the interception."""

    def queue(self) -> "collections.deque":
        return _q  # a forked child has its own

    def cap(self) -> int:
        return _cap

    def sends_accesses(self) -> bool:
        return _shim is None and _send_accesses  # with the shim loaded, it reports the accesses itself

    def shim_tags_alone(self) -> bool:
        """Whether the shim stamps this process's records right with no pass of its sender:
        it reads the epoch from the shared cell, and the worker id is known (a forked
        worker learns it from torch at its first pass or its first Python open)."""
        return _shim is not None and _shim_reads_epoch and _worker is not None

    def before_send(self) -> None:
        if _shim is not None:
            if _worker is None:
                _resolve_worker()
            _sync_shim()

    def learn(self, key, index, path) -> None:
        _learn(key, index, path)


_INTERCEPTION = _Interception()


def _after_fork_in_child() -> None:
    global _q, _C, _worker, _rt_lock, _learn_sink, _shim_applied
    # The child's collector leaves what it inherited alone (CPython's advice for a
    # fork without exec). The client's own objects shift the collector's counts, so
    # a forked DataLoader worker would otherwise run a full collection over the whole
    # inherited heap (torch's) within its first samples: 0.3 s of a worker per epoch,
    # measured, and every page it touches copied. Refcounting still frees the child's
    # garbage; only cycles among inherited objects wait for the worker's exit.
    try:
        gc.freeze()
    except Exception:
        pass
    _q = collections.deque()
    _C = _state.counters = Counters()
    _worker = None
    if _active:
        _share_epoch_cell()  # the inherited cell, now at this process's /proc entry
    _shim_applied = (None, None)
    _rt_lock = threading.Lock()
    rt = _rt
    if rt is None:
        return
    if rt.role != Runtime.LITE:
        _learn_sink = None  # the root learns; a child forwards
    try:
        rt.after_fork_in_child()
    except Exception:
        _C.internal_errors += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------------------------
# Public operations (wrapped by gofetch/__init__.py)


def _finish(timeout: float) -> None:
    """Final flush of this process: the pump's last pass, then the store closed (root)."""
    rt = _rt
    if rt is None or rt.pid != os.getpid():
        return
    rt.shutdown(timeout=timeout)
    if rt.stopped and rt.store is not None:  # never while the pump might still use the connection
        try:
            rt.store.close()
        except Exception:
            _C.internal_errors += 1


def _atexit() -> None:
    try:
        _finish(10.0)
    except BaseException:
        pass


def _patched_os_exit(status):
    try:
        _finish(2.0)
    except BaseException:
        pass
    _orig_os_exit(status)


def _register_atexit() -> None:
    """Our final flush must run after multiprocessing's (which joins or ends the children)."""
    util = sys.modules.get("multiprocessing.util")
    exit_function = getattr(util, "_exit_function", None) if util is not None else None
    if exit_function is not None:
        atexit.unregister(exit_function)
        atexit.register(_atexit)
        atexit.register(exit_function)
    else:
        atexit.register(_atexit)


_atexit_registered = False


def _ensure_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        _register_atexit()


def is_active() -> bool:
    """Whether interception is on in this process."""
    return _active


def shim_reports_accesses() -> bool:
    """Whether the preload shim is loaded in this process and reports its accesses."""
    return _shim is not None


def current_runtime() -> Optional["Runtime"]:
    """This process's runtime, or ``None`` (none started, or one inherited across a fork)."""
    rt = _rt
    return rt if rt is not None and rt.pid == os.getpid() else None


def ensure_runtime() -> "Runtime":
    """The process's runtime; a LITE one (announcements to the daemon only) when the hook is off."""
    global _rt
    with _rt_lock:
        if _rt is None or _rt.pid != os.getpid():
            _rt = Runtime(role=Runtime.LITE, db=None, socket_path=default_socket_path(), stream=True,
                          flush_interval=0.02, db_interval=0.1, busy_timeout_ms=1000, collector_address=None,
                          interception=_INTERCEPTION)
            _rt.start()
            _ensure_atexit()
        return _rt


def _env_address(value: str) -> str:
    # Environment variables cannot hold NUL: an abstract address travels as "@name".
    return "\0" + value[1:] if value.startswith("@") else value


def _share_epoch_cell() -> None:
    """Tells the children this process starts with a new interpreter where its epoch cell is."""
    if _epoch_fd >= 0:
        os.environ[ENV_EPOCH_CELL] = f"/proc/{os.getpid()}/fd/{_epoch_fd}"


def enable(db=None, *, include=None, exclude=None, socket_path=None, stream=True, flush_interval=0.02,
           db_interval=0.1, busy_timeout_ms=1000, queue_capacity=1 << 17, trace_mmap=True,
           accesses=True) -> "Runtime":
    global _rt, _active, _filter, _shim, _cap, _learn_sink, _worker, _send_accesses, _light, _shim_reads_epoch
    with _rt_lock:
        if _active:
            return _rt
        db_path = os.path.abspath(os.fspath(db)) if db is not None else None
        env_collector = os.environ.get(ENV_COLLECTOR) or ""
        env_db = os.environ.get(ENV_DB)
        joins = bool(env_collector) and env_db == (db_path or "")
        if socket_path is None:
            socket_path = default_socket_path()
        _filter = PathFilter(include=include, exclude=exclude)
        _cap = max(1024, int(queue_capacity))
        _shim = _find_shim()
        if _shim is not None and not _shim_reads_epoch:
            try:
                _shim_reads_epoch = _hand_cell_to_shim()
            except Exception:
                _C.internal_errors += 1
        _send_accesses = bool(accesses)
        _share_epoch_cell()
        env_worker = os.environ.get("GOFETCH_WORKER_ID")
        if env_worker:
            try:
                _worker = int(env_worker)
            except ValueError:
                pass
        old = _rt
        if old is not None and old.pid == os.getpid():
            old.shutdown(timeout=2.0)
        if joins:
            rt = Runtime(role=Runtime.CLIENT, db=None, socket_path=socket_path, stream=stream,
                         flush_interval=flush_interval, db_interval=db_interval, busy_timeout_ms=busy_timeout_ms,
                         collector_address=_env_address(env_collector), interception=_INTERCEPTION)
            rt.forward_events = bool(env_db)
        else:
            rt = Runtime(role=Runtime.ROOT, db=db_path, socket_path=socket_path, stream=stream,
                         flush_interval=flush_interval, db_interval=db_interval, busy_timeout_ms=busy_timeout_ms,
                         collector_address=None, interception=_INTERCEPTION)
            if rt.collector_address:
                os.environ[ENV_COLLECTOR] = "@" + rt.collector_address[1:]
                os.environ[ENV_DB] = db_path or ""
            _learn_sink = _state.root_learn_sink
        _rt = rt
        _light = (_shim is not None or not _send_accesses) and rt.store is None and not (rt.role == Runtime.CLIENT and rt.forward_events)
        rt.start()
        global _fallback_open
        _fallback_open = builtins.open if builtins.open is not _traced_open else _orig_open
        builtins.open = _traced_open
        io.open = _traced_open
        if trace_mmap:
            _mmap_module.mmap = mmap
        os._exit = _patched_os_exit
        _active = True
        _ensure_atexit()
        _sync_shim()
        return rt


def disable() -> None:
    """Restores open/mmap/os._exit, flushes, closes the store and the sockets."""
    global _active, _rt, _learn_sink, _last_rt
    with _rt_lock:
        if not _active:
            return
        _active = False
        if builtins.open is _traced_open:
            builtins.open = _fallback_open
        if io.open is _traced_open:
            io.open = _orig_open
        if _mmap_module.mmap is mmap:
            _mmap_module.mmap = _orig_mmap
        if os._exit is _patched_os_exit:
            os._exit = _orig_os_exit
        rt = _rt
        if rt is not None and rt.pid == os.getpid():
            _finish(10.0)
            if rt.collector is not None:
                rt.collector.close()
            if rt.daemon is not None:
                rt.daemon.disconnect()
            if rt.role == Runtime.ROOT:
                for name in (ENV_COLLECTOR, ENV_DB):
                    os.environ.pop(name, None)
        _learn_sink = None
        _rt = None
        _last_rt = rt  # stats() still describes it


def flush(timeout: float = 5.0) -> bool:
    """Waits until what this process queued so far has been handed on (root: written to SQLite)."""
    rt = _rt
    if rt is None or rt.thread is None or not rt.thread.is_alive():
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        start = rt.ticks
        rt.force_write = True
        rt.wake.set()
        while rt.ticks < start + 2 and time.monotonic() < deadline:
            time.sleep(0.002)
            rt.wake.set()
        if not _q and not rt.backlog and not rt.pending:
            return True
    return False


def set_worker(worker_id: Optional[int]) -> None:
    global _worker
    _worker = -1 if worker_id is None else int(worker_id)
    _sync_shim()


def set_epoch(epoch: Optional[int], *, explicit: bool = True, worker: Optional[int] = None,
              notify: bool = True) -> None:
    """Tags this process family's events with ``epoch`` and tells the daemon (kind-5 record)."""
    value = UNKNOWN_EPOCH if epoch is None else int(epoch) & 0xFFFFFFFF
    _epoch[0] = value
    if explicit:
        _state.explicit_epoch = None if epoch is None else int(epoch)
        _state.explicit_epoch_generation += 1
    _sync_shim()
    if notify and value != UNKNOWN_EPOCH and _rt is not None and len(_q) < _cap:
        w = _worker if worker is None else worker
        _q.append((EPOCH, value, w if w is not None else -1))
        # An idle sender looks seldom (_sender.IDLE_WAIT): the epoch goes now. Not a runtime
        # inherited across a fork: it has no thread here, and its event's lock may be held.
        try:
            if _rt.pid == os.getpid():
                _rt.wake.set()
        except Exception:
            _C.internal_errors += 1


def get_epoch() -> Optional[int]:
    value = _epoch[0]
    return None if value == UNKNOWN_EPOCH else value


def get_worker() -> int:
    return _current_worker()


def stats() -> Dict[str, Any]:
    """This process's counters; ``recorded``, ``dropped`` and ``errors`` sum up the rest."""
    c = _C
    out: Dict[str, Any] = c.as_dict()
    out["dropped"] = c.queue_dropped + c.daemon_dropped + c.collector_dropped + c.db_dropped
    out["errors"] = c.internal_errors + c.db_errors
    rt = _rt if _rt is not None else _last_rt
    out["active"] = _active
    out["role"] = rt.role if rt is not None else None
    out["pid"] = os.getpid()
    out["queued"] = len(_q)
    out["shim"] = _shim is not None
    out["daemon_connected"] = bool(rt is not None and rt.daemon is not None and rt.daemon.connected)
    # The socket at the daemon's address is another user's (not root's): nothing is sent to it.
    out["daemon_untrusted"] = bool(rt is not None and rt.daemon is not None and rt.daemon.untrusted)
    out["db"] = rt.db if rt is not None else None
    out["db_locked_by_other"] = bool(rt is not None and rt.store is not None and rt.store.locked_by_other)
    out["worker"] = _current_worker()
    out["epoch"] = get_epoch()
    return out
