"""The `--torch` workload: a real torch DataLoader over torchvision's ImageFolder.

Same spec and result format as harness.loader (so the harness treats it the
same): `num_workers`, `batch_size`, `prefetch_factor`, a seeded shuffle, a tiny
convolutional model trained with SGD on each batch, and the emulated
accelerator step (`step_ms` of sleep) after it. Stall = time in `next()`.

Only run when `import torch, torchvision` works; bench/run prints why not
otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def run_job(spec: dict) -> dict:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    if spec["kind"] != "images":
        raise ValueError("the torch workload reads the image folder only")
    torch.manual_seed(spec.get("seed", 0))
    torch.set_num_threads(1)
    transform = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor()])
    data = datasets.ImageFolder(spec["root"], transform=transform)
    workers = spec["num_workers"]
    kwargs = dict(batch_size=spec["batch_size"], num_workers=workers)
    if spec.get("order", "shuffle") == "shuffle":
        kwargs["shuffle"] = True
        kwargs["generator"] = torch.Generator().manual_seed(spec.get("seed", 0))
    if workers > 0:
        kwargs["prefetch_factor"] = spec.get("prefetch_factor", 2)
    loader = DataLoader(data, **kwargs)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, len(data.classes)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    step = spec.get("step_ms", 0.0) / 1000.0
    epochs = []
    started = time.perf_counter()
    for epoch in range(spec["epochs"]):
        t_epoch = time.perf_counter()
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
            t0 = time.perf_counter()
        del it
        s = sorted(stalls)
        epochs.append({
            "epoch": epoch + 1, "wall_s": time.perf_counter() - t_epoch, "stall_s": sum(stalls),
            "batches": len(stalls), "samples": samples,
            "first_batch_stall_s": stalls[0] if stalls else 0.0,
            "stall_p50_s": s[len(s) // 2] if s else 0.0,
            "stall_p95_s": s[min(len(s) - 1, int(0.95 * (len(s) - 1) + 0.5))] if s else 0.0,
            "stall_max_s": s[-1] if s else 0.0,
            "stalls_s": [round(x, 6) for x in stalls],
        })
    return {"epochs": epochs, "job_s": time.perf_counter() - started, "workload": "torch",
            "torch": torch.__version__}


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
