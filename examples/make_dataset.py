"""Generates a deterministic image-folder data set (JPEG when Pillow is installed).

    python examples/make_dataset.py --out /tmp/images --classes 4 --per-class 100
"""
import argparse
import os
import random


def make_image(path, rng, size):
    try:
        from PIL import Image
    except ImportError:
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
        return
    side = 96 + rng.randrange(64)
    pixels = bytes(rng.randrange(256) for _ in range(48)) * (side * side * 3 // 48 + 1)
    Image.frombytes("RGB", (side, side), pixels[: side * side * 3]).save(path, "JPEG", quality=95)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    made = 0
    for c in range(args.classes):
        folder = os.path.join(args.out, f"class_{c:02d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(args.per_class):
            path = os.path.join(folder, f"img_{i:05d}.jpg")
            if not os.path.exists(path):
                make_image(path, rng, 110_000)
                made += 1
    total = args.classes * args.per_class
    print(f"data set: {total} files in {args.classes} classes under {args.out} ({made} new)")


if __name__ == "__main__":
    main()
