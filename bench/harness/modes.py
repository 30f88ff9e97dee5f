"""One run of one mode of one scenario, from cold cache to figures.

For every run: drop the page cache (pagecache.drop on the mount's files and the
source's), pre-warm everything in the harness's own cgroup for `warm`, measure
what is resident, create the run's memory cgroup (with the scenario's limit),
start the job (and gofetch, and the warm-up) inside it through the cgroup
wrapper, wait, collect the job's result, gofetch's JSON summary, the cgroup's
figures, and remove the cgroup. Every process and group is registered with the
harness's Cleanup while it exists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional

from . import BENCH_DIR, REPO_DIR
from . import pagecache
from .cgroups import MemoryCgroup, PeakSampler, wrapper_command
from .cleanup import Cleanup
from .scenarios import Scenario


@dataclass
class Bench:
    out_dir: str
    gofetch: str
    python: str
    cleanup: Cleanup
    memory_parent: MemoryCgroup
    gofetch_config: str
    run_timeout: float = 900.0
    log: object = print
    extra_env: dict = field(default_factory=dict)

    def job_env(self, hook: bool) -> dict:
        env = dict(os.environ)
        paths = [BENCH_DIR]
        if hook:
            paths.append(os.path.join(REPO_DIR, "python"))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(self.extra_env)
        return env


def write_gofetch_config(path: str, excluded: List[str]) -> None:
    """The bench's config: the default exclusions plus the harness's own files. Nothing else."""
    defaults = ["/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/etc", "/run", "/var/lib/dpkg"]
    prefixes = defaults + [p for p in excluded if p not in defaults]
    with open(path, "w", encoding="utf-8") as f:
        f.write("# gofetch config used by bench/run: defaults, except that the harness's own\n"
                "# files (its code, its output, the Python install) are not traced.\n")
        f.write("trace:\n  exclude_prefixes:\n")
        for p in prefixes:
            f.write(f"    - {p}\n")


def parse_gofetch_json(text: str) -> Optional[dict]:
    """The last JSON object gofetch printed (it shares stderr with the job)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].rstrip() == "{":
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    return None


def _kill_tree(proc: subprocess.Popen, group: Optional[MemoryCgroup]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if group is not None:
        group.kill_all()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_mode(bench: Bench, scenario: Scenario, storage, mode: str, memory_limit: Optional[int],
             epochs: Optional[int] = None, tag: str = "", job_spec_extra: Optional[dict] = None,
             prewarm: Optional[bool] = None, split_groups: bool = False) -> dict:
    """Runs `mode` of `scenario` on `storage`; returns its record (status, epochs, figures)."""
    name = tag or f"{scenario.id}-{mode}"
    run_dir = os.path.join(bench.out_dir, "runs", scenario.id if not tag else "calibration", mode)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    files = storage.files()
    source_files = [os.path.join(storage.dataset.root, rel) for rel in storage.dataset.files]
    record = {"mode": mode, "status": "failed"}

    record["drop_s"] = pagecache.drop(files + source_files)
    if prewarm is None:
        prewarm = mode == "warm"
    if prewarm:
        nbytes, secs = pagecache.prewarm(files)
        record["prewarm"] = {"bytes": nbytes, "seconds": secs,
                             "note": "read by the harness outside the job's cgroup"}
    record["resident_at_start"] = pagecache.residency(files)

    spec = scenario.job_spec(storage.path, storage.dataset.files, storage.dataset.sizes, mode)
    if epochs is not None:
        spec["epochs"] = epochs
    spec.update(job_spec_extra or {})
    spec_path = os.path.join(run_dir, "spec.json")
    result_path = os.path.join(run_dir, "result.json")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    module = "harness.torch_job" if scenario.workload == "torch" else "harness.loader"
    job_command = [bench.python, "-m", module, "--spec", spec_path, "--result", result_path]
    summary_path = os.path.join(run_dir, "gofetch.json")

    # One group per run holds the limit, and every process of the run (gofetch, the
    # job and its workers, the warm-up) is in it: one LRU, as when they share a
    # container. Only the calibration (no limit, so no reclaim) splits it into
    # child groups per process kind, to measure each one's own peak.
    group = bench.memory_parent.child(name).create()
    group_token = bench.cleanup.push(f"remove cgroup {group.path}", group.remove)

    def member(kind: str):
        return group.child(kind).create() if split_groups else group

    job_group = member("job")
    procs: List[subprocess.Popen] = []
    proc_tokens: List[int] = []
    log_path = os.path.join(run_dir, "job.log")
    try:
        if memory_limit:
            group.set_limit(memory_limit)
        if mode == "gofetch":
            gofetch_group = member("gofetch")
            # gofetch enters the group before it starts anything; the job it starts is
            # in it by inheritance (or enters its own child group in the calibration).
            if split_groups:
                job_command = wrapper_command([job_group], job_command)
            command = wrapper_command([gofetch_group] + list(storage.cgroups), [
                bench.gofetch, "run", "--json", "--config", bench.gofetch_config,
                "--db", os.path.join(run_dir, "gofetch.db"), "--"] + job_command)
        else:
            command = wrapper_command([job_group] + list(storage.cgroups), job_command)
        env = bench.job_env(spec.get("hook", False))
        io_before = storage.stats()
        started = time.monotonic()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, cwd=run_dir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        procs.append(proc)
        proc_tokens.append(bench.cleanup.push(f"kill {name}", lambda p=proc: _kill_tree(p, group)))
        warm_proc = None
        warm_result = os.path.join(run_dir, "warmup.json")
        if mode == "warmup":
            warm_group = member("warmup")
            with open(os.path.join(run_dir, "warmup.log"), "wb") as wlog:
                warm_proc = subprocess.Popen(
                    wrapper_command([warm_group] + list(storage.cgroups),
                                    [bench.python, "-m", "harness.warmup", storage.path, "--result", warm_result]),
                    cwd=run_dir, env=bench.job_env(False), stdin=subprocess.DEVNULL, stdout=wlog, stderr=wlog,
                    start_new_session=True)
            procs.append(warm_proc)
            proc_tokens.append(bench.cleanup.push(f"kill {name} warm-up", lambda p=warm_proc: _kill_tree(p, warm_group)))
        sampler = PeakSampler({k: group.child(k) for k in ("job", "gofetch", "warmup")
                               if group.child(k).exists()} if split_groups else {})
        with sampler:
            try:
                returncode = proc.wait(timeout=bench.run_timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(proc, group)
                record["error"] = f"timed out after {bench.run_timeout:.0f} s"
                returncode = None
        record["process_s"] = time.monotonic() - started
        record["returncode"] = returncode
        if warm_proc is not None:
            finished = warm_proc.poll() is not None
            if not finished:
                _kill_tree(warm_proc, warm_group)
            info = {"finished": finished}
            if os.path.exists(warm_result):
                with open(warm_result, encoding="utf-8") as f:
                    info.update(json.load(f))
            else:
                info["note"] = "stopped with the job before reading everything"
            record["warmup"] = info
        record["cgroup"] = group.figures()
        record["cgroup"]["path"] = group.path
        if split_groups:
            record["cgroup"]["children"] = {}
            for child_name in ("job", "gofetch", "warmup"):
                child = group.child(child_name)
                if child.exists():
                    record["cgroup"]["children"][child_name] = child.figures()
                    record["cgroup"]["children"][child_name]["sampled_peaks"] = sampler.peaks.get(child_name)
        io_after = storage.stats()
        if io_after:
            record["storage_io"] = {k: v - io_before.get(k, 0) for k, v in io_after.items()}
        record["resident_at_end"] = pagecache.residency(files)
    finally:
        for token in proc_tokens:
            bench.cleanup.release(token)
        bench.cleanup.release(group_token)

    with open(log_path, "rb") as f:
        log_text = f.read().decode("utf-8", "replace")
    if mode == "gofetch":
        summary = parse_gofetch_json(log_text)
        if summary is not None:
            with open(summary_path, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2, sort_keys=True)
            record["gofetch"] = summary.get("summary", summary)
            record["gofetch_summary_file"] = os.path.relpath(summary_path, bench.out_dir)
        else:
            record.setdefault("error", "gofetch printed no JSON summary")
    if os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as f:
            result = json.load(f)
        record.update(result)
        if returncode == 0:
            record["status"] = "ok"
    if record["status"] != "ok":
        tail = log_text.strip().splitlines()[-15:]
        record.setdefault("error", f"exit code {returncode}")
        record["log_tail"] = tail
    record["log_file"] = os.path.relpath(log_path, bench.out_dir)
    return record


def calibrate_memory(bench: Bench, scenario: Scenario, storage) -> dict:
    """What the processes use besides the data's page cache: the gofetch mode with
    every data page pre-read outside the run's cgroup first (so the group is charged
    only the processes' own memory), the job and gofetch each in a child group;
    their peaks (max_usage) and sampled peak anonymous memory and page cache."""
    rec = run_mode(bench, scenario, storage, "gofetch", None, tag="calibration-gofetch", prewarm=True,
                   split_groups=True)
    if rec["status"] != "ok":
        raise RuntimeError(f"memory calibration run failed: {rec.get('error')}: {rec.get('log_tail')}")
    return {k: {"max_usage_bytes": v["max_usage_bytes"], **(v.get("sampled_peaks") or {})}
            for k, v in rec["cgroup"].get("children", {}).items()}
