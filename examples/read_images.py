"""Reads an image folder the way a PyTorch DataLoader does, without PyTorch:
a seeded shuffle per epoch, N forked worker processes, each decoding its share.

    python examples/read_images.py /tmp/images --workers 2 --epochs 2
"""
import argparse
import multiprocessing as mp
import os
import random
import time


def load(path, evict):
    try:
        from PIL import Image
    except ImportError:
        Image = None
    with open(path, "rb") as f:
        if Image is None:
            size = len(f.read())
        else:
            with Image.open(f) as image:
                size = len(image.convert("RGB").tobytes())
        if evict:
            # Stand in for a page cache smaller than the data set: this file will not
            # still be cached when the next epoch comes to it.
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return size


def worker(paths, evict, results):
    results.put(sum(load(p, evict) for p in paths))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evict", action="store_true", help="drop each file from the page cache after loading it")
    args = parser.parse_args()
    paths = sorted(
        os.path.join(d, f) for d, _, files in os.walk(args.root) for f in files
    )
    context = mp.get_context("fork")
    for epoch in range(args.epochs):
        order = paths[:]
        random.Random(args.seed + epoch).shuffle(order)
        start = time.monotonic()
        results = context.Queue()
        procs = [
            context.Process(target=worker, args=(order[w :: args.workers], args.evict, results))
            for w in range(args.workers)
        ]
        for p in procs:
            p.start()
        decoded = sum(results.get() for _ in procs)
        for p in procs:
            p.join()
        took = time.monotonic() - start
        print(f"epoch {epoch}: {len(order)} files, {decoded / 1e6:.1f} MB decoded in {took:.2f} s")


if __name__ == "__main__":
    main()
