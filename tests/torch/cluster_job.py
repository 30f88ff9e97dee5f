"""One rank of a data-parallel job as torchrun starts it: gloo process group, a
DistributedSampler over a folder of files, a DataLoader with 2 workers, a short
sleep per batch as the accelerator step (STEP_MS, default 10). Nothing of gofetch in it.

    torchrun --nnodes 2 --nproc-per-node 1 --node-rank R ... cluster_job.py DATA OUT EPOCHS [STEP_MS]

Writes OUT/rank<R>.json: per epoch, the files this rank read (in the order its
workers returned them), the stall (time blocked in next()), how many reads
were cold (per file in the same order: not wholly in the page cache when the worker
opened it, by mincore before reading; a read's time would count a warm read that a
busy CPU delayed), how long each read took, and the monotonic time the epoch started.
"""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "harness"))
from pagecache import fd_residency  # noqa: E402

import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class Files(Dataset):
    def __init__(self, root):
        self.paths = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        started = time.monotonic_ns()
        with open(self.paths[index], "rb") as f:
            resident, pages = fd_residency(f.fileno())
            data = f.read()
        return index, len(data), resident < pages, time.monotonic_ns() - started


def main():
    data, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    step = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.01
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dataset = Files(data)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=8, sampler=sampler, num_workers=2)
    result = {"rank": rank, "world": world, "pid": os.getpid(), "epochs": []}
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        started = time.monotonic_ns()
        stall, files, cold, read_ns = 0.0, [], [], []
        iterator = iter(loader)
        while True:
            t = time.monotonic()
            try:
                indices, sizes, colds, times = next(iterator)
            except StopIteration:
                break
            stall += time.monotonic() - t
            files += [dataset.paths[i] for i in indices.tolist()]
            cold += [bool(c) for c in colds.tolist()]
            read_ns += times.tolist()
            time.sleep(step)
        result["epochs"].append({"files": files, "stall_s": stall, "cold": cold, "read_ns": read_ns,
                                 "started_ns": started})
    dist.barrier()
    dist.destroy_process_group()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
