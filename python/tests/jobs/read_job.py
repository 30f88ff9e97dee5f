"""A job that reads files in every way Python code does, in the main process and
in forked worker processes, with gofetch.enable_hook on (or off).

    python read_job.py '{"files": [...], "db": PATH, "workers": 2, "epochs": 2, "styles": [...]}'

Each epoch: gofetch.set_epoch(e); worker w (a multiprocessing "fork" Process, or
the main process when workers is 0) reads files[w::workers] in the given styles.
The content every style returns is checked against os.read of the file (which
the hook does not see). With "pauses": [n, ...] (and no workers), the main
process prints PAUSE before its n-th file of epoch 0 and waits for a line on
stdin. Prints one JSON line.
"""
import hashlib
import io
import json
import mmap
import multiprocessing
import os
import pathlib
import sys
import time

config = json.loads(sys.argv[1])

import gofetch  # noqa: E402

if config.get("simulate_disk_full"):
    # Where no tmpfs can be mounted: every transaction fails as on a full disk.
    import sqlite3

    from gofetch import _store

    def _full(self, batches):
        raise sqlite3.OperationalError("database or disk is full")

    _store.StoreWriter._write = _full

if config.get("hook", True):
    gofetch.enable_hook(config.get("db"), include=config.get("include"), exclude=config.get("exclude"),
                        **config.get("hook_args", {}))


def truth(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_styles(path, styles):
    """Returns the list of styles whose content differed from the file."""
    expected = truth(path)
    bad = []
    for style in styles:
        if style == "full":
            with open(path, "rb") as f:
                assert isinstance(f, io.BufferedReader) and type(f) is io.BufferedReader
                got = f.read()
        elif style == "chunks":
            with open(path, "rb", buffering=0) as f:
                assert isinstance(f, io.FileIO) and isinstance(f, io.RawIOBase)
                parts = []
                while True:
                    b = f.read(1000)
                    if not b:
                        break
                    parts.append(b)
                got = b"".join(parts)
        elif style == "readinto":
            with open(path, "rb") as f:
                buf = bytearray(len(expected) + 10)
                n = f.readinto(buf)
                got = bytes(buf[:n])
        elif style == "text":
            with open(path, "r", encoding="latin-1", newline="") as f:
                assert isinstance(f, io.TextIOWrapper) and f.mode == "r"
                got = f.read().encode("latin-1")
        elif style == "lines":
            with open(path, encoding="latin-1", newline="") as f:
                got = "".join(line for line in f).encode("latin-1")
        elif style == "pathlib":
            got = pathlib.Path(path).read_bytes()
        elif style == "relative":
            old = os.getcwd()
            os.chdir(os.path.dirname(path))
            try:
                with open(os.path.basename(path), "rb") as f:
                    got = f.read()
            finally:
                os.chdir(old)
        elif style == "seek":
            with open(path, "rb") as f:
                f.seek(len(expected) // 2)
                tail = f.read()
                f.seek(0)
                head = f.read(len(expected) // 2)
                got = head + tail
        elif style == "mmap":
            with open(path, "rb") as f:
                if not expected:
                    got = b""
                else:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                        got = bytes(m[:])
        elif style == "tiny":
            with open(path, "rb", buffering=0) as f:
                parts = []
                while True:
                    b = f.read(16)
                    if not b:
                        break
                    parts.append(b)
                got = b"".join(parts)
        elif style == "unclosed":
            f = open(path, "rb")
            got = f.read()
            del f
        else:
            raise ValueError(style)
        if got != expected:
            bad.append(style)
    return bad


def work(files, styles, worker, result_queue):
    if worker is not None:
        gofetch.set_worker(worker)
    bad = {}
    for path in files:
        problems = read_styles(path, styles)
        if problems:
            bad[path] = problems
    if result_queue is not None:
        result_queue.put(bad)
    return bad


def main():
    files = config["files"]
    styles = config.get("styles", ["full"])
    workers = config.get("workers", 0)
    bad = {}
    ctx = multiprocessing.get_context("fork")
    for epoch in range(config.get("epochs", 1)):
        gofetch.set_epoch(epoch)
        if workers == 0:
            for i, path in enumerate(files):
                if epoch == 0 and i in config.get("pauses", ()):
                    print("PAUSE", flush=True)
                    sys.stdin.readline()
                    time.sleep(config.get("pause_sleep", 0.0))
                bad.update(work([path], styles, None, None))
                if config.get("read_sleep"):
                    time.sleep(config["read_sleep"])
        else:
            queue = ctx.Queue()
            procs = [ctx.Process(target=work, args=(files[w::workers], styles, w, queue)) for w in range(workers)]
            for p in procs:
                p.start()
            for _ in procs:
                bad.update(queue.get(timeout=60))
            for p in procs:
                p.join(60)
                assert p.exitcode == 0, p.exitcode
    flushed = gofetch.flush(5.0) if config.get("hook", True) else None
    if config.get("disable_at_end"):
        gofetch.disable_hook()  # the final flush: every event written or counted as dropped
    print(json.dumps({"bad": bad, "stats": gofetch.stats(), "pid": os.getpid(), "flushed": flushed}), flush=True)


if __name__ == "__main__":
    main()
