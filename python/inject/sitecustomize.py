# gofetch: `gofetch run` (and a shell set up with `eval "$(gofetch env)"`) put this
# folder on PYTHONPATH, so every Python interpreter the job starts imports this file
# at start-up. It runs the sitecustomize it hides (if there is one), then turns on
# the gofetch client's exact lookahead: each DataLoader epoch's files are announced
# to the daemon in the order the loader will read them, with no change to the script.
#
# Written so that any Python can parse it (the job may start an old interpreter):
# gofetch's part never raises; an interpreter it cannot serve runs exactly as before,
# and says why in the run's status file ($GOFETCH_HOOK_STATUS), which the summary shows.
import os
import sys


def _gofetch_status(state, detail):
    path = os.environ.get("GOFETCH_HOOK_STATUS")
    if not path:
        return
    try:
        line = "%s %d %s\n" % (state, os.getpid(), detail)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 384)  # 0600
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except Exception:
        pass


def _gofetch_chain():
    """Runs the next sitecustomize on sys.path, the one this file hides."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        import importlib.util
        from importlib.machinery import PathFinder
    except ImportError:  # Python 2
        import imp
        try:
            found = imp.find_module("sitecustomize", rest)
        except ImportError:
            return
        try:
            imp.load_module("sitecustomize", *found)
        finally:
            if found[0] is not None:
                found[0].close()
        return
    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _gofetch_start():
    mode = os.environ.get("GOFETCH_PYTHON_HOOK", "")
    if mode in ("", "0", "off"):
        return
    if sys.version_info < (3, 8):
        _gofetch_status("off", "Python %d.%d is older than 3.8, the oldest the client supports" % tuple(sys.version_info[:2]))
        return
    client = os.environ.get("GOFETCH_PYTHON_CLIENT", "")
    try:
        sys.path.insert(0, client)
        try:
            from gofetch import _autostart
        finally:
            try:
                sys.path.remove(client)
            except ValueError:
                pass
        _gofetch_status("on", _autostart.start(mode))
    except BaseException as error:  # noqa: B036 - never into the interpreter's start-up
        _gofetch_status("off", "the client did not start: %s: %s" % (type(error).__name__, error))


try:
    _gofetch_chain()
finally:
    _gofetch_start()
