"""The shim's gofetch_preload_share_epoch, called as a client would (through ctypes),
without the gofetch client: which files it takes as the epoch cell, and that the
records take their epoch from the cell it took, in a forked child too.

    python share_epoch_job.py '{"files": ["/data/a", "/data/b"]}'

Prints one JSON line: per kind of file handed over, [return value, errno after]
(errno is 1234 before each call).
"""
import ctypes
import fcntl
import json
import mmap
import os
import sys

config = json.loads(sys.argv[1])
share = ctypes.CDLL(None, use_errno=True).gofetch_preload_share_epoch
share.argtypes = [ctypes.c_int]
share.restype = ctypes.c_int


def memfd(size, sealed):
    fd = os.memfd_create("cell", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if sealed:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
    return fd


def call(fd):
    ctypes.set_errno(1234)
    result = share(fd)
    return [result, ctypes.get_errno()]


def read(path):
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 4096)
    os.close(fd)


pipe_r, pipe_w = os.pipe()
results = {"pipe": call(pipe_r), "unsealed": call(memfd(4096, False)), "short": call(memfd(2, True)),
           "closed": call(999), "sealed": []}
cells = [memfd(4096, True) for _ in range(5)]
results["sealed"] = [call(fd) for fd in cells]
cell = mmap.mmap(cells[3], 4096)  # the last one taken (the fifth is refused)
cell[0:4] = (42).to_bytes(4, "little")
read(config["files"][0])
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(go_r, 1)
    read(config["files"][1])
    os._exit(0)
cell[0:4] = (43).to_bytes(4, "little")  # after the fork: the child's records see it
os.write(go_w, b"x")
os.waitpid(pid, 0)
print(json.dumps(results))
