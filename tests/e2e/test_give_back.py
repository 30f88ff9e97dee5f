"""When an epoch's data set does not fit the memory cgroup gofetch and the job share
(a job's container), gofetch gives back the pages of each file the epoch has read
(least-recently-used reclaim would evict the unread ones first); when it fits, or
when only the job is under the limit (the pages gofetch loads are charged to its
own group, which the job's limit cannot reclaim), nothing is given back."""
import json
import os
import subprocess
import textwrap

import pytest

MEMORY = "/sys/fs/cgroup/memory"

JOB = textwrap.dedent(
    """
    import os, sys
    root = sys.argv[1]
    names = sorted(os.listdir(root))
    for epoch in range(3):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                f.read()
    """
)


def enter(cgroup, command):
    """`command`, run inside `cgroup` (it enters, then execs)."""
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] + command


def run(gofetch_bin, python_bin, tmp_path, name, data, cgroup=None, config=None, job_only=False):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    job = [python_bin, str(script), str(data)]
    options = ["--config", str(config)] if config else []
    command = [gofetch_bin, "run", *options, "--db", str(tmp_path / f"{name}.db"), "--json", "--"]
    if cgroup and job_only:
        command += enter(cgroup, job)
    elif cgroup:
        command = enter(cgroup, command + job)  # gofetch and the job in one group, as in a container
    else:
        command += job
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stderr[result.stderr.index("{"):])["summary"]["prefetch"]


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(MEMORY, os.W_OK),
                    reason="needs root and the cgroup v1 memory controller to limit the job's memory")
def test_consumed_files_are_given_back_only_when_the_data_set_does_not_fit(tmp_path, gofetch_bin, python_bin):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(60):
        (data / f"s{i:03d}.bin").write_bytes(os.urandom(1 << 20))  # 60 MiB
    cgroup = os.path.join(MEMORY, f"gofetch-test-give-back-{os.getpid()}")
    os.mkdir(cgroup)
    try:
        with open(os.path.join(cgroup, "memory.limit_in_bytes"), "w") as f:
            f.write(str(64 << 20))  # gofetch's and the interpreter's own memory, and under the data
        limited = run(gofetch_bin, python_bin, tmp_path, "limited", data, cgroup)
        off = tmp_path / "off.yaml"
        off.write_text("prefetcher:\n  evict_consumed: false\n")
        switched_off = run(gofetch_bin, python_bin, tmp_path, "off", data, cgroup, config=off)
        job_only = run(gofetch_bin, python_bin, tmp_path, "job-only", data, cgroup, job_only=True)
    finally:
        os.rmdir(cgroup)
    fits = run(gofetch_bin, python_bin, tmp_path, "fits", data)
    print("limited:", limited["givenBack"], "given back,", limited["giveBackDropped"], "not done; fits:", fits["givenBack"])
    # Epochs 2 and 3 read 120 files; the first repeats of each mark the boundary.
    assert limited["givenBack"] >= 100
    assert fits["givenBack"] == 0 and fits["giveBackDropped"] == 0
    assert switched_off["givenBack"] == 0  # prefetcher.evict_consumed: false
    assert job_only["givenBack"] == 0  # the job's limit does not hold the pages gofetch loaded
