"""The real-PyTorch workload: torch's DataLoader over torchvision's ImageFolder.

A training script as a user writes it, with nothing of gofetch in it: a
`torch.utils.data.DataLoader` (`num_workers`, `batch_size`, `prefetch_factor`)
over `torchvision.datasets.ImageFolder` (torchvision's own PIL loader: the
file is opened and decoded through `Image.open(f)`, then resized to 64 px and
made a tensor), a tiny convolutional model trained with SGD on each batch, and
the emulated accelerator step (`step_ms` of sleep) after it. Under `gofetch
run` the client gofetch injects into the interpreter patches torch's
DataLoader when this script imports it and announces every epoch's order; the
script does not know.

Orders (`order` in the spec):

- `shuffle`: `shuffle=True` with a seeded generator (a new permutation every
  epoch, torch's RandomSampler);
- `fixed`: one seeded permutation, the same every epoch (a list of indices as
  the `sampler`; the same permutation harness/loader.py uses);
- `sorted` (or `sequential`): `shuffle=False`, the folder's own sorted order.

Same spec and result format as harness.loader (so the harness treats both
alike). Stall = time in `iter()` + `next()` for the first batch of an epoch
(creating the workers), in `next()` for the others. Memory: the job runs in
the harness's memory cgroup like the built-in loader; one intra-op thread per
process (2 cores here), tensors to the main process through shared memory as
torch does.

Only run when `import torch, torchvision` works; bench/run prints why not
otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def loader_kwargs(spec: dict, n: int, torch) -> dict:
    """The DataLoader's keyword arguments for the spec's order, workers and batch size
    (n = the data set's length)."""
    workers = spec["num_workers"]
    kwargs = dict(batch_size=spec["batch_size"], num_workers=workers)
    order = spec.get("order", "shuffle")
    seed = spec.get("seed", 0)
    if order == "shuffle":
        kwargs["shuffle"] = True
        kwargs["generator"] = torch.Generator().manual_seed(seed)
    elif order == "fixed":
        from harness.loader import epoch_order

        kwargs["sampler"] = epoch_order(n, "fixed", seed, 0)  # any iterable of indices is a sampler
    elif order in ("sorted", "sequential"):
        kwargs["shuffle"] = False
    else:
        raise ValueError(f"unknown order {order!r}")
    if workers > 0:
        kwargs["prefetch_factor"] = spec.get("prefetch_factor", 2)
    return kwargs


def _quantile(sorted_values, q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


def run_job(spec: dict) -> dict:
    import torch
    import torchvision
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    if spec["kind"] != "images":
        raise ValueError("the torch workload reads the image folder only")
    torch.manual_seed(spec.get("seed", 0))
    torch.set_num_threads(1)
    transform = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor()])
    data = datasets.ImageFolder(spec["root"], transform=transform)
    loader = DataLoader(data, **loader_kwargs(spec, len(data), torch))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, len(data.classes)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    step = spec.get("step_ms", 0.0) / 1000.0
    max_batches = spec.get("max_batches") or 0
    epochs = []
    started = time.perf_counter()
    for epoch in range(spec["epochs"]):
        t_epoch = time.perf_counter()
        started_ns = time.time_ns()  # the epoch's span on the wall clock, as the trace store's events carry it
        stalls = []
        samples = 0
        t0 = time.perf_counter()
        it = iter(loader)
        while True:
            try:
                images, labels = next(it)
            except StopIteration:
                break
            stalls.append(time.perf_counter() - t0)
            samples += len(labels)
            optimizer.zero_grad()
            loss_fn(model(images), labels).backward()
            optimizer.step()
            if step:
                time.sleep(step)
            if max_batches and len(stalls) >= max_batches:
                break
            t0 = time.perf_counter()
        del it  # shuts the epoch's workers down (persistent_workers=False, torch's default)
        s = sorted(stalls)
        epochs.append({
            "epoch": epoch + 1, "wall_s": time.perf_counter() - t_epoch, "stall_s": sum(stalls),
            "started_ns": started_ns, "ended_ns": time.time_ns(),
            "batches": len(stalls), "samples": samples,
            "first_batch_stall_s": stalls[0] if stalls else 0.0,
            "stall_p50_s": _quantile(s, 0.5),
            "stall_p95_s": _quantile(s, 0.95),
            "stall_max_s": s[-1] if s else 0.0,
            "step_s": step * len(stalls),
            "stalls_s": [round(x, 6) for x in stalls],
        })
    return {"epochs": epochs, "job_s": time.perf_counter() - started, "workload": "torch",
            "torch": torch.__version__, "torchvision": torchvision.__version__, "order": spec.get("order")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    result = run_job(spec)
    with open(args.result + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(args.result + ".tmp", args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
