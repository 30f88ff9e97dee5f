"""The shim warms a small file at open on FUSE (GOFETCH_OPEN_READAHEAD_KB): a job
that reads each file as an image decoder does (a 4 kB probe, then the rest) costs
the storage one read request per file instead of two or more, and the open
records say which files were warmed. A job that reads only the first 4 kB of
each file turns it off after its first files and costs the storage no more
bytes than without it. Checked on bench/emulator's slowfs (its counters at unmount)."""

import os
import sys

import pytest

import random

from conftest import ROOT, PYTHON, run
from gofetch import wire

sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))

if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip("needs /dev/fuse and root (mounting a FUSE file system)", allow_module_level=True)

from mount import SlowMount  # noqa: E402

READER = r"""
import os, sys
whole = sys.argv[1] == "whole"
for path in sys.argv[2:]:
    with open(path, "rb", buffering=0) as f:
        f.read(4096)
        if whole:
            f.read(61440)
            f.read()
"""

FILES = 30


def storage_requests(tmp_path, shim, listener, how: str, kb: int):
    """Mounts the folder, evicts it, runs the reader with the shim; returns slowfs's
    counters and the data files' open records."""
    source = tmp_path / "source"
    if not source.exists():
        source.mkdir()
        rng = random.Random(4)
        for i in range(FILES):
            (source / f"img_{i:03d}.jpg").write_bytes(rng.randbytes(rng.randint(60_000, 120_000)))
    lst = listener(f"gofetch-{how}-{kb}.sock")
    with SlowMount(str(source), latency_ms=2) as mount:
        paths = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        for path in paths:
            with open(path, "rb") as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        run([PYTHON, "-c", READER, how, *paths], shim=shim, socket_path=lst.path,
            env={"GOFETCH_OPEN_READAHEAD_KB": str(kb)})
        lst.wait_quiet()
    opens = [record for _, record in lst.records(wire.Kind.OPEN) if record.path in paths]
    assert [r.path for r in opens] == paths
    stats = dict(mount.stats(), total=sum(f.stat().st_size for f in source.iterdir()))
    return stats, opens, paths


def test_a_job_reading_small_files_whole_costs_one_request_per_file(tmp_path, shim, listener):
    plain, plain_opens, _ = storage_requests(tmp_path, shim, listener, "whole", 0)
    warmed, opens, paths = storage_requests(tmp_path, shim, listener, "whole", 1024)
    print(f"read requests at the storage for {FILES} files: {plain['reads']} without, {warmed['reads']} with")
    assert not any(r.flags & wire.Flag.WARMED_AT_OPEN for r in plain_opens)
    # The first two files teach the shim that this job reads files whole; the rest are warmed.
    flagged = [bool(r.flags & wire.Flag.WARMED_AT_OPEN) for r in opens]
    assert flagged == [False, False] + [True] * (FILES - 2)
    assert plain["reads"] >= 2 * FILES
    assert warmed["reads"] <= FILES + 2 * 3
    # Nothing but the files, read once.
    assert warmed["bytes"] <= plain["bytes"] <= plain["total"]


def test_a_job_reading_headers_only_is_not_warmed(tmp_path, shim, listener):
    plain, _, _ = storage_requests(tmp_path, shim, listener, "head", 0)
    gated, opens, _ = storage_requests(tmp_path, shim, listener, "head", 1024)
    print(f"bytes at the storage, headers only: {plain['bytes']} without, {gated['bytes']} with")
    assert not any(r.flags & wire.Flag.WARMED_AT_OPEN for r in opens)
    assert gated["bytes"] <= plain["bytes"]
