"""The naive warm-up the `warmup` mode runs beside the job, like `vmtouch -t`.

Reads every file of the data set completely, one after another in directory
order (sorted walk), in one thread, from the moment the job starts, and stops
when done (or when the harness kills it at the end of the job). It knows
nothing of the job's order and has no budget: this is the "just cat the data
set" alternative to gofetch.

    python -m harness.warmup ROOT [--result OUT.json] [--chunk BYTES]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def walk_sorted(root: str):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name == "MANIFEST.json":
                continue
            yield os.path.join(dirpath, name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--result")
    parser.add_argument("--chunk", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    files = nbytes = 0
    for path in walk_sorted(args.root):
        with open(path, "rb", buffering=0) as f:
            while True:
                b = f.read(args.chunk)
                if not b:
                    break
                nbytes += len(b)
        files += 1
    result = {"files": files, "bytes": nbytes, "seconds": time.perf_counter() - started}
    if args.result:
        with open(args.result, "w", encoding="utf-8") as f:
            json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
