"""A training-style job over a folder of sample files with torch.utils.data
(the real one if installed and first on the path, else tests/fake_torch).

    python loader_job.py '{"data": DIR, "hook": true, "db": PATH, "num_workers": 2, ...}'

Prints one JSON line: the batches it got (index, content digest, label, a value of
the worker's random stream), its pid and gofetch.stats().
"""
import hashlib
import json
import os
import random
import sys
import time

config = json.loads(sys.argv[1])

import gofetch  # noqa: E402

if config.get("hook"):
    gofetch.enable_hook(config.get("db"), lookahead=config.get("lookahead", True),
                        include=config.get("include"))

import torch  # noqa: E402
from torch.utils.data import (BatchSampler, DataLoader, Dataset, DistributedSampler,  # noqa: E402
                              IterableDataset, RandomSampler, Subset, get_worker_info)


def scan(root):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    samples = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        for file in sorted(os.listdir(folder)):
            samples.append((os.path.join(folder, file), label))
    return samples


def digest(data):
    return hashlib.sha1(data).hexdigest()[:12]


def noise():
    # The "augmentation": the worker's (or main process's) random stream, as torch seeds it.
    if hasattr(torch, "rand") and hasattr(torch, "float64"):
        return round(float(torch.rand(1, dtype=torch.float64).item()), 12)
    return round(random.random(), 12)


class Folder(Dataset):
    """ImageFolder-like: .samples = [(path, class)]."""

    def __init__(self, root):
        self.samples = scan(root)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        with open(path, "rb") as f:
            data = f.read()
        return [int(index), digest(data), label, noise()]


class Opaque(Dataset):
    """No path attribute gofetch knows: the mapping must be learned from the first epoch."""

    def __init__(self, root):
        self._rows = [(os.path.dirname(p), os.path.basename(p), label) for p, label in scan(root)]

    def __len__(self):
        return len(self._rows)

    def __getitem__(self, index):
        folder, name, label = self._rows[index]
        with open(os.path.join(folder, name), "rb") as f:
            head = f.read(64)
            rest = f.read()
        return [int(index), digest(head + rest), label, noise()]


class Images(Dataset):
    """torchvision's ImageFolder (decoding every image with PIL), answering like Folder."""

    def __init__(self, root):
        from torchvision.datasets import ImageFolder

        self.inner = ImageFolder(root)
        self.samples = self.inner.samples

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        image, label = self.inner[index]
        return [int(index), digest(image.convert("RGB").tobytes()), int(label), noise()]


class TarShards(IterableDataset):
    """Tar shards streamed with tarfile, as webdataset-style loaders do: each worker
    reads whole shards (shard i goes to worker i mod workers), member by member."""

    def __init__(self, root):
        self.shards = sorted(os.path.join(root, name) for name in os.listdir(root) if name.endswith(".tar"))

    def __iter__(self):
        import tarfile

        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        for number, shard in enumerate(self.shards):
            if number % workers != worker:
                continue
            with tarfile.open(shard, mode="r|") as stream:
                for member in stream:
                    data = stream.extractfile(member).read()
                    yield [number * 100_000 + int(member.name.split("_")[-1].split(".")[0]), digest(data), number, noise()]


def collate(batch):
    return [list(item) for item in batch]


def main():
    if config.get("seed") is not None:
        torch.manual_seed(config["seed"])
    kind = config.get("dataset", "folder")
    if kind == "opaque":
        dataset = Opaque(config["data"])
    elif kind == "images":
        dataset = Images(config["data"])
    elif kind == "tar":
        dataset = TarShards(config["data"])
    else:
        dataset = Folder(config["data"])
    if kind == "subset":
        dataset = Subset(dataset, list(range(0, len(dataset), 2)))
    workers = config.get("num_workers", 0)
    sampler_kind = config.get("sampler", "random")
    kwargs = dict(num_workers=workers, collate_fn=collate, persistent_workers=config.get("persistent", False))
    if config.get("context"):
        kwargs["multiprocessing_context"] = config["context"]
    sampler = None
    if sampler_kind == "distributed":
        sampler = DistributedSampler(dataset, num_replicas=config.get("replicas", 2), rank=config.get("rank", 0),
                                     shuffle=True, seed=config.get("seed") or 0)
        loader = DataLoader(dataset, batch_size=config.get("batch_size", 4), sampler=sampler, **kwargs)
    elif sampler_kind == "batch_sampler":
        batches = BatchSampler(RandomSampler(dataset), config.get("batch_size", 4), drop_last=True)
        loader = DataLoader(dataset, batch_sampler=batches, **kwargs)
    elif kind == "tar":
        loader = DataLoader(dataset, batch_size=config.get("batch_size", 4), **kwargs)
    elif sampler_kind == "unbatched":
        kwargs["collate_fn"] = list  # what a sample becomes without automatic batching
        loader = DataLoader(dataset, batch_size=None, shuffle=True, **kwargs)
    else:
        loader = DataLoader(dataset, batch_size=config.get("batch_size", 4), shuffle=config.get("shuffle", True),
                            **kwargs)
    if config.get("explicit"):
        gofetch.lookahead(loader)
    out = []
    for epoch in range(config.get("epochs", 2)):
        if sampler is not None:
            sampler.set_epoch(epoch)
        batches = []
        for batch in loader:
            if sampler_kind == "unbatched":
                batch = [batch]
            batches.append([[int(x[0]), x[1], int(x[2]), float(x[3])] for x in batch])
            if config.get("batch_sleep"):
                time.sleep(config["batch_sleep"])
            if config.get("pause_after_first_batch") and epoch == 0 and len(batches) == 1:
                print("PAUSE", flush=True)
                sys.stdin.readline()
                time.sleep(config.get("pause_sleep", 0.0))
        out.append(batches)
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    flushed = gofetch.flush(5.0) if config.get("hook") else None
    print(json.dumps({"batches": out, "pid": os.getpid(), "stats": gofetch.stats(), "flushed": flushed,
                      "torch": getattr(torch, "__version__", "?")}))


if __name__ == "__main__":
    main()
