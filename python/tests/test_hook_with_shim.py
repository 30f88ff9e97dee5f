"""The hook in a process that also has the LD_PRELOAD shim: the shim reports the
accesses (the hook does not send them twice), the hook tells the shim the worker
and epoch (gofetch_preload_set_worker), and still writes its own store."""

from __future__ import annotations

import collections
import os
import sqlite3

import pytest

from gofetch_testlib import SHIM, job_env, listener, make_folder, run_job  # noqa: F401
from gofetch import wire


@pytest.mark.skipif(not SHIM.exists(), reason="preload shim not built (make -C preload)")
def test_no_double_records_and_tags_reach_the_shim(tmp_path, listener):
    files = make_folder(tmp_path / "data", classes=2, per_class=3)
    db = str(tmp_path / "t.db")
    lst = listener()
    env = job_env(lst.path, LD_PRELOAD=str(SHIM),
                  GOFETCH_INCLUDE=str(tmp_path / "data"))  # the shim then reports only the data files
    out = run_job("read_job.py", dict(files=files, db=db, workers=2, epochs=2, styles=["full"]), env)
    lst.wait_quiet()
    assert out["bad"] == {}
    assert out["stats"]["shim"] is True

    by_source = collections.Counter((m.header.source, r.kind) for m, r in lst.records())
    # the hook sent epoch records, never an access
    assert not any(by_source[(wire.Source.PYTHON_HOOK, k)] for k in (1, 2, 3, 4)), by_source
    assert by_source[(wire.Source.PYTHON_HOOK, wire.Kind.EPOCH)] > 0
    # the shim's own records carry the hook's worker and epoch tags
    shim_opens = collections.defaultdict(list)
    for m, r in lst.records(wire.Kind.OPEN):
        if m.header.source == wire.Source.PRELOAD and r.path in files:
            shim_opens[(r.epoch, r.worker_id)].append(r.path)
    for epoch in (0, 1):
        for worker in (0, 1):
            # each file twice: the job's own check reads it with os.open/os.read too (the shim sees that)
            assert sorted(shim_opens[(epoch, worker)]) == sorted(files[worker::2] * 2), (epoch, worker)
    # ... and the hook's store has the same accesses, once
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT file_path, worker_id, epoch FROM traces WHERE access_type = 'open'").fetchall()
    assert sorted(rows) == sorted((p, i % 2, e) for e in (0, 1) for i, p in enumerate(files))


@pytest.mark.skipif(not SHIM.exists(), reason="preload shim not built (make -C preload)")
def test_an_idle_client_looks_seldom_and_an_epoch_still_goes_at_once(tmp_path, listener):
    """With the shim reporting the accesses, the client only announces: idle, its sender
    thread backs off from 50 passes a second (each costs the job's process CPU and the
    GIL) to about three, and set_epoch wakes it, so the epoch record is not late."""
    lst = listener()
    out = run_job("idle_job.py", dict(idle_s=1.5), job_env(lst.path, LD_PRELOAD=str(SHIM)))
    lst.wait_quiet()
    assert out["stats"]["shim"] is True and out["stats"]["daemon_connected"] is True
    # At 20 ms a pass, 1.5 s is 75 passes; backed off to 0.32 s, under 10.
    assert out["idle_ticks"] <= 10, out
    epochs = [m.header.sent_ns for m, r in lst.records(wire.Kind.EPOCH)
              if m.header.source == wire.Source.PYTHON_HOOK and r.epoch == 3]
    assert epochs, "the epoch record never reached the daemon"
    # Sent within 0.1 s of the call, where an unwoken sender would wait up to 0.32 s.
    assert 0 <= epochs[0] - out["epoch_called_ns"] < 100_000_000, (epochs[0] - out["epoch_called_ns"]) / 1e9


@pytest.mark.skipif(not SHIM.exists(), reason="preload shim not built (make -C preload)")
def test_an_idle_worker_s_records_take_a_new_epoch_at_once(tmp_path, listener):
    """The client hands the shim the family's epoch cell: a worker's sender, forked or
    spawned, with nothing to send, looks seldom, and the shim still stamps the worker's
    records with the epoch the root set a moment before (no pass of the worker's
    sender between)."""
    files = []
    for name in ("forked.bin", "spawned.bin"):
        (tmp_path / name).write_bytes(os.urandom(8192))
        files.append(str(tmp_path / name))
    lst = listener()
    out = run_job("fork_epoch_job.py", dict(files=files, idle_s=1.5),
                  job_env(lst.path, LD_PRELOAD=str(SHIM), GOFETCH_INCLUDE=str(tmp_path)))
    lst.wait_quiet()
    assert out["stats"]["shim"] is True
    # At 20 ms a pass, 1.5 s is 75 passes; backed off to 0.32 s, under 10.
    assert out["worker_idle_ticks"]["fork"] <= 10 and out["worker_idle_ticks"]["spawn"] <= 10, out
    opens = {r.path: (r.epoch, r.worker_id) for m, r in lst.records(wire.Kind.OPEN)
             if m.header.source == wire.Source.PRELOAD and r.path in files}
    assert opens == {files[0]: (7, 0), files[1]: (9, 1)}, opens


@pytest.mark.skipif(not SHIM.exists(), reason="preload shim not built (make -C preload)")
def test_the_shim_takes_only_a_sealed_cell_and_stamps_its_epoch(tmp_path, listener):
    """gofetch_preload_share_epoch takes a file sealed against shrinking of at least four
    bytes, at most four times, and keeps errno; records then carry the epoch written in
    the cell at that moment, in a forked child as well."""
    files = []
    for name in ("parent.bin", "child.bin"):
        (tmp_path / name).write_bytes(os.urandom(8192))
        files.append(str(tmp_path / name))
    lst = listener()
    out = run_job("share_epoch_job.py", dict(files=files),
                  job_env(lst.path, LD_PRELOAD=str(SHIM), GOFETCH_INCLUDE=str(tmp_path)))
    lst.wait_quiet()
    refused = [-1, 1234]
    assert out["pipe"] == refused and out["unsealed"] == refused and out["short"] == refused
    assert out["closed"] == refused
    assert out["sealed"] == [[0, 1234]] * 4 + [refused]
    opens = {r.path: r.epoch for m, r in lst.records(wire.Kind.OPEN)
             if m.header.source == wire.Source.PRELOAD and r.path in files}
    assert opens == {files[0]: 42, files[1]: 43}, opens
