"""End-to-end tests of libgofetch_preload.so: real programs, a real SOCK_SEQPACKET listener."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import pathlib
import subprocess
import textwrap
import time

import pytest

from conftest import PYTHON, PYTHON_INSTALL, run, run_python, traced_env
from gofetch import wire

K = wire.Kind
F = wire.Flag
UNKNOWN_EPOCH = wire.UNKNOWN_EPOCH


def make_files(directory: pathlib.Path, sizes, prefix="f"):
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        p = directory / f"{prefix}{i}.bin"
        p.write_bytes(os.urandom(size))
        paths.append(str(p))
    return paths


def by_file(records):
    """(dev, ino) -> records of that file, in arrival order."""
    out = collections.defaultdict(list)
    for r in records:
        out[(r.dev, r.ino)].append(r)
    return out


def key(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def py(code: str) -> str:
    return textwrap.dedent(code)


# --------------------------------------------------------------------------- #
# Plain Python reads                                                           #
# --------------------------------------------------------------------------- #


def test_open_read_close_of_n_files(shim, listener, tmp_path):
    lst = listener()
    sizes = [0, 1, 4096, 100_000, 300_001]
    paths = make_files(tmp_path / "data", sizes)
    out = run_python(
        py(f"""
        import json, os, time
        t0 = time.monotonic_ns()
        total = 0
        for p in {paths!r}:
            with open(p, "rb") as f:
                total += len(f.read())
        print(json.dumps({{"pid": os.getpid(), "total": total, "t0": t0, "t1": time.monotonic_ns()}}))
        """),
        shim=shim, socket_path=lst.path,
    )
    info = json.loads(out.stdout)
    assert info["total"] == sum(sizes)
    lst.wait_quiet()

    # Exactly N opens: nothing from the interpreter's startup, absolute paths in order.
    opens = lst.opens()
    assert [r.path for r in opens] == paths
    assert lst.connections == 1
    for m in lst.messages:
        assert m.header.source == wire.Source.PRELOAD
        assert m.header.pid == info["pid"] == m.peer_pid
        assert m.header.dropped == 0
        assert info["t0"] <= m.header.sent_ns
    files = by_file(r for _, r in lst.records())
    for path, size, o in zip(paths, sizes, opens):
        st = os.stat(path)
        assert (o.dev, o.ino, o.length) == (st.st_dev, st.st_ino, size)
        assert o.offset & os.O_ACCMODE == os.O_RDONLY and o.offset & os.O_CLOEXEC
        recs = files[(st.st_dev, st.st_ino)]
        assert [r.kind for r in recs][0] == K.OPEN and recs[-1].kind == K.CLOSE
        assert [r.kind for r in recs].count(K.CLOSE) == 1
        reads = [r for r in recs if r.kind == K.READ]
        assert sum(r.length for r in reads) == size
        # read(): offsets are the file position before each call, so they chain.
        pos = 0
        for r in reads:
            assert r.offset == pos and r.flags == 0
            pos += r.length
        assert reads[-1].length == 0, "the EOF read is recorded with length 0"
        for r in recs:
            assert r.fd == o.fd and r.tid == info["pid"]
            assert r.worker_id == -1 and r.epoch == UNKNOWN_EPOCH
            assert info["t0"] <= r.time_ns <= info["t1"]
            assert r.duration_ns < 1_000_000_000
        assert all(r.duration_ns > 0 for r in reads + [o])
        times = [r.time_ns for r in recs]
        assert times == sorted(times)


def test_pread_read_readv_preadv(shim, listener, tmp_path):
    lst = listener()
    (path,) = make_files(tmp_path, [10_000])
    out = run_python(
        py(f"""
        import os
        fd = os.open({path!r}, os.O_RDONLY)
        got = [
            len(os.pread(fd, 100, 1000)),
            len(os.read(fd, 10)),
            os.readv(fd, [bytearray(20), bytearray(30)]),
            os.preadv(fd, [bytearray(5), bytearray(6)], 4000),
            len(os.read(fd, 5)),
            len(os.pread(fd, 100, 9990)),
            len(os.pread(fd, 100, 20000)),
        ]
        os.close(fd)
        print(got)
        """),
        shim=shim, socket_path=lst.path,
    )
    assert out.stdout.strip() == "[100, 10, 50, 11, 5, 10, 0]"
    lst.wait_quiet()
    reads = [(r.flags, r.offset, r.length) for _, r in lst.records(K.READ)]
    assert reads == [
        (F.POSITIONAL, 1000, 100),
        (0, 0, 10),
        (F.VECTORED, 10, 50),
        (F.VECTORED | F.POSITIONAL, 4000, 11),
        (0, 60, 5),
        (F.POSITIONAL, 9990, 10),
        (F.POSITIONAL, 20000, 0),
    ]
    assert all(r.duration_ns > 0 for _, r in lst.records(K.READ))


def test_mmap_of_a_file(shim, listener, tmp_path):
    lst = listener()
    (path,) = make_files(tmp_path, [50_000])
    out = run_python(
        py(f"""
        import hashlib, mmap
        with open({path!r}, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            digest = hashlib.sha256(m[:]).hexdigest()
            m.close()
            m = mmap.mmap(f.fileno(), 8192, offset=4096, access=mmap.ACCESS_READ)
            m.close()
        anon = mmap.mmap(-1, 4096)
        anon.close()
        print(digest)
        """),
        shim=shim, socket_path=lst.path,
    )
    assert out.stdout.strip() == hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    lst.wait_quiet()
    maps = [(r.dev, r.ino, r.offset, r.length) for _, r in lst.records(K.MMAP)]
    assert maps == [(*key(path), 0, 50_000), (*key(path), 4096, 8192)]  # the anonymous map is not an event


def test_relative_paths_dirfd_and_symlinks(shim, listener, tmp_path):
    lst = listener()
    (tmp_path / "sub").mkdir()
    for name in ("rel.txt", "sub/x.txt", "sub/y.txt"):
        (tmp_path / name).write_text(name)
    os.symlink("rel.txt", tmp_path / "link.txt")
    run_python(
        py("""
        import os
        open("rel.txt").read()
        open("./sub/x.txt").read()
        open("link.txt").read()
        d = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
        for name in ("y.txt", "../rel.txt", "./y.txt"):
            fd = os.open(name, os.O_RDONLY, dir_fd=d)
            os.read(fd, 100)
            os.close(fd)
        os.close(d)
        """),
        shim=shim, socket_path=lst.path, cwd=str(tmp_path),
    )
    lst.wait_quiet()
    t = str(tmp_path)
    opens = lst.opens()
    assert [r.path for r in opens] == [
        f"{t}/rel.txt", f"{t}/sub/x.txt", f"{t}/link.txt",  # the link itself, not resolved
        f"{t}/sub/y.txt", f"{t}/sub/../rel.txt", f"{t}/sub/y.txt",
    ]
    assert (opens[2].dev, opens[2].ino) == key(tmp_path / "rel.txt")


# --------------------------------------------------------------------------- #
# C programs: stdio, fortified entry points, openat2, exit paths               #
# --------------------------------------------------------------------------- #


def test_c_stdio_fortify_openat_openat2(shim, listener, cprog, tmp_path):
    d = tmp_path / "cdata"
    (d / "sub").mkdir(parents=True)
    (d / "data.bin").write_bytes(os.urandom(5000))
    (d / "sub" / "rel.bin").write_bytes(os.urandom(300))
    data, rel = str(d / "data.bin"), str(d / "sub" / "rel.bin")

    undefined = subprocess.run(["nm", "-D", "--undefined-only", cprog["fortify"]], capture_output=True, text=True).stdout
    for sym in ("__open_2", "__read_chk", "__fread_chk"):
        assert sym in undefined, f"the fortified build should call {sym}"
    assert "__pread_chk" in undefined or "__pread64_chk" in undefined

    expected = [
        (K.OPEN, F.STDIO, data, None, 5000),
        (K.READ, F.STDIO, None, 0, 1000),
        (K.READ, F.STDIO, None, 1000, 1000),
        (K.READ, F.STDIO, None, 2000, 1000),
        (K.READ, F.STDIO, None, 3000, 1000),          # fread_unlocked
        (K.CLOSE, F.STDIO, None, 0, 0),
        (K.OPEN, 0, rel, None, 300),                  # open("./sub/rel.bin")
        (K.READ, 0, None, 0, 300),
        (K.READ, F.POSITIONAL, None, 10, 50),
        (K.CLOSE, 0, None, 0, 0),
        (K.OPEN, 0, rel, None, 300),                  # openat(dirfd, "rel.bin")
        (K.READ, 0, None, 0, 7),
        (K.CLOSE, 0, None, 0, 0),
        (K.OPEN, 0, rel, None, 300),                  # openat2(dirfd, "rel.bin")
        (K.READ, 0, None, 0, 3),
        (K.CLOSE, 0, None, 0, 0),
    ]
    for build, exe in cprog.items():
        lst = listener(name=f"{build}.sock")
        out = run([exe, "io", str(d)], shim=shim, socket_path=lst.path)
        assert out.stdout.strip() == "openat2=1", "the shim's openat2 should be found by dlsym"
        lst.wait_quiet()
        got = [
            (r.kind, r.flags, r.path, None if r.kind == K.OPEN else r.offset, r.length)
            for _, r in lst.records()
        ]
        assert got == expected, build
        assert {(r.dev, r.ino) for r in lst.opens()} == {key(data), key(rel)}

    # Without the shim the program takes its fallback: no openat2 in glibc 2.36.
    assert run([cprog["plain"], "io", str(d)], shim=None).stdout.strip() == "openat2=0"


@pytest.mark.parametrize(
    "mode, delivered",
    [
        ("exit", True),     # destructor
        ("_exit", True),    # intercepted _exit
        ("_Exit", True),    # intercepted _Exit
        ("thread", True),   # pthread key destructor, then a raw exit_group
        ("raw", False),     # control: a raw exit_group skips every flush
    ],
)
def test_exit_paths_flush(shim, listener, cprog, tmp_path, mode, delivered):
    lst = listener()
    (path,) = make_files(tmp_path, [1000])
    # No age-based flush and no close: only the exit path can send the events.
    run([cprog["plain"], mode, path], shim=shim, socket_path=lst.path, env={"GOFETCH_FLUSH_MS": "60000"})
    lst.wait_quiet()
    got = [(r.kind, r.length) for _, r in lst.records()]
    if delivered:
        assert got == [(K.OPEN, 1000), (K.READ, 100)]
    else:
        assert got == [] and lst.connections == 1


# --------------------------------------------------------------------------- #
# Filtering                                                                    #
# --------------------------------------------------------------------------- #

READ_ALL = py("""
    import os, sys
    for p in sys.argv[1:]:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.read(fd, 64)
        except OSError:
            pass
        os.close(fd)
    """)


def test_default_excludes(shim, listener, tmp_path):
    lst = listener()
    keep = tmp_path / "keep.txt"
    hidden = [
        tmp_path / "lib/python3.11/site-packages/mod.py",
        tmp_path / "x/dist-packages/y.py",
        tmp_path / "pkg/__pycache__/a.cpython-311.pyc",
    ]
    for p in [keep, *hidden]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x" * 100)
    system = ["/etc/passwd", "/usr/lib/os-release", "/proc/self/status", "/dev/zero", "/sys/kernel/mm/transparent_hugepage/enabled"]
    interp_lib = os.path.join(PYTHON_INSTALL["stdlib"], "os.py")  # the interpreter's own stdlib
    assert os.path.isfile(interp_lib), interp_lib
    run([PYTHON, "-c", READ_ALL, *map(str, hidden), *system, interp_lib, str(keep)], shim=shim, socket_path=lst.path)
    lst.wait_quiet()
    assert [r.path for r in lst.opens()] == [str(keep)]
    assert len(lst.records(K.READ)) == 1


def test_gofetch_exclude_replaces_defaults(shim, listener, tmp_path):
    lst = listener()
    files = {name: tmp_path / name / "f.txt" for name in ("skip", "skipnot", "keep")}
    for p in files.values():
        p.parent.mkdir()
        p.write_text("data")
    run(
        [PYTHON, "-c", READ_ALL, *map(str, files.values()), "/etc/passwd"],
        shim=shim, socket_path=lst.path, env={"GOFETCH_EXCLUDE": f"{tmp_path}/skip/:/nonexistent"},
    )
    lst.wait_quiet()
    # The prefix is matched per path component (skipnot is not under skip); /etc is
    # no longer excluded; the interpreter's own lib/ still is (no stdlib opens).
    # (Other /etc files the interpreter's startup may read in this environment are
    # now legitimately recorded, so look only at the paths under test.)
    opened = [r.path for r in lst.opens()]
    candidates = {*map(str, files.values()), "/etc/passwd"}
    assert [p for p in opened if p in candidates] == [str(files["skipnot"]), str(files["keep"]), "/etc/passwd"]
    prefix = PYTHON_INSTALL["base_prefix"]
    assert not [p for p in opened if p.startswith(prefix + "/lib/") or "/site-packages/" in p]


def test_gofetch_include_restricts(shim, listener, tmp_path):
    lst = listener()
    files = [tmp_path / "keep" / "a.txt", tmp_path / "other" / "b.txt", tmp_path / "keep" / "deeper" / "c.txt"]
    for p in files:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("data")
    run(
        [PYTHON, "-c", READ_ALL, *map(str, files), "/etc/passwd", "/etc/group"],
        shim=shim, socket_path=lst.path, env={"GOFETCH_INCLUDE": f"{tmp_path}/keep:/etc/passwd"},
    )
    lst.wait_quiet()
    # /etc/passwd: a longer include prefix beats the default /etc exclusion.
    assert [r.path for r in lst.opens()] == [str(files[0]), str(files[2]), "/etc/passwd"]


def test_a_virtual_environments_own_files_are_excluded_however_it_is_started(shim, listener, tmp_path):
    # .venv/bin/python is a symlink to the interpreter the venv was made from: the
    # venv's own files (pyvenv.cfg, read at every start) are next to the link, where
    # /proc/self/exe does not point.
    venv = PYTHON_INSTALL["prefix"]
    assert os.path.isfile(os.path.join(venv, "pyvenv.cfg")), f"{PYTHON} is not a venv's interpreter (scripts/setup's .venv)"
    (data,) = make_files(tmp_path / "data", [100])
    read_data = f"open({data!r}, 'rb').read()\n"
    job = tmp_path / "job.py"
    job.write_text(f"#!{PYTHON}\n" + read_data)
    job.chmod(0o755)
    # A script in a bin/ folder that is no venv: its ../lib is data like any other.
    (near_script,) = make_files(tmp_path / "proj" / "lib", [100])
    script = tmp_path / "proj" / "bin" / "job.py"
    script.parent.mkdir()
    script.write_text(f"#!{PYTHON}\nopen({near_script!r}, 'rb').read()\n")
    script.chmod(0o755)
    # Only the data and the job's own script (which Python opens twice): no pyvenv.cfg.
    started = {
        "by its path": ([PYTHON, "-c", read_data], None, {data}),
        "by a relative path": ([os.path.relpath(PYTHON, os.path.dirname(venv)), "-c", read_data], os.path.dirname(venv), {data}),
        "by a relative path through ..": ([os.path.relpath(PYTHON, tmp_path), "-c", read_data], str(tmp_path), {data}),
        "through a shebang line": ([str(job)], None, {str(job), data}),
        "as a script in bin/": ([str(script)], None, {str(script), near_script}),
    }
    for i, (how, (args, cwd, expected)) in enumerate(started.items()):
        lst = listener(f"gofetch-{i}.sock")
        run(args, shim=shim, socket_path=lst.path, cwd=cwd)
        lst.wait_quiet()
        opened = [r.path for r in lst.opens()]
        assert set(opened) == expected, (how, opened)


def test_write_only_directories_and_special_files_not_tracked(shim, listener, tmp_path):
    lst = listener()
    rw = tmp_path / "rw.bin"
    rw.write_bytes(b"r" * 64)
    (tmp_path / "sub").mkdir()
    run_python(
        py(f"""
        import os
        t = {str(tmp_path)!r}
        with open(t + "/w.txt", "w") as f: f.write("x")
        with open(t + "/w.txt", "a") as f: f.write("y")
        fd = os.open(t + "/w.txt", os.O_WRONLY); os.write(fd, b"z"); os.close(fd)
        with open(t + "/rw.bin", "r+b") as f: f.read()
        d = os.open(t + "/sub", os.O_RDONLY); os.close(d)
        os.listdir(t)
        os.mkfifo(t + "/fifo")
        fd = os.open(t + "/fifo", os.O_RDONLY | os.O_NONBLOCK); os.read(fd, 10); os.close(fd)
        r, w = os.pipe(); os.write(w, b"abc"); os.read(r, 3)
        """),
        shim=shim, socket_path=lst.path,
    )
    lst.wait_quiet()
    opens = lst.opens()
    assert [r.path for r in opens] == [str(rw)]
    assert opens[0].offset & os.O_ACCMODE == os.O_RDWR
    assert [(r.kind, r.length) for _, r in lst.records() if r.kind == K.READ] == [(K.READ, 64), (K.READ, 0)]


def test_dup2_dup3_and_closerange_keep_the_table_right(shim, listener, tmp_path):
    lst = listener()
    a, b = make_files(tmp_path, [1000, 1000])
    run_python(
        py(f"""
        import os
        fa = os.open({a!r}, os.O_RDONLY)
        os.dup2(fa, 50)                        # dup2: 50 is file a too
        os.read(50, 11)
        os.dup2(fa, 51, inheritable=False)     # dup3
        os.read(51, 12)
        r, w = os.pipe(); os.write(w, b"x" * 100)
        os.dup2(r, fa)                         # fa is now a pipe: a close, then untracked
        os.read(fa, 13)
        fb = os.open({b!r}, os.O_RDONLY)
        os.read(fb, 14)
        os.closerange(50, 52)                  # close_range: closes 50 and 51
        os.read(fb, 15)
        """),
        shim=shim, socket_path=lst.path,
    )
    lst.wait_quiet()
    ka, kb = key(a), key(b)
    got = [(r.kind, r.fd, (r.dev, r.ino) == ka, r.length) for _, r in lst.records() if (r.dev, r.ino) in (ka, kb)]
    fa = got[0][1]
    fb = [g for g in got if g[0] == K.OPEN][1][1]
    assert got == [
        (K.OPEN, fa, True, 1000),
        (K.READ, 50, True, 11),
        (K.READ, 51, True, 12),
        (K.CLOSE, fa, True, 0),
        (K.OPEN, fb, False, 1000),
        (K.READ, fb, False, 14),
        (K.CLOSE, 50, True, 0),
        (K.CLOSE, 51, True, 0),
        (K.READ, fb, False, 15),
    ]


# --------------------------------------------------------------------------- #
# Processes and threads                                                        #
# --------------------------------------------------------------------------- #


def test_os_fork_child_sends_its_own_events_and_exits_with_os_exit(shim, listener, tmp_path):
    lst = listener()
    child_file, shared_file, pre_file = make_files(tmp_path, [5000, 1000, 1000])
    out = run_python(
        py(f"""
        import json, os
        pre = open({pre_file!r}, "rb", buffering=0); pre.read(10)   # buffered in the parent when it forks
        shared = os.open({shared_file!r}, os.O_RDONLY)
        pid = os.fork()
        if pid == 0:
            f = open({child_file!r}, "rb"); f.read()   # never closed
            os.read(shared, 7)                         # an fd inherited from the parent
            os._exit(0)                                # skips atexit and destructors
        os.waitpid(pid, 0)
        os.read(shared, 5)
        print(json.dumps({{"parent": os.getpid(), "child": pid}}))
        """),
        shim=shim, socket_path=lst.path, env={"GOFETCH_FLUSH_MS": "60000"},
    )
    pids = json.loads(out.stdout)
    lst.wait_quiet()
    assert lst.connections == 2
    for m in lst.messages:
        assert m.header.pid == m.peer_pid and m.header.pid in pids.values()
        assert m.header.dropped == 0
    recs = [(m.header.pid, r) for m in lst.messages for r in m.records]
    child = [r for pid, r in recs if pid == pids["child"]]
    parent = [r for pid, r in recs if pid == pids["parent"]]

    # The parent's buffered events went out once, from the parent (fork prepare),
    # not again from the child's copy of the buffer.
    pre = [r for pid, r in recs if (r.dev, r.ino) == key(pre_file)]
    assert [(r.kind, r.length) for r in pre if r.kind != K.CLOSE] == [(K.OPEN, 1000), (K.READ, 10)]
    assert all((r.dev, r.ino) != key(pre_file) for r in child)

    assert [(r.kind, r.path) for r in child if r.kind == K.OPEN] == [(K.OPEN, child_file)]
    child_reads = [r for r in child if r.kind == K.READ and (r.dev, r.ino) == key(child_file)]
    assert sum(r.length for r in child_reads) == 5000
    assert all(r.tid == pids["child"] for r in child)
    # The inherited fd is tracked in the child and shares the file position.
    assert [(r.offset, r.length) for r in child if (r.dev, r.ino) == key(shared_file)] == [(0, 7)]
    assert [(r.offset, r.length) for r in parent if (r.dev, r.ino) == key(shared_file) and r.kind == K.READ] == [(7, 5)]


def test_multiprocessing_fork_workers(shim, listener, tmp_path):
    lst = listener()
    paths = make_files(tmp_path, [1000 + i for i in range(9)])
    out = run_python(
        py(f"""
        import ctypes, json, multiprocessing as mp, os
        keep = []
        barrier = mp.get_context("fork").Barrier(3)   # inherited: every worker takes a task
        def init():
            worker = mp.current_process()._identity[0] - 1
            ctypes.CDLL(None).gofetch_preload_set_worker(worker, 7)
        def work(path):
            if not keep:
                barrier.wait(timeout=20)
            f = open(path, "rb")   # left open: only the worker's os._exit sends these events
            keep.append(f)
            return os.getpid(), path, len(f.read())
        if __name__ == "__main__":
            pool = mp.get_context("fork").Pool(3, initializer=init)
            results = pool.map(work, {paths!r}, chunksize=1)
            pool.close()
            pool.join()
            print(json.dumps({{"parent": os.getpid(), "results": results}}))
        """),
        shim=shim, socket_path=lst.path, env={"GOFETCH_FLUSH_MS": "60000"},
    )
    info = json.loads(out.stdout)
    lst.wait_quiet()
    reader = {path: pid for pid, path, _ in info["results"]}
    assert len(set(reader.values())) == 3, "every worker should have read files"
    opened = {}
    workers = collections.defaultdict(set)
    for m in lst.messages:
        assert m.header.pid == m.peer_pid
        for r in m.records:
            if r.kind == K.OPEN:
                opened[r.path] = m.header.pid
            workers[m.header.pid].add((r.worker_id, r.epoch))
    assert opened == reader
    for path in paths:
        reads = [r for _, r in lst.records(K.READ) if (r.dev, r.ino) == key(path)]
        assert sum(r.length for r in reads) == os.path.getsize(path)
    for pid in set(reader.values()):
        ((worker, epoch),) = workers[pid]
        assert 0 <= worker < 3 and epoch == 7
    assert info["parent"] not in workers


def test_threads_all_arrive_with_their_tids(shim, listener, tmp_path):
    lst = listener()
    paths = make_files(tmp_path, [2000] * 32)
    out = run_python(
        py(f"""
        import json, threading
        paths = {paths!r}
        owner = {{}}
        start = threading.Barrier(8)
        def work(chunk):
            start.wait()  # all eight race to the first event, while the connection is being opened
            for p in chunk:
                with open(p, "rb") as f:
                    f.read()
                owner[p] = threading.get_native_id()
        threads = [threading.Thread(target=work, args=(paths[i::8],)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(json.dumps(owner))
        """),
        shim=shim, socket_path=lst.path,
    )
    owner = json.loads(out.stdout)
    lst.wait_quiet()
    assert len(set(owner.values())) == 8
    opens = lst.opens()
    assert sorted(r.path for r in opens) == sorted(paths)
    assert {r.path: r.tid for r in opens} == owner
    files = by_file(r for _, r in lst.records())
    for p in paths:
        recs = files[key(p)]
        assert {r.tid for r in recs} == {owner[p]}
        assert sum(r.length for r in recs if r.kind == K.READ) == 2000
        assert recs[-1].kind == K.CLOSE


def test_threads_that_end_while_the_link_is_opened_lose_nothing(shim, slow_connect, listener, tmp_path):
    """The thread opening the connection is held for 400 ms (slow_connect.c), as a
    descheduled thread on a busy machine can be; eight threads read their files and
    end meanwhile. Their events wait in their buffers and go out once the link is up."""
    lst = listener()
    paths = make_files(tmp_path, [2000] * 33)
    out = run_python(
        py(f"""
        import json, threading, time
        paths = {paths!r}
        owner = {{}}
        def work(chunk):
            for p in chunk:
                with open(p, "rb") as f:
                    f.read()
                owner[p] = threading.get_native_id()
        opener = threading.Thread(target=work, args=(paths[:1],))
        opener.start()
        time.sleep(0.1)  # the opener is inside connect() now
        threads = [threading.Thread(target=work, args=(paths[1 + i::8],)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        ended_before_link = opener.is_alive()
        opener.join()
        print(json.dumps({{"owner": owner, "ended_before_link": ended_before_link}}))
        """),
        shim=f"{slow_connect} {shim}", socket_path=lst.path,
        env={"SLOW_CONNECT_PATH": lst.path, "SLOW_CONNECT_MS": "400"},
    )
    result = json.loads(out.stdout)
    assert result["ended_before_link"], "the eight threads should have ended while the link was being opened"
    lst.wait_quiet()
    assert sorted(r.path for r in lst.opens()) == sorted(paths)
    assert {r.path: r.tid for r in lst.opens()} == result["owner"]
    assert all(m.header.dropped == 0 for m in lst.messages)


# --------------------------------------------------------------------------- #
# Transparency: errno, return values, output, no daemon, full socket           #
# --------------------------------------------------------------------------- #

ERRNO_PROBE = py("""
    import ctypes, errno, json, os, sys
    path, tmp = sys.argv[1], sys.argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.open.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    libc.read.restype = ctypes.c_ssize_t
    libc.pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    libc.pread.restype = ctypes.c_ssize_t
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mmap.restype = ctypes.c_void_p
    if sys.argv[3:] == ["prefill"]:
        prefill = os.open(path, os.O_RDONLY)
        for i in range(30000):
            os.pread(prefill, 1, i % 100)   # with a listener that never reads: socket full
        os.close(prefill)
    res = {}
    def probe(name, call):
        ctypes.set_errno(4321)          # successful calls must leave errno alone
        r = call()
        res[name] = [r, ctypes.get_errno()]
        return r
    buf = ctypes.create_string_buffer(100)
    fd = probe("open", lambda: libc.open(path.encode(), os.O_RDONLY))
    probe("read", lambda: libc.read(fd, buf, 100))
    probe("pread", lambda: libc.pread(fd, buf, 100, 5))
    probe("read_eof", lambda: libc.pread(fd, buf, 100, 1 << 30))
    addr = probe("mmap", lambda: libc.mmap(None, 4096, 1, 1, fd, 0))
    res["mmap"][0] = addr not in (None, ctypes.c_void_p(-1).value)
    probe("close", lambda: libc.close(fd))
    probe("open_missing", lambda: libc.open(b"/nonexistent/file", os.O_RDONLY))
    probe("read_badfd", lambda: libc.read(9999, buf, 1))
    probe("close_badfd", lambda: libc.close(9999))
    try:
        open(tmp + "/missing.txt")
    except FileNotFoundError as e:
        res["py_missing"] = e.errno
    try:
        os.read(9999, 1)
    except OSError as e:
        res["py_badfd"] = e.errno
    d = os.open(tmp, os.O_RDONLY)
    try:
        os.read(d, 1)
    except IsADirectoryError as e:
        res["py_isdir"] = e.errno
    with open(path, "rb") as f:
        res["data"] = f.read().hex()
    print(json.dumps(res, sort_keys=True))
    """)


def test_errno_and_return_values_unchanged(shim, listener, tmp_path):
    (path,) = make_files(tmp_path, [3000])
    args = [PYTHON, "-c", ERRNO_PROBE, path, str(tmp_path)]
    baseline = run(args, shim=None).stdout
    res = json.loads(baseline)
    assert res["open"][1] == 4321 and res["read"] == [100, 4321] and res["pread"] == [100, 4321]
    assert res["read_eof"] == [0, 4321] and res["mmap"] == [True, 4321] and res["close"] == [0, 4321]
    assert res["open_missing"] == [-1, 2] and res["read_badfd"] == [-1, 9] and res["close_badfd"] == [-1, 9]
    assert (res["py_missing"], res["py_badfd"], res["py_isdir"]) == (2, 9, 21)
    assert res["data"] == pathlib.Path(path).read_bytes().hex()

    lst = listener()
    assert run(args, shim=shim, socket_path=lst.path).stdout == baseline
    lst.wait_quiet()
    kinds = [r.kind for _, r in lst.records() if (r.dev, r.ino) == key(path)]
    assert kinds[:6] == [K.OPEN, K.READ, K.READ, K.READ, K.MMAP, K.CLOSE], "the shim was active"
    # No daemon: the first event's failed connect() must not leak ENOENT either.
    assert run(args, shim=shim, socket_path=str(tmp_path / "nobody.sock")).stdout == baseline
    # Socket full and a send per record: every probe's send fails with EAGAIN inside the shim.
    stuck = listener(reading=False, name="stuck.sock")
    out = run(args + ["prefill"], shim=shim, socket_path=stuck.path, env={"GOFETCH_FLUSH_MS": "0"})
    assert out.stdout == baseline
    assert stuck.connections == 1


def test_no_daemon_output_identical_and_disable(shim, listener, tmp_path):
    paths = make_files(tmp_path / "data", [10, 5000, 70_000])
    code = py(f"""
        import hashlib, mmap, os
        for p in {paths!r}:
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            fd = os.open(p, os.O_RDONLY)
            tail = os.pread(fd, 16, 3).hex()
            m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            print(os.path.basename(p), h, tail, m[:4].hex())
            m.close(); os.close(fd)
        print(sorted(os.listdir({str(tmp_path / "data")!r})))
        """)
    baseline = run_python(code, shim=None)
    not_a_socket = tmp_path / "regular-file"
    not_a_socket.write_text("")
    for sock in (str(tmp_path / "absent.sock"), str(not_a_socket)):
        out = run_python(code, shim=shim, socket_path=sock)
        assert out.stdout == baseline.stdout
        assert out.stderr == baseline.stderr == ""

    lst = listener()
    out = run_python(code, shim=shim, socket_path=lst.path, env={"GOFETCH_DISABLE": "1"})
    assert out.stdout == baseline.stdout
    lst.wait_quiet()
    assert lst.connections == 0 and lst.messages == []


def test_full_socket_drops_and_counts_without_slowing_down(shim, listener, tmp_path):
    with open("/proc/sys/net/core/wmem_max") as f:
        wmem_max = int(f.read())
    n = 3 * (2 * wmem_max // 64) + 20_000     # several socket buffers' worth of 64-byte records
    if n > 5_000_000:
        pytest.skip(f"net.core.wmem_max={wmem_max} needs too many calls to fill")
    big, small = make_files(tmp_path, [8192, 100])
    code = py(f"""
        import os, sys, time
        fd = os.open({big!r}, os.O_RDONLY)
        pread = os.pread
        t0 = time.monotonic()
        for i in range({n}):
            pread(fd, 1, i & 4095)
        os.close(fd)
        print(f"phase1 {{time.monotonic() - t0:.4f}}", flush=True)
        if sys.argv[1:] == ["wait"]:
            sys.stdin.readline()
        with open({small!r}, "rb") as f:
            f.read()
        """)
    baseline = run([PYTHON, "-c", code], shim=None).stdout.split()
    base_s = float(baseline[1])

    lst = listener(reading=False)
    proc = subprocess.Popen(
        [PYTHON, "-c", code, "wait"], env=traced_env(shim, lst.path), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    line = proc.stdout.readline().split()
    assert line and line[0] == "phase1", proc.stderr.read()
    full_s = float(line[1])
    lst.start_reading()
    assert lst.wait_for(lambda l: len(l.messages) > 0)
    time.sleep(0.3)                                # let the listener drain the socket
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    lst.wait_quiet()

    # Blocked on a full socket buffer the program must not wait: compare with no shim at all.
    assert full_s < 3 * base_s + 1.0, (full_s, base_s)
    drops = [m.header.dropped for m in lst.messages]
    assert drops == sorted(drops), "the dropped counter is cumulative"
    assert drops[-1] > 0
    last = lst.messages[-1]
    assert [r.path for r in last.records if r.kind == K.OPEN] == [small], "events get through again"
    # Every phase-1 event (open, n reads, close) was either delivered or counted as dropped.
    delivered = sum(1 for _, r in lst.records() if (r.dev, r.ino) == key(big))
    assert delivered + last.header.dropped == n + 2
    assert 0 < delivered < n
    print(f"full socket: n={n} delivered={delivered} dropped={last.header.dropped} phase1 {full_s:.3f}s vs {base_s:.3f}s without shim")


def test_age_flush_before_blocking(shim, listener, tmp_path):
    (path,) = make_files(tmp_path, [500])
    code = py(f"""
        import sys, time
        f = open({path!r}, "rb", buffering=0)
        f.read(100)
        time.sleep(0.05)
        print("blocking", flush=True)
        sys.stdin.readline()     # a read on an untracked fd: the shim flushes before it blocks
        """)
    # "60000.000": how gofetch run and gofetch env write trace.flush_interval_ms.
    for flush_ms, expect_early in (("2", True), ("60000", False), ("60000.000", False)):
        lst = listener(name=f"s{flush_ms}.sock")
        proc = subprocess.Popen(
            [PYTHON, "-c", code], env=traced_env(shim, lst.path, GOFETCH_FLUSH_MS=flush_ms), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        assert proc.stdout.readline().strip() == "blocking"
        early = lst.wait_for(lambda l: len(l.records(K.READ)) > 0, timeout=1.0 if expect_early else 0.3)
        assert early == expect_early
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
        lst.wait_quiet()
        assert [(r.kind, r.length) for _, r in lst.records()][:2] == [(K.OPEN, 500), (K.READ, 100)]


def test_worker_id_from_environment(shim, listener, tmp_path):
    lst = listener()
    (path,) = make_files(tmp_path, [10])
    run_python(f"open({path!r}, 'rb').read()", shim=shim, socket_path=lst.path, env={"GOFETCH_WORKER_ID": "5"})
    lst.wait_quiet()
    recs = [r for _, r in lst.records()]
    assert recs and all(r.worker_id == 5 and r.epoch == UNKNOWN_EPOCH for r in recs)


# --------------------------------------------------------------------------- #
# PIL                                                                          #
# --------------------------------------------------------------------------- #


def test_pil_image_loads(shim, listener, tmp_path):
    probe = subprocess.run([PYTHON, "-c", "import PIL"], capture_output=True, text=True, env=traced_env(None, None))
    assert probe.returncode == 0, f"Pillow is not importable in {PYTHON} (scripts/setup installs it into .venv):\n{probe.stderr}"
    make = py(f"""
        from PIL import Image
        t = {str(tmp_path)!r}
        Image.new("RGB", (64, 48), (10, 20, 30)).save(t + "/small.jpg")
        Image.new("RGB", (64, 48), (10, 20, 30)).save(t + "/small.png")
        Image.new("L", (2000, 1000), 7).save(t + "/big.tif")
        """)
    run_python(make, shim=None)
    images = [str(tmp_path / n) for n in ("small.jpg", "small.png", "big.tif")]
    lst = listener()
    out = run_python(
        py(f"""
        from PIL import Image
        for p in {images!r}:
            with Image.open(p) as im:
                im.load()
                print(im.size, im.mode)
        """),
        shim=shim, socket_path=lst.path,
    )
    assert out.stdout.split("\n")[:3] == ["(64, 48) RGB", "(64, 48) RGB", "(2000, 1000) L"]
    lst.wait_quiet()
    # PIL's own modules live in site-packages: only the images show up.
    assert sorted(set(r.path for r in lst.opens())) == sorted(images)
    files = by_file(r for _, r in lst.records())
    for p in images[:2]:
        assert sum(r.length for r in files[key(p)] if r.kind == K.READ) == os.path.getsize(p)
    # A big uncompressed image is memory-mapped by PIL through Python's mmap module.
    assert any(r.kind == K.MMAP for r in files[key(images[2])])


def test_default_socket_path_under_xdg_runtime_dir(shim, tmp_path):
    from conftest import Listener

    runtime = tmp_path / "run"
    (runtime / f"gofetch-{os.getuid()}").mkdir(parents=True)
    lst = Listener(str(runtime / f"gofetch-{os.getuid()}" / "gofetch.sock"))
    try:
        (path,) = make_files(tmp_path, [10])
        run_python(f"open({path!r}, 'rb').read()", shim=shim, env={"XDG_RUNTIME_DIR": str(runtime)})
        lst.wait_quiet()
        assert [r.path for r in lst.opens()] == [path]
    finally:
        lst.close()
    assert not lst.errors



@pytest.mark.skipif(os.geteuid() != 0, reason="the system daemon's default is root's")
@pytest.mark.skipif(os.path.exists("/run/gofetch/gofetch.sock"), reason="a gofetch daemon listens at /run/gofetch here")
def test_root_without_xdg_runtime_dir_looks_under_run(shim, tmp_path):
    """Root's default socket is the system daemon's, /run/gofetch/gofetch.sock (nobody else
    can make that folder first, as they could /tmp/gofetch-0); the Python client agrees."""
    from conftest import Listener

    made = not os.path.isdir("/run/gofetch")
    os.makedirs("/run/gofetch", mode=0o700, exist_ok=True)
    lst = Listener("/run/gofetch/gofetch.sock")
    try:
        (path,) = make_files(tmp_path, [10])
        env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        run_python(f"open({path!r}, 'rb').read()", shim=shim, env={**env, "XDG_RUNTIME_DIR": ""})
        lst.wait_quiet()
        assert [r.path for r in lst.opens()] == [path]
    finally:
        lst.close()
        if made:
            os.rmdir("/run/gofetch")
    client = subprocess.run([PYTHON, "-c", "from gofetch._links import default_socket_path as d; print(d())"],
                            env={**env, "PYTHONPATH": str(pathlib.Path(__file__).parents[2] / "python")},
                            capture_output=True, text=True, check=True)
    assert client.stdout.strip() == "/run/gofetch/gofetch.sock"


STEPPER = py("""
    import sys
    for p in sys.argv[1:]:
        sys.stdin.readline()            # the test says when
        with open(p, "rb") as f:
            f.read()                    # open, read, EOF read, close: 4 events
        print("done", flush=True)
    sys.stdin.readline()                # stay alive until the test closes stdin
    """)


def stepper(shim, sock, paths):
    proc = subprocess.Popen(
        [PYTHON, "-c", STEPPER, *paths], env=traced_env(shim, sock), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )

    def step():
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done", proc.stderr.read()

    return proc, step


def test_daemon_started_late_is_found_after_backoff(shim, tmp_path):
    from conftest import Listener

    a, b = make_files(tmp_path, [100, 200])
    sock = str(tmp_path / "late.sock")
    proc, step = stepper(shim, sock, [a, b])
    try:
        step()                          # nobody listening: 4 events dropped, connect backs off 100 ms
        lst = Listener(sock)
        time.sleep(0.3)
        step()
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        lst.wait_quiet()
    finally:
        proc.kill()
    assert [r.path for r in lst.opens()] == [b]
    assert {m.header.dropped for m in lst.messages} == {4}
    assert {m.peer_pid for m in lst.messages} == {proc.pid}
    lst.close()


def test_daemon_restart_reconnects_on_the_same_fd(shim, tmp_path):
    from conftest import Listener

    a, b, c = make_files(tmp_path, [100, 200, 300])
    sock = str(tmp_path / "restart.sock")
    first = Listener(sock)
    proc, step = stepper(shim, sock, [a, b, c])
    try:
        step()
        assert first.wait_for(lambda l: len(l.records(K.CLOSE)) == 1)
        fds = {fd: os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")}
        (sock_fd,) = [fd for fd, target in fds.items() if target.startswith("socket:")]
        old_inode = fds[sock_fd]
        first.close()                   # the daemon goes away (its socket file too)...
        second = Listener(sock)         # ...and comes back
        step()                          # send fails (EPIPE): 4 events dropped, reconnect backs off
        time.sleep(0.3)
        step()
        assert second.wait_for(lambda l: len(l.records(K.CLOSE)) == 1)
        assert os.readlink(f"/proc/{proc.pid}/fd/{sock_fd}") not in (old_inode, None)
        sockets = [fd for fd in os.listdir(f"/proc/{proc.pid}/fd")
                   if os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith("socket:")]
        assert sockets == [sock_fd], "the new connection took over the old fd number, nothing leaked"
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        second.wait_quiet()
    finally:
        proc.kill()
    assert [r.path for r in first.opens()] == [a]
    assert [r.path for r in second.opens()] == [c]
    assert {m.header.dropped for m in second.messages} == {4}
    second.close()


def test_socket_fd_taken_behind_our_back_is_never_written(shim, listener, tmp_path):
    lst = listener()
    a, b = make_files(tmp_path, [100, 200])
    out = run_python(
        py(f"""
        import ctypes, os, socket, time
        open({a!r}, "rb").read()                        # connects
        def target(fd):
            try:
                return os.readlink(f"/proc/self/fd/{{fd}}")
            except FileNotFoundError:                   # listdir's own fd, closed by now
                return ""
        (sock,) = [int(fd) for fd in os.listdir("/proc/self/fd") if target(fd).startswith("socket:")]
        mine, peer = socket.socketpair()                # the application's own connection...
        ctypes.CDLL(None).syscall(33, mine.fileno(), sock)   # ...put on our fd by a raw dup2
        open({b!r}, "rb").read()                        # these events must not go into it
        peer.setblocking(False)
        try:
            leaked = len(peer.recv(65536))
        except BlockingIOError:
            leaked = 0
        time.sleep(0.05)                                # b's events age past the flush age...
        open({a!r}, "rb").read()                        # ...so this open finds the fd taken, drops
                                                        # them, and connects again at once, on a fresh fd
        print(leaked)
        """),
        shim=shim, socket_path=lst.path,
    )
    assert out.stdout.strip() == "0", "no event bytes may reach the application's socket"
    lst.wait_quiet()
    assert [r.path for r in lst.opens()] == [a, a]
    assert lst.connections == 2
    assert lst.messages[-1].header.dropped == 4


def test_the_shim_decides_every_case_of_the_shared_path_filter_table(shim, listener, tmp_path):
    """tests/contracts/path-filter.json, as the Swift kernel sources' filter and the
    Python client also run it: each case's file is opened under the shim with the
    case's GOFETCH_INCLUDE and GOFETCH_EXCLUDE, and recorded exactly when wanted."""
    table = pathlib.Path(__file__).resolve().parents[1] / "contracts" / "path-filter.json"
    cases = json.loads(table.read_text())["cases"]
    assert len(cases) >= 15

    def fill(text):
        return text.replace("{root}", str(tmp_path))

    lst = listener()
    sentinels = tmp_path / "sentinel"
    sentinels.mkdir()
    for number, case in enumerate(cases):
        path = pathlib.Path(fill(case["path"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("data")
        # Opened after the case's file and always wanted: once its record is in, the
        # case's record (on the same connection, before it) is in too, if there is one.
        sentinel = sentinels / str(number)
        sentinel.write_text("data")
        include = [fill(p) for p in case["include"]] + ([str(sentinels)] if case["include"] else [])
        before = [r.path for r in lst.opens()].count(str(path))
        run([PYTHON, "-c", READ_ALL, str(path), str(sentinel)], shim=shim, socket_path=lst.path,
            env={"GOFETCH_INCLUDE": ":".join(include), "GOFETCH_EXCLUDE": ":".join(map(fill, case["exclude"]))})
        assert lst.wait_for(lambda seen: str(sentinel) in [r.path for r in seen.opens()], timeout=10), case
        recorded = [r.path for r in lst.opens()].count(str(path)) > before
        assert recorded == case["wanted"], case


def test_the_shim_filter_compiled_alone_decides_every_case_of_the_shared_table(tmp_path):
    """preload/filter.c linked into a plain program (tests/shim/filter_cases.c), no
    LD_PRELOAD: the same table, decided by the filter's own functions."""
    table = pathlib.Path(__file__).resolve().parents[1] / "contracts" / "path-filter.json"
    cases = json.loads(table.read_text())["cases"]
    program = tmp_path / "filter_cases"
    preload = pathlib.Path(__file__).resolve().parents[2] / "preload"
    result = subprocess.run(
        ["cc", "-std=gnu11", "-Wall", "-Wextra", "-U_FORTIFY_SOURCE", "-pthread", "-o", str(program),
         str(pathlib.Path(__file__).with_name("filter_cases.c")), str(preload / "filter.c"), str(preload / "state.c")],
        capture_output=True, text=True)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr

    def fill(text):
        return text.replace("{root}", str(tmp_path))

    lines = "".join(":".join(map(fill, c["include"])) + "\t" + ":".join(map(fill, c["exclude"])) + "\t" + fill(c["path"]) + "\n"
                    for c in cases)
    decided = subprocess.run([str(program)], input=lines, capture_output=True, text=True, check=True).stdout.split()
    assert len(decided) == len(cases)
    for case, wanted in zip(cases, decided):
        assert (wanted == "1") == case["wanted"], case


@pytest.mark.skipif(os.geteuid() != 0, reason="listening as another user (nobody) needs root")
def test_a_socket_of_another_user_is_never_sent_to(shim, tmp_path):
    """Someone else made the socket's folder first (as /tmp/gofetch-<uid> can be): the
    shim sees the listener is neither its own user nor root and sends it nothing."""
    from squatter import Squatter

    paths = make_files(tmp_path / "data", [4096] * 6)
    with Squatter() as squat:
        out = run_python(py(f"""
            for p in {paths!r}:
                with open(p, "rb") as f:
                    f.read()
            print("read")
            """), shim=shim, socket_path=squat.path)
    assert out.stdout.strip() == "read"
    assert squat.received["bytes"] == 0, squat.received
    assert squat.received["connections"] == 1  # tried once, not again


def test_a_forked_child_closes_the_socket_only_if_the_number_is_still_ours(shim, listener, tmp_path):
    """The application may have put a file of its own on the socket's descriptor number
    behind the shim's back (a raw dup2 system call): the forked child must not close it."""
    lst = listener()
    (path,) = make_files(tmp_path / "data", [4096])
    out = run_python(py(f"""
        import ctypes, os, sys
        with open({path!r}, "rb") as f:
            f.read()                           # the shim connects: its socket takes a high number
        def link(fd):
            try:
                return os.readlink(f"/proc/self/fd/{{fd}}")
            except OSError:
                return ""                          # the listing's own descriptor, gone
        number = next(int(fd) for fd in os.listdir("/proc/self/fd") if link(fd).startswith("socket:"))
        mine = os.open({path!r}, os.O_RDONLY)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(33, mine, number) == number   # SYS_dup2, not through the shim's dup2
        pid = os.fork()
        if pid == 0:
            try:
                os.fstat(number)
                os._exit(0 if os.pread(number, 4, 0) == open({path!r}, "rb").read(4) else 3)
            except OSError:
                os._exit(2)                     # the shim closed the application's file
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """), shim=shim, socket_path=lst.path)
    assert out.stdout.strip() == "0"
