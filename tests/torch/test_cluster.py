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
the order is announced, at most 10 % of its files cold). The stall of each rank beside a
warm run is measured by bench/cluster/run, not asserted here."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "emulator"))

if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip("needs /dev/fuse and root (the slow-storage emulator is a FUSE mount)", allow_module_level=True)
if os.environ.get("GOFETCH_REQUIRE_TORCH"):
    import torch  # noqa: F401 (scripts/test: a missing torch is a failure)
else:
    pytest.importorskip("torch", reason="run with the torch environment's interpreter (scripts/test does)")

from mount import SlowMount  # noqa: E402

JOB = Path(__file__).with_name("cluster_job.py")
FILES = 240


def gofetch_binary() -> str:
    bin_dir = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    path = os.path.join(bin_dir, "gofetch")
    assert os.path.exists(path) and os.path.exists(os.path.join(bin_dir, "libgofetch_preload.so")), \
        f"{path} or its shim missing: run scripts/build first"
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_environment(gofetch: str, socket_path: str) -> dict:
    """The environment `eval "$(gofetch env --socket S)"` makes in a node's shell."""
    exports = subprocess.run([gofetch, "env", "--socket", socket_path], capture_output=True, text=True,
                             check=True).stdout
    env = dict(os.environ)
    for line in exports.splitlines():
        if line.startswith("unset "):
            env.pop(line.split()[1], None)
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    return env


def prefetched_paths(log: str) -> list:
    """Every request the daemon's executor handled, whatever its outcome (its trace log
    has one line each, with the path)."""
    return [dict(re.findall(r"(\w+)=(\S+)", line))["path"] for line in log.splitlines()
            if " trace " in line and line.endswith("[GoFetchExecute] prefetch")]


def test_two_nodes_each_daemon_warms_its_own_ranks_files(tmp_path):
    gofetch = gofetch_binary()
    source = tmp_path / "source"
    rng = random.Random(3)
    for i in range(FILES):
        folder = source / f"class_{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"sample_{i:04d}.bin").write_bytes(rng.randbytes(rng.randint(30_000, 90_000)))
    out = tmp_path / "out"
    out.mkdir()
    with SlowMount(str(source), latency_ms=3) as mount:
        paths = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        for path in paths:
            with open(path, "rb") as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        daemons, logs = [], []
        for node in range(2):
            state = tmp_path / f"node{node}"
            state.mkdir()
            log = open(state / "daemon.log", "w")
            logs.append(state / "daemon.log")
            daemons.append((subprocess.Popen(
                [gofetch, "daemon", "--socket", str(state / "gofetch.sock"), "--db", str(state / "traces.db"),
                 "--json", "--log-level", "trace"], stdout=subprocess.DEVNULL, stderr=log), log, state))
        try:
            deadline = time.monotonic() + 30
            for daemon, _, state in daemons:
                while not (state / "gofetch.sock").exists():
                    assert daemon.poll() is None and time.monotonic() < deadline, "a daemon did not start"
                    time.sleep(0.05)
            port = free_port()
            ranks = []
            for node, (_, _, state) in enumerate(daemons):
                env = node_environment(gofetch, str(state / "gofetch.sock"))
                ranks.append(subprocess.Popen(
                    [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                     "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
                     str(JOB), mount.path, str(out), "1"],
                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            outputs = [r.communicate(timeout=300)[0] for r in ranks]
            for r, output in zip(ranks, outputs):
                assert r.returncode == 0, output[-3000:]
        finally:
            summaries = []
            for daemon, log, _ in daemons:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=60)
                log.close()
    results = {json.load(open(out / f"rank{r}.json"))["rank"]: json.load(open(out / f"rank{r}.json")) for r in range(2)}
    shares = {rank: set(result["epochs"][0]["files"]) for rank, result in results.items()}
    assert shares[0].isdisjoint(shares[1]) and len(shares[0] | shares[1]) == FILES
    for node in range(2):
        text = logs[node].read_text()
        summary = json.loads(text[text.rindex("\n{\n") + 1:])
        summaries.append(summary)
        prefetched = set(prefetched_paths(text))
        epoch = results[node]["epochs"][0]
        outside = prefetched - shares[node]
        # The loader asks for its first batches (2 workers x prefetch_factor 2 x 8 files)
        # the moment the epoch's order is announced: those cannot be warm yet.
        first = 2 * 2 * 8
        later_cold = sum(epoch["cold"][first:])
        print(f"node {node}: rank {node} read {len(shares[node])} files, stall {epoch['stall_s']:.2f} s, "
              f"{sum(epoch['cold'])} cold ({later_cold} after the first {first}); its daemon prefetched {len(prefetched & shares[node])} of them, "
              f"{len(outside)} outside; announced {summary['prefetch']['announced']}")
        assert not outside, f"node {node}'s daemon warmed files of the other node's rank: {sorted(outside)[:5]}"
        assert len(prefetched & shares[node]) >= 0.9 * len(shares[node])
        assert summary["prefetch"]["announced"] == len(shares[node])
        assert later_cold <= 0.1 * (len(shares[node]) - first)
