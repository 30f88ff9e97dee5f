"""A forked worker whose sender idles still stamps a new epoch at once: the client
hands the preload shim the epoch cell, which the shim reads for every record.

    python fork_epoch_job.py '{"file": "/path/to/data", "idle_s": 1.5}'

The root turns the client on (shim present, no store), sets epoch 1 and forks a
worker (worker id 0). The worker sits idle, then tells the root; the root sets
epoch 7 and at once tells the worker, which opens and reads the file (the shim
reports it) and exits. Prints one JSON line: the worker's sender passes while
idle, and the client's stats in the root.
"""
import json
import os
import sys
import time

config = json.loads(sys.argv[1])

import gofetch  # noqa: E402
from gofetch import _runtime  # noqa: E402

gofetch.enable_hook(None)
gofetch.set_epoch(1)
to_root_r, to_root_w = os.pipe()
to_worker_r, to_worker_w = os.pipe()
pid = os.fork()
if pid == 0:
    gofetch.set_worker(0)
    rt = _runtime.current_runtime()
    time.sleep(0.2)  # the first passes done
    ticks = rt.ticks
    time.sleep(config["idle_s"])
    os.write(to_root_w, str(rt.ticks - ticks).encode())
    os.read(to_worker_r, 1)
    fd = os.open(config["file"], os.O_RDONLY)
    os.read(fd, 4096)
    os.close(fd)
    os._exit(0)
idle_ticks = int(os.read(to_root_r, 64))
gofetch.set_epoch(7)
os.write(to_worker_w, b"x")
os.waitpid(pid, 0)
print(json.dumps({"worker_idle_ticks": idle_ticks, "stats": gofetch.stats()}))
