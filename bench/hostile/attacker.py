"""A hostile client of a shared gofetch daemon (bench/hostile/run starts it as `nobody`).

    python3 attacker.py SOCKET FOLDER MESSAGES

Sends at least MESSAGES messages, and goes on until its standard input closes
(the victim is done), over several connections, as fast as the socket takes
them (a full socket drops the message: the attacker never waits), a mix of:
random bytes; a valid header with a record count its body does not hold; records
with lengths past the end; lookahead announcements of FIFOs it made in FOLDER,
of /dev/zero, of /proc/1/cwd/… and /proc/self/…; the same file announced over
and over without a new start; and opens of ever new paths with changing sizes (a
catalog flood). Reconnects when the daemon closes a connection. Prints one JSON
line: messages sent, dropped (socket full), reconnects.
"""
from __future__ import annotations

import errno
import json
import os
import random
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "python"))
from gofetch import wire  # noqa: E402


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.setblocking(False)
    return s


def main() -> int:
    path, folder, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # GOFETCH_ATTACK=malformed: only the first three kinds; a list ("3,5") names the kinds to send.
    wanted = os.environ.get("GOFETCH_ATTACK", "all")
    kinds = {"all": [0, 1, 2, 3, 4, 5], "malformed": [0, 1, 2]}.get(wanted) or [int(k) for k in wanted.split(",")]
    rng = random.Random(7)
    fifos = []
    for i in range(16):
        fifo = os.path.join(folder, f"fifo{i}")
        os.mkfifo(fifo)
        fifos.append(fifo)
    pid = os.getpid()
    targets = fifos + ["/dev/zero", "/dev/urandom", "/proc/1/cwd/etc/shadow", "/proc/self/environ",
                       "/proc/1/root/etc/shadow", "/sys/kernel/mm/transparent_hugepage/enabled"]

    def messages():
        n = 0
        while True:
            n += 1
            choice = kinds[n % len(kinds)]
            if choice == 0:
                yield os.urandom(rng.randint(1, 4096))
            elif choice == 1:
                header = wire.Header(source=wire.Source.PRELOAD, record_count=0xFFFF, pid=pid, dropped=0, sent_ns=0)
                yield wire.encode_header(header) + os.urandom(64)
            elif choice == 2:
                good = wire.encode_message([wire.Record(kind=wire.Kind.OPEN, fd=3, path=f"{folder}/x{n}")], pid=pid)
                yield good[:-7] + struct.pack("<I", 0xFFFFFFF0) + b"\0\0\0"
            elif choice == 3:
                records = wire.lookahead_records([(t, -1, 0) for t in targets], epoch=n % 3)
                yield from wire.split_messages(records, pid=pid)
            elif choice == 4:
                # The same file again and again, never a new start: a list that would grow forever.
                records = [wire.Record(kind=wire.Kind.LOOKAHEAD, fd=-1, flags=0, worker_id=-1, offset=n // 6 + 1, length=0,
                                       epoch=0, path=fifos[0])]
                yield wire.encode_message(records, pid=pid, source=wire.Source.PYTHON_HOOK)
            else:
                # Opens of ever new paths, each with another size: the catalog fills (bounded).
                records = [wire.Record(kind=wire.Kind.OPEN, fd=3 + k, dev=1, ino=n * 8 + k, length=n,
                                       path=f"{folder}/flood/{n}/{k}.bin") for k in range(8)]
                yield wire.encode_message(records, pid=pid)

    connections = [connect(path) for _ in range(8)]
    sent = dropped = reconnects = 0
    source = messages()
    started = time.monotonic()
    done = False
    while not done:
        if (sent + dropped) % 1000 == 0 and sent + dropped >= total:
            done = bool(select.select([sys.stdin], [], [], 0)[0]) and not sys.stdin.readline()
        message = next(source)
        index = (sent + dropped) % len(connections)
        try:
            connections[index].send(message)
            sent += 1
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ENOBUFS):
                dropped += 1
            elif error.errno == errno.EMSGSIZE:
                dropped += 1
            else:
                reconnects += 1
                try:
                    connections[index].close()
                    connections[index] = connect(path)
                except OSError:
                    time.sleep(0.01)
    print(json.dumps({"messages": sent + dropped, "sent": sent, "dropped": dropped, "reconnects": reconnects,
                      "seconds": round(time.monotonic() - started, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
