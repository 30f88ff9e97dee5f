"""Shared helpers of the Python-client tests: a SOCK_SEQPACKET listener standing in
for the daemon, data sets on disk, and jobs run in fresh interpreters (the hook
patches builtins.open, so it never runs inside the pytest process itself)."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import random
import subprocess
import sys
from typing import Dict, List, Optional

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON_DIR = ROOT / "python"
FAKE_TORCH = HERE / "fake_torch"
JOBS = HERE / "jobs"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

from gofetch import wire  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "support"))
from seqpacket_listener import Listener, Message, listener_fixture  # noqa: E402,F401

PYTHON = sys.executable  # a venv's interpreter path (its realpath would lose the venv's packages)


@pytest.fixture
def listener(tmp_path):
    yield from listener_fixture(tmp_path)


def make_folder(root: pathlib.Path, classes: int = 3, per_class: int = 8, seed: int = 0,
                min_size: int = 100, max_size: int = 6000) -> List[str]:
    """An ImageFolder-like tree of binary files; returns the sorted paths."""
    rng = random.Random(seed)
    paths = []
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = folder / f"sample_{i:03d}.bin"
            path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randint(min_size, max_size))))
            paths.append(str(path))
    return sorted(paths)


def job_env(socket_path: Optional[str] = None, fake_torch: bool = True, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GOFETCH_", "PYTHON", "LD_PRELOAD"))}
    parts = [str(PYTHON_DIR)]
    if fake_torch:
        parts.insert(0, str(FAKE_TORCH))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["GOFETCH_SOCKET"] = socket_path or "/nonexistent/gofetch-test.sock"
    env.update(extra)
    return env


def run_job(script: str, config: dict, env: Dict[str, str], timeout: float = 60.0, check: bool = True) -> dict:
    """Runs jobs/<script> with the JSON config; returns the JSON the job printed last."""
    proc = subprocess.run([PYTHON, str(JOBS / script), json.dumps(config)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    out = json.loads(lines[-1]) if lines else {}
    out["_returncode"] = proc.returncode
    out["_stderr"] = proc.stderr
    return out


def announcements(lst: Listener, pid: int) -> Dict[int, List[wire.Record]]:
    """epoch -> the kind-6 records ``pid`` announced last for it, by offset (checked contiguous)."""
    out: Dict[int, List[wire.Record]] = {}
    current: List[wire.Record] = []
    for _, record in lst.records(wire.Kind.LOOKAHEAD, pid=pid):
        if record.flags & wire.Flag.ANNOUNCEMENT_START:
            assert record.offset == 0
            current = [record]
            out[record.epoch] = current
        else:
            assert current, "a lookahead record before any announcement start"
            assert record.offset == current[-1].offset + 1, "offsets must run on across messages"
            assert record.epoch == current[0].epoch
            current.append(record)
    return out


def find_gofetch_binary() -> Optional[str]:
    env = os.environ.get("GOFETCH_BIN")
    if env and os.access(env, os.X_OK):
        return env
    for sub in ("debug", "release"):
        candidate = ROOT / ".build" / sub / "gofetch"
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


SHIM = ROOT / "preload" / "build" / "libgofetch_preload.so"


def expected_order(batches, paths, num_workers):
    """(path, worker) in the order the loader yielded its samples. A sample is
    [index of its file in ``paths``, ...] (also through a Subset); batch i is loaded
    by worker i mod num_workers (PyTorch's in-order dispatch), or -1 with none."""
    out = []
    for position, batch in enumerate(batches):
        worker = position % num_workers if num_workers else -1
        for sample in batch:
            out.append((paths[sample[0]], worker))
    return out


def check_announced_is_read_order(lst: Listener, hooked: dict, paths: List[str], config: dict,
                                  learned: bool = False) -> None:
    """Each epoch's announcement (kind 6 from the main process) is the batches' order; each
    worker opened exactly the files announced for it, in that order, from one process."""
    workers = config["num_workers"]
    epochs = config["epochs"]
    stats = hooked["stats"]
    announced = announcements(lst, hooked["pid"])
    assert sorted(announced) == (list(range(1, epochs)) if learned else list(range(epochs)))
    for epoch, records in announced.items():
        expected = expected_order(hooked["batches"][epoch], paths, workers)
        assert [(r.path, r.worker_id) for r in records] == expected, f"epoch {epoch}"
        assert all(r.epoch == epoch for r in records)
        assert all(r.length in (0, os.path.getsize(r.path)) for r in records)
    if learned:
        # every sample of the first epoch taught its index -> file
        assert stats["learned"] == len({sample[0] for batch in hooked["batches"][0] for sample in batch})
    opened = collections.defaultdict(list)
    for message, record in lst.records(wire.Kind.OPEN):
        if message.header.source != wire.Source.PYTHON_HOOK or record.path not in paths:
            continue
        opened[(record.epoch, record.worker_id)].append((message.peer_pid, record.path))
    for epoch in range(epochs):
        expected = expected_order(hooked["batches"][epoch], paths, workers)
        for worker in sorted({w for _, w in expected}):
            reads = opened[(epoch, worker)]
            assert [p for _, p in reads] == [p for p, w in expected if w == worker], (epoch, worker)
            pids = {pid for pid, _ in reads}
            assert len(pids) == 1
            assert (pids == {hooked["pid"]}) == (workers == 0)
    main_epochs = [r.epoch for _, r in lst.records(wire.Kind.EPOCH, pid=hooked["pid"])]
    assert sorted(set(main_epochs)) == list(range(epochs))
    assert main_epochs == sorted(main_epochs)
