"""A minimal gofetch listener for benchmarks: accepts every sender and reads as fast as it can.

usage: python3 drain.py --socket PATH
On SIGTERM/SIGINT prints messages, records and the highest `dropped` seen, then exits.
Only the header is parsed (python/gofetch/wire.py has the full decoder).
"""

import argparse
import os
import selectors
import signal
import socket
import struct
import sys

HEADER = struct.Struct("<2sBBHHIIQ")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(args.socket + ".tmp")
    listener.listen(128)
    os.rename(args.socket + ".tmp", args.socket)   # appears only once it accepts
    listener.setblocking(False)

    stats = {"connections": 0, "messages": 0, "records": 0, "max_dropped": 0, "bad": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while not stop:
        for key, _ in sel.select(timeout=0.1):
            if key.fileobj is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                stats["connections"] += 1
                continue
            conn = key.fileobj
            while True:
                try:
                    data = conn.recv(65536)
                except BlockingIOError:
                    break
                except ConnectionError:
                    data = b""
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    break
                if len(data) < HEADER.size or data[:2] != b"GF":
                    stats["bad"] += 1
                    continue
                _, _, _, count, _, _, dropped, _ = HEADER.unpack_from(data)
                stats["messages"] += 1
                stats["records"] += count
                stats["max_dropped"] = max(stats["max_dropped"], dropped)
    os.unlink(args.socket)
    print(" ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
