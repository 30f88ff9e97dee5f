"""The benchmark's scenarios and modes.

| id     | data        | order                   | memory limit | gofetch should use |
|--------|-------------|-------------------------|--------------|--------------------|
| S1     | image folder| shuffled every epoch    | none         | the Python hook's exact lookahead |
| S2     | image folder| the same every epoch    | yes          | Markov (learns the order in epoch 1) |
| S3     | tar shards  | sequential, 1 MiB reads | none         | pattern detector |
| S4     | image folder| shuffled every epoch    | yes          | remaining set (data does not fit) |
| S4-fit | image folder| shuffled every epoch    | none         | remaining set (data fits) |

Modes: no-prefetch, loader, warmup, gofetch, warm (bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

MODES = ["no-prefetch", "loader", "warmup", "gofetch", "warm"]

MODE_TEXT = {
    "no-prefetch": "num_workers=0: every batch loaded in the main loop",
    "loader": "the loader's own prefetching only (N workers, prefetch_factor 2)",
    "warmup": "loader + naive warm-up of the whole data set in directory order (like vmtouch -t), started with the job",
    "gofetch": "loader under gofetch run (traced by the shim, prefetching on, default settings)",
    "warm": "loader with every page resident before the job starts (the limit)",
}


@dataclass
class Scenario:
    id: str
    title: str
    data: str  # "images" or "shards"
    order: str  # shuffle / fixed / sequential
    hook: bool = False
    memory_limited: bool = False
    workers: int = 2
    batch_size: int = 16
    prefetch_factor: int = 2
    step_ms: float = 20.0
    epochs: int = 2
    read_size: int = 1 << 20
    goal: str = ""
    modes: List[str] = field(default_factory=lambda: list(MODES))
    # Modes this scenario takes from another scenario whose job is identical but
    # for the hook (the hook only acts under gofetch).
    baseline_from: Optional[str] = None
    unavailable: Dict[str, str] = field(default_factory=dict)  # mode -> why it is not run
    notes: Dict[str, str] = field(default_factory=dict)  # mode -> remark in the table
    workload: str = "builtin"  # or "torch"

    def job_spec(self, root: str, files: List[str], sizes: List[int], mode: str) -> dict:
        return {
            "kind": self.data,
            "root": root,
            "files": files,
            "sizes": sizes,
            "order": self.order,
            "seed": 0,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "num_workers": 0 if mode == "no-prefetch" else self.workers,
            "prefetch_factor": self.prefetch_factor,
            "step_ms": self.step_ms,
            "read_size": self.read_size,
            "decode": True,
            "hook": self.hook and mode == "gofetch",
        }

    def same_job(self, other: "Scenario") -> bool:
        keys = ("data", "order", "memory_limited", "workers", "batch_size", "prefetch_factor", "step_ms",
                "epochs", "read_size", "workload")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def build(quick: bool, epochs: Optional[int] = None, shard_workers: Optional[int] = None,
          image_workers: int = 2) -> List[Scenario]:
    e = epochs or (2 if quick else 3)
    img = dict(data="images", workers=image_workers, batch_size=16, step_ms=30.0, epochs=e)
    return [
        Scenario("S4-fit", "shuffled every epoch, no hook, data fits in memory (remaining set)",
                 order="shuffle", goal="stall ratio <= 0.5 (data fits the budget)", **img),
        Scenario("S1", "shuffled every epoch, with the Python hook's lookahead",
                 order="shuffle", hook=True, baseline_from="S4-fit",
                 goal="stall ratio <= 0.05 and epoch <= 1.05 x warm; stall below the loader's", **img),
        Scenario("S2", "same order every epoch, no hook, memory limit (Markov)",
                 order="fixed", memory_limited=True,
                 goal="stall ratio <= 0.10 from epoch 2; stall below the loader's", **img),
        Scenario("S3", "large sequential tar shards, 1 MiB reads (pattern detector)",
                 data="shards", order="sequential", workers=shard_workers or 2, batch_size=16, step_ms=10.0,
                 epochs=e, goal="stall <= 0.5 x loader alone (kernel readahead alone)"),
        Scenario("S4", "shuffled every epoch, no hook, memory limit (remaining set; data does not fit)",
                 order="shuffle", memory_limited=True,
                 goal="never worse than no prefetch (<= 1.02x)", **img),
    ]


# The order they are reported in.
REPORT_ORDER = ["S1", "S2", "S3", "S4", "S4-fit", "S4-fit-torch"]
