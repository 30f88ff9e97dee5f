"""A worker whose sender idles still stamps a new epoch at once: the client hands
the preload shim the family's epoch cell, which the shim reads for every record.

    python fork_epoch_job.py '{"files": ["/data/a", "/data/b"], "idle_s": 1.5}'

The root turns the client on (shim present, no store) and sets epoch 1. Then, once
per start method, a worker: forked (worker id 0), then started with spawn (a new
interpreter that turns the client on itself and finds the root's cell through
GOFETCH_EPOCH_CELL). Each sits idle, then tells the root; the root sets a new epoch
(7, then 9) and at once tells the worker, which opens and reads its file (the shim
reports it) and exits. Prints one JSON line: each worker's sender passes while idle,
and the client's stats in the root.
"""
import json
import multiprocessing
import os
import sys
import time


def worker(path, idle_s, ready, go, worker_id):
    import gofetch
    from gofetch import _runtime

    gofetch.enable_hook(None)  # a spawned worker's own client; a forked one keeps the root's
    gofetch.set_worker(worker_id)
    rt = _runtime.current_runtime()
    time.sleep(0.2)  # the first passes done
    ticks = rt.ticks
    time.sleep(idle_s)
    ready.send(rt.ticks - ticks)
    go.recv()
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 4096)
    os.close(fd)


def main():
    config = json.loads(sys.argv[1])
    import gofetch

    gofetch.enable_hook(None)
    gofetch.set_epoch(1)
    idle = {}
    for method, path, epoch, worker_id in (("fork", config["files"][0], 7, 0), ("spawn", config["files"][1], 9, 1)):
        context = multiprocessing.get_context(method)
        ready_r, ready_w = context.Pipe(duplex=False)
        go_r, go_w = context.Pipe(duplex=False)
        process = context.Process(target=worker, args=(path, config["idle_s"], ready_w, go_r, worker_id))
        process.start()
        idle[method] = ready_r.recv()
        gofetch.set_epoch(epoch)
        go_w.send(True)
        process.join(30)
    print(json.dumps({"worker_idle_ticks": idle, "stats": gofetch.stats()}))


if __name__ == "__main__":
    main()
