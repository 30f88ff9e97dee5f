"""The job a hostile client must not hurt (bench/hostile/run): announces its read order
to the daemon as the Python client's lookahead does, then reads every file in that
order with a few milliseconds of compute after each, under the preload shim.

    python3 victim.py SOCKET LIST STEP_MS [--no-announce]

Prints one JSON line: seconds spent waiting in open+read (the stall), files, wall.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "python"))
from gofetch import wire  # noqa: E402


def main() -> int:
    path, listing, step = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000
    order = open(listing).read().split()
    started = time.perf_counter()
    link = None
    if "--no-announce" not in sys.argv:
        link = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        link.connect(path)
        records = wire.lookahead_records([(p, -1, 0) for p in order], epoch=0)
        for message in wire.split_messages(records, pid=os.getpid()):
            link.send(message)
    stall = 0.0
    for name in order:
        t = time.perf_counter()
        with open(name, "rb") as f:
            f.read()
        stall += time.perf_counter() - t
        time.sleep(step)
    if link is not None:
        link.close()
    print(json.dumps({"stall_s": round(stall, 4), "files": len(order), "wall_s": round(time.perf_counter() - started, 3)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
