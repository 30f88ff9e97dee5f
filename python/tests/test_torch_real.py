"""The DataLoader integration against the real PyTorch and torchvision.

scripts/test runs this file with the torch environment's interpreter
(scripts/setup --torch installs it once into a cache folder outside the clone)
and GOFETCH_REQUIRE_TORCH=1, so a missing torch there is a failure, not a skip;
the repository's .venv (no torch) skips it.

Every case runs the same job twice, without gofetch and with the hook, and
asserts the batches are identical. Map-style cases also assert that each
epoch's announced order is exactly the order the loader's workers then opened
the files in (from the hook's trace): a shuffled ImageFolder with 0 and 2
workers, fork and spawn contexts, persistent workers, a batch_sampler, and a
DistributedSampler with set_epoch for both ranks. An IterableDataset of tar
shards (read through os.open, seen by the preload shim) has no order to
announce: nothing is announced, and each worker's opens are its own shards in
order, tagged with its worker id."""

from __future__ import annotations

import collections
import importlib
import importlib.util
import io
import os
import random
import tarfile

import pytest

from gofetch_testlib import (SHIM, check_announced_is_read_order, job_env, listener,  # noqa: F401
                             make_folder, run_job)
from gofetch import wire  # noqa: E402 (the testlib puts the client on the path)

if os.environ.get("GOFETCH_REQUIRE_TORCH"):
    torch = importlib.import_module("torch")
    importlib.import_module("torchvision")
else:
    torch = pytest.importorskip("torch", reason="PyTorch is not in this interpreter: scripts/test runs this file "
                                                "with the torch environment's (scripts/setup --torch)")
Image = pytest.importorskip("PIL.Image", reason="Pillow is needed to generate images")

# The real loader with workers starts processes that import torch: give it time.
TIMEOUT = 240.0


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images") / "data"
    rng = random.Random(0)
    paths = []
    for c in range(3):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(8):
            image = Image.new("RGB", (24, 24), tuple(rng.randrange(256) for _ in range(3)))
            for _ in range(20):
                image.putpixel((rng.randrange(24), rng.randrange(24)), tuple(rng.randrange(256) for _ in range(3)))
            path = folder / f"img_{i:02d}.png"
            image.save(path)
            paths.append(str(path))
    return sorted(paths), str(root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder") / "data"
    return make_folder(root, classes=3, per_class=10, seed=5), str(root)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    rng = random.Random(9)
    paths = []
    for number in range(4):
        path = root / f"shard_{number:02d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(6):
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(500, 4000)))
                info = tarfile.TarInfo(f"sample_{i:03d}.bin")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        paths.append(str(path))
    return paths, str(root)


def run_both(config: dict, listener_factory, tmp_path, **hooked_env: str) -> tuple:
    """The job without gofetch, then with the hook (and `hooked_env`); returns
    (baseline, hooked, listener)."""
    baseline = run_job("loader_job.py", config, job_env(fake_torch=False), timeout=TIMEOUT)
    assert baseline["torch"] == torch.__version__
    lst = listener_factory()
    hooked = run_job("loader_job.py", dict(config, hook=True, db=str(tmp_path / "t.db")),
                     job_env(lst.path, fake_torch=False, **hooked_env), timeout=TIMEOUT)
    lst.wait_quiet()
    assert hooked["batches"] == baseline["batches"]
    assert hooked["stats"]["errors"] == 0
    return baseline, hooked, lst


MAP_CASES = {
    "images-no-workers": dict(dataset="images", num_workers=0),
    "images-fork": dict(dataset="images", num_workers=2, context="fork"),
    "images-spawn": dict(dataset="images", num_workers=2, context="spawn"),
    "images-persistent": dict(dataset="images", num_workers=2, persistent=True),
    "folder-batch-sampler": dict(dataset="folder", num_workers=2, sampler="batch_sampler"),
    "folder-distributed-rank0": dict(dataset="folder", num_workers=2, sampler="distributed", replicas=2, rank=0),
    "folder-distributed-rank1": dict(dataset="folder", num_workers=2, sampler="distributed", replicas=2, rank=1),
}


@pytest.mark.parametrize("case", sorted(MAP_CASES))
def test_announced_order_is_the_order_read(case, images, folder, listener, tmp_path):
    spec = MAP_CASES[case]
    paths, root = images if spec["dataset"] == "images" else folder
    config = dict(spec, data=root, seed=11, epochs=2, batch_size=4)
    _, hooked, lst = run_both(config, listener, tmp_path)
    check_announced_is_read_order(lst, hooked, paths, config)
    if spec.get("sampler") == "distributed":
        # set_epoch gave each epoch its own order, and the rank read its half only.
        read = [[sample[0] for batch in epoch for sample in batch] for epoch in hooked["batches"]]
        assert read[0] != read[1]
        assert all(len(epoch) == len(paths) // 2 for epoch in read)


def test_tar_shards_iterable_dataset(shards, listener, tmp_path):
    """tarfile streams a shard through os.open and os.read, which only the preload shim
    sees; the hook tags its records with the worker from the worker's first read."""
    assert SHIM.exists(), f"{SHIM} is missing: run scripts/build"
    paths, root = shards
    config = dict(dataset="tar", data=root, seed=3, epochs=2, batch_size=4, num_workers=2)
    _, hooked, lst = run_both(config, listener, tmp_path, LD_PRELOAD=str(SHIM), GOFETCH_INCLUDE=root)
    assert hooked["stats"]["shim"] is True
    # No sampler, no order: nothing may be announced for an iterable data set.
    assert not list(lst.records(wire.Kind.LOOKAHEAD, pid=hooked["pid"]))
    samples = [sample for epoch in hooked["batches"] for batch in epoch for sample in batch]
    assert len(samples) == 2 * 4 * 6
    # Each worker opened its own shards, in order, each epoch (an iterable data set has no
    # epoch the hook could know: the records carry none).
    opened = collections.defaultdict(list)
    for message, record in lst.records(wire.Kind.OPEN):
        if message.header.source == wire.Source.PRELOAD and record.path in paths:
            assert record.epoch == wire.UNKNOWN_EPOCH
            opened[record.worker_id].append(record.path)
    assert dict(opened) == {worker: paths[worker::2] * 2 for worker in range(2)}
