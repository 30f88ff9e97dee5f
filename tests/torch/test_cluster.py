"""Two nodes, one gofetch daemon each, one torchrun job across them (real PyTorch,
gloo on loopback, a DistributedSampler, 2 DataLoader workers per rank).

The nodes are emulated on this machine: each has its own daemon (socket, store,
memory budget) and its own shell environment from `gofetch env --socket` (the
preload shim and the Python client, which announces each rank's epoch order to
its own node's daemon). They share one kernel and so one page cache, which real
nodes do not: what is checked is what each daemon did, from its own log of every
prefetch (`--log-level trace`) and its own summary. The data set sits on the slow
storage emulator (FUSE, 3 ms per request), evicted before the run.

Checked: each daemon warmed only files of its own node's rank (prefetches outside
that share: 0), nearly all of them (>= 90 %), and each rank found most of its
first epoch warm (after the loader's first batches, which it asks for the moment
the order is announced, at most 10 % of its files cold: not wholly resident when the
worker opened them, by mincore; a read's time is no test on two busy cores, where
warm reads of a run with none cold took over 2 ms 15-27 times in 168). The stall of
each rank beside a warm run is measured by bench/cluster/run, not asserted here."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "emulator"))
sys.path.insert(0, str(ROOT / "bench" / "cluster"))

if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip("needs /dev/fuse and root (the slow-storage emulator is a FUSE mount)", allow_module_level=True)
if os.environ.get("GOFETCH_REQUIRE_TORCH"):
    import torch  # noqa: F401 (scripts/test: a missing torch is a failure)
else:
    pytest.importorskip("torch", reason="run with the torch environment's interpreter (scripts/test does)")

from mount import SlowMount  # noqa: E402
from nodes import Node, evict, gofetch_binary, run_job  # noqa: E402

FILES = 400


def test_two_nodes_each_daemon_warms_its_own_ranks_files(tmp_path):
    gofetch = gofetch_binary()
    source = tmp_path / "source"
    rng = random.Random(3)
    for i in range(FILES):
        folder = source / f"class_{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"sample_{i:04d}.bin").write_bytes(rng.randbytes(rng.randint(30_000, 90_000)))
    with SlowMount(str(source), latency_ms=3) as mount:
        paths = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        evict(paths)
        nodes = [Node(gofetch, tmp_path / f"node{n}") for n in range(2)]
        try:
            results = run_job(mount.path, tmp_path / "out", 1, [node.environment() for node in nodes], step_ms=20)
        finally:
            summaries = [node.stop() for node in nodes]
    shares = {rank: set(result["epochs"][0]["files"]) for rank, result in results.items()}
    assert shares[0].isdisjoint(shares[1]) and len(shares[0] | shares[1]) == FILES
    for n, node in enumerate(nodes):
        prefetched = set(node.prefetched_paths())
        epoch = results[n]["epochs"][0]
        outside = prefetched - shares[n]
        # The loader asks for its first batches (2 workers x prefetch_factor 2 x 8 files)
        # the moment the epoch's order is announced: those cannot be warm yet.
        first = 2 * 2 * 8
        later_cold = sum(epoch["cold"][first:])
        slow = sum(ns > 2_000_000 for ns in epoch["read_ns"][first:])
        print(f"node {n}: rank {n} read {len(shares[n])} files, stall {epoch['stall_s']:.2f} s, "
              f"{sum(epoch['cold'])} cold ({later_cold} after the first {first}; {slow} reads after those "
              f"took over 2 ms, cold or slowed by the busy CPU); its daemon prefetched "
              f"{len(prefetched & shares[n])} of them, {len(outside)} outside; "
              f"announced {summaries[n]['prefetch']['announced']}")
        assert not outside, f"node {n}'s daemon warmed files of the other node's rank: {sorted(outside)[:5]}"
        assert len(prefetched & shares[n]) >= 0.9 * len(shares[n])
        assert summaries[n]["prefetch"]["announced"] == len(shares[n])
        assert later_cold <= 0.1 * (len(shares[n]) - first)
