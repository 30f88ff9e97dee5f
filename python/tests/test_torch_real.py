"""With real PyTorch (skipped where it is not installed; CI does not install it):
a shuffled ImageFolder of generated images, 2 workers, 2 epochs. The batches are
identical with and without the hook for the same seed, and the announced order
is the order each worker read the files in."""

from __future__ import annotations

import importlib.util
import random

import pytest

from gofetch_testlib import check_announced_is_read_order, job_env, listener, run_job  # noqa: F401

torch = pytest.importorskip("torch", reason="PyTorch is not installed (and must not be in CI)")
Image = pytest.importorskip("PIL.Image", reason="Pillow is needed to generate images")


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


@pytest.mark.parametrize("persistent", [False, True])
def test_imagefolder_two_workers_two_epochs(images, listener, tmp_path, persistent):
    paths, root = images
    kind = "images" if importlib.util.find_spec("torchvision") is not None else "folder"
    config = dict(data=root, dataset=kind, seed=11, num_workers=2, epochs=2, batch_size=4, persistent=persistent)
    env_plain = job_env(fake_torch=False)
    baseline = run_job("loader_job.py", config, env_plain)
    assert baseline["torch"] != "0.0.fake"
    lst = listener()
    hooked = run_job("loader_job.py", dict(config, hook=True, db=str(tmp_path / "t.db")),
                     job_env(lst.path, fake_torch=False))
    lst.wait_quiet()
    assert hooked["batches"] == baseline["batches"]
    assert hooked["stats"]["errors"] == 0
    check_announced_is_read_order(lst, hooked, paths, config)
