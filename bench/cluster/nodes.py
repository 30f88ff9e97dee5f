"""Emulated nodes on one machine: one gofetch daemon per node (its own socket, store
and log), the environment `gofetch env --socket` gives a node's shell, and a torchrun
job launched across the nodes (one torchrun per node, static rendezvous on
loopback). Used by bench/cluster/run and tests/torch/test_cluster.py.

The nodes share this machine's kernel, and so one page cache: what each daemon did
is read from its own log (`--log-level trace`: one line per prefetch, with the path)
and its own summary, not from the cache."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "tests" / "torch" / "cluster_job.py"
sys.path.insert(0, str(ROOT / "tests" / "support"))
from built_gofetch import gofetch_binary  # noqa: E402,F401 (bench/cluster/run and the test use it from here)


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


class Node:
    """One node's daemon."""

    def __init__(self, gofetch: str, state: Path):
        self.gofetch = gofetch
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        self.socket = state / "gofetch.sock"
        self.log_path = state / "daemon.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [gofetch, "daemon", "--socket", str(self.socket), "--db", str(state / "traces.db"), "--json",
             "--log-level", "trace"], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon of {state} did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def environment(self) -> dict:
        return node_environment(self.gofetch, str(self.socket))

    def stop(self) -> dict:
        """Stops the daemon; returns its summary (the JSON at the end of its log)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self._log.close()
        text = self.log_path.read_text()
        return json.loads(text[text.rindex("\n{\n") + 1:])

    def prefetched_paths(self) -> List[str]:
        """Every request the daemon's executor handled, whatever its outcome."""
        return [dict(re.findall(r"(\w+)=(\S+)", line))["path"] for line in self.log_path.read_text().splitlines()
                if " trace " in line and line.endswith("[GoFetchExecute] prefetch")]


def run_job(data: str, out: Path, epochs: int, environments: List[Optional[dict]], python: str = sys.executable,
            timeout: float = 600, step_ms: float = 10) -> dict:
    """torchrun on each node (one rank per node), with that node's environment (None:
    this process's); returns {rank: the rank's result (tests/torch/cluster_job.py)}."""
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    launched = []
    for node, env in enumerate(environments):
        launched.append(subprocess.Popen(
            [python, "-m", "torch.distributed.run", "--nnodes", str(len(environments)), "--nproc-per-node", "1",
             "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
             str(JOB), data, str(out), str(epochs), str(step_ms)],
            env=env if env is not None else dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    outputs = [p.communicate(timeout=timeout)[0] for p in launched]
    for p, output in zip(launched, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"torchrun exited {p.returncode}:\n{output[-3000:]}")
    return {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(len(environments))}


def evict(paths: List[str]) -> None:
    for path in paths:
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def warm(paths: List[str]) -> None:
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
