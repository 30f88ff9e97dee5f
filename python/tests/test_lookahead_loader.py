"""Lookahead on DataLoaders, without PyTorch: jobs run against tests/fake_torch, a
stand-in shaped like torch.utils.data (fork workers, in-order dispatch, the same
order of random draws), with a listener as the daemon.

For every configuration: the job without gofetch and the job with
enable_hook(...) yield the same batches for the same seed (indices, contents and
the workers' random streams); each epoch's announcement (kind 6, from the main
process) is exactly the batches' order; and each worker opened exactly the files
announced for it, in that order (its own open records, from its own connection).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from gofetch_testlib import (JOBS, PYTHON, Listener, announcements, check_announced_is_read_order,  # noqa: F401
                             expected_order, job_env, listener, make_folder, run_job)
from gofetch import wire

CONFIGS = {
    "shuffle-2-workers": dict(num_workers=2, epochs=2),
    "main-process": dict(num_workers=0, epochs=2),
    "persistent-workers": dict(num_workers=2, persistent=True, epochs=3),
    "batch-sampler": dict(num_workers=2, sampler="batch_sampler", batch_size=3, epochs=2),
    "distributed-rank-1": dict(num_workers=2, sampler="distributed", rank=1, replicas=2, epochs=2),
    "unbatched": dict(num_workers=2, sampler="unbatched", epochs=2),
    "subset": dict(num_workers=3, dataset="subset", epochs=2),
    "learned-mapping": dict(num_workers=2, dataset="opaque", epochs=3, batch_sleep=0.02),
    "learned-persistent": dict(num_workers=2, dataset="opaque", persistent=True, epochs=3, batch_sleep=0.02),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    return make_folder(root / "data", classes=3, per_class=9), str(root / "data")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_announced_order_is_the_read_order_and_batches_are_unchanged(name, dataset, listener, tmp_path):
    paths, root = dataset
    config = dict(CONFIGS[name], data=root, seed=7)
    baseline = run_job("loader_job.py", config, job_env())
    lst = listener()
    hooked = run_job("loader_job.py", dict(config, hook=True, db=str(tmp_path / "t.db")), job_env(lst.path))
    lst.wait_quiet()

    assert hooked["batches"] == baseline["batches"], "lookahead changed what the loader yields"
    stats = hooked["stats"]
    assert stats["errors"] == 0 and stats["dropped"] == 0, stats

    check_announced_is_read_order(lst, hooked, paths, config, learned=config.get("dataset") == "opaque")


def test_explicit_lookahead_without_the_hook(dataset, listener):
    """gofetch.lookahead(loader) alone: announcements only, nothing traced, same batches."""
    paths, root = dataset
    config = dict(data=root, seed=3, num_workers=2, epochs=2, explicit=True)
    baseline = run_job("loader_job.py", dict(config, explicit=False), job_env())
    lst = listener()
    planned = run_job("loader_job.py", config, job_env(lst.path))
    lst.wait_quiet()
    assert planned["batches"] == baseline["batches"]
    announced = announcements(lst, planned["pid"])
    assert sorted(announced) == [0, 1]
    for epoch, records in announced.items():
        assert [(r.path, r.worker_id) for r in records] == expected_order(planned["batches"][epoch], paths, 2)
    assert lst.records(wire.Kind.OPEN) == []  # the hook is off: no accesses reported
    assert planned["stats"]["active"] is False and planned["stats"]["lookahead_announced"] == 2


def test_a_daemon_that_connects_late_gets_the_current_list(dataset, tmp_path):
    """No daemon when the epoch starts: the announcement is sent once one appears."""
    paths, root = dataset
    sock = str(tmp_path / "late.sock")
    config = dict(data=root, seed=1, num_workers=0, epochs=1, explicit=True, pause_after_first_batch=True,
                  pause_sleep=0.3)
    proc = subprocess.Popen([PYTHON, str(JOBS / "loader_job.py"), json.dumps(config)], env=job_env(sock),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lst = None
    try:
        assert proc.stdout.readline().strip() == "PAUSE"
        lst = Listener(sock)  # the daemon starts now
        proc.stdin.write("\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        lst.wait_quiet()
        result = json.loads(out.strip().splitlines()[-1])
        announced = announcements(lst, proc.pid)
        assert [(r.path, r.worker_id) for r in announced[0]] == expected_order(result["batches"][0], paths, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
        if lst is not None:
            lst.close()
