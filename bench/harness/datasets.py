"""Deterministic benchmark data sets under bench/data, generated once and reused.

Two kinds:

- an image folder (`images-<N>`): N files of about 110 kB in class subfolders
  (`class_000/img_00000.jpg`), JPEG of noise when Pillow is installed (noise does
  not compress, so the files are as large as real photos at this size and decode
  at a realistic cost), random bytes of the same sizes otherwise;
- tar shards (`shards-<N>`): N files `shard-00000.tar` of about 64 MiB, each a
  tar of records of 96-128 KiB (`sample_00000.bin`, random bytes).

Every file's content depends only on the seed and its name. A `MANIFEST.json`
records the parameters and every file with its size; a data set is reused when
its manifest matches the parameters asked for and every file is present with
its size, and regenerated (into a temporary folder, renamed when complete)
otherwise.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from typing import List, Optional

try:  # Pillow is optional
    from PIL import Image

    HAVE_PIL = True
except ImportError:  # pragma: no cover - depends on the machine
    Image = None
    HAVE_PIL = False

FORMAT_VERSION = 1
IMAGE_TARGET_BYTES = 110_000
SHARD_BYTES = 64 << 20
RECORD_MIN, RECORD_MAX = 96 << 10, 128 << 10


@dataclass
class Dataset:
    name: str
    kind: str  # "images" or "shards"
    root: str
    files: List[str]  # relative paths, in data-set index order (sorted, like ImageFolder)
    sizes: List[int]
    labels: List[int] = field(default_factory=list)
    content: str = ""  # "jpeg" or "random bytes"

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "root": self.root,
            "files": len(self.files),
            "bytes": self.total_bytes,
            "content": self.content,
            "classes": len(set(self.labels)) if self.labels else 0,
        }


def _load_manifest(root: str, params: dict) -> Optional[Dataset]:
    path = os.path.join(root, "MANIFEST.json")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if manifest.get("params") != params:
        return None
    files, sizes = manifest["files"], manifest["sizes"]
    for rel, size in zip(files, sizes):
        try:
            if os.path.getsize(os.path.join(root, rel)) != size:
                return None
        except OSError:
            return None
    return Dataset(
        name=os.path.basename(root), kind=manifest["kind"], root=root, files=files, sizes=sizes,
        labels=manifest.get("labels", []), content=manifest.get("content", ""))


def _write_manifest(root: str, params: dict, ds: Dataset) -> None:
    manifest = {"params": params, "kind": ds.kind, "content": ds.content,
                "files": ds.files, "sizes": ds.sizes, "labels": ds.labels}
    with open(os.path.join(root, "MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)


def _image_bytes(rng: random.Random, use_pil: bool) -> bytes:
    if use_pil:
        side = rng.randint(320, 384)
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=88)
        return out.getvalue()
    return rng.randbytes(rng.randint(96_000, 124_000))


def ensure_images(data_dir: str, count: int, classes: int = 10, seed: int = 0,
                  log=print) -> Dataset:
    """The image folder of `count` files in `classes` class folders."""
    use_pil = HAVE_PIL
    params = {"version": FORMAT_VERSION, "kind": "images", "count": count, "classes": classes,
              "seed": seed, "content": "jpeg" if use_pil else "random bytes"}
    root = os.path.join(os.path.abspath(data_dir), f"images-{count}")
    ds = _load_manifest(root, params)
    if ds is not None:
        return ds
    log(f"generating {count} images ({params['content']}) under {root} ...")
    started = time.monotonic()
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    files, sizes, labels = [], [], []
    for i in range(count):
        label = i % classes
        rel = f"class_{label:03d}/img_{i:05d}.jpg"
        data = _image_bytes(random.Random(f"gofetch-bench/{seed}/{rel}"), use_pil)
        os.makedirs(os.path.join(tmp, f"class_{label:03d}"), exist_ok=True)
        with open(os.path.join(tmp, rel), "wb") as f:
            f.write(data)
        files.append(rel)
        sizes.append(len(data))
        labels.append(label)
    # Index order is ImageFolder's: sorted by class folder, then file name.
    order = sorted(range(count), key=lambda k: files[k])
    ds = Dataset(name=os.path.basename(root), kind="images", root=root,
                 files=[files[k] for k in order], sizes=[sizes[k] for k in order],
                 labels=[labels[k] for k in order], content=params["content"])
    _write_manifest(tmp, params, ds)
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)
    log(f"  {count} files, {ds.total_bytes / 1e6:.0f} MB in {time.monotonic() - started:.1f} s")
    return ds


def _write_shard(path: str, rng: random.Random, shard_bytes: int) -> int:
    written = 0
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        i = 0
        # Each record costs its size plus a 512-byte header and padding to 512.
        while True:
            size = rng.randint(RECORD_MIN, RECORD_MAX)
            cost = 512 + (size + 511) // 512 * 512
            if written + cost > shard_bytes - 1024 * 10:  # room for the end-of-archive blocks
                break
            info = tarfile.TarInfo(f"sample_{i:05d}.bin")
            info.size, info.mtime, info.mode = size, 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(rng.randbytes(size)))
            written += cost
            i += 1
    return os.path.getsize(path)


def ensure_shards(data_dir: str, count: int, seed: int = 0, shard_bytes: int = SHARD_BYTES,
                  log=print) -> Dataset:
    """`count` tar shards of about `shard_bytes` each."""
    params = {"version": FORMAT_VERSION, "kind": "shards", "count": count, "seed": seed,
              "shard_bytes": shard_bytes}
    suffix = "" if shard_bytes == SHARD_BYTES else f"-{shard_bytes >> 20}m"
    root = os.path.join(os.path.abspath(data_dir), f"shards-{count}{suffix}")
    ds = _load_manifest(root, params)
    if ds is not None:
        return ds
    log(f"generating {count} tar shards of {shard_bytes >> 20} MiB under {root} ...")
    started = time.monotonic()
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    files, sizes = [], []
    for i in range(count):
        rel = f"shard-{i:05d}.tar"
        sizes.append(_write_shard(os.path.join(tmp, rel), random.Random(f"gofetch-bench/{seed}/{rel}"),
                                  shard_bytes))
        files.append(rel)
    ds = Dataset(name=os.path.basename(root), kind="shards", root=root, files=files, sizes=sizes,
                 content="tar of random records")
    _write_manifest(tmp, params, ds)
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)
    log(f"  {count} shards, {ds.total_bytes / 1e6:.0f} MB in {time.monotonic() - started:.1f} s")
    return ds
