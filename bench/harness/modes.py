"""One run of one mode of one scenario, from cold cache to figures.

For every run: drop the page cache (pagecache.drop on the mount's files and the
source's), in a run with a memory limit import what the job's interpreter
imports in the harness's own cgroup (preload_interpreter: its libraries' page
cache is not the job's working memory), pre-warm everything in the harness's
own cgroup for `warm`, measure what is resident, create the run's memory cgroup
(with the scenario's limit), start the job (and gofetch, and the warm-up)
inside it through the cgroup wrapper, wait, collect the job's result, gofetch's JSON summary (and, from its
trace store, its per-epoch reads and cold reads), the cgroup's figures, and
remove the cgroup. Every process and group is registered with the harness's
Cleanup while it exists.

The `gofetch` and `transparent` modes run the same job under `gofetch run`;
`transparent` adds `--no-python-hook`. Neither changes the job: in `gofetch`
mode gofetch itself puts its Python client on the job's PYTHONPATH.
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
from typing import List, Optional, Tuple

from . import BENCH_DIR
from . import pagecache
from .cgroups import MemoryCgroup, PeakSampler, wrapper_command
from .cleanup import Cleanup
from .scenarios import GOFETCH_MODES, Scenario


@dataclass
class Bench:
    out_dir: str
    gofetch: str
    python: str  # runs the built-in loader and the warm-up (Pillow is there)
    cleanup: Cleanup
    memory_parent: MemoryCgroup
    gofetch_config: str
    run_timeout: float = 900.0
    log: object = print
    extra_env: dict = field(default_factory=dict)
    torch_python: Optional[str] = None  # runs harness/torch_job.py (torch and torchvision importable)

    def python_for(self, workload: str) -> str:
        if workload == "torch":
            if not self.torch_python:
                raise RuntimeError("the torch workload needs an interpreter with torch and torchvision")
            return self.torch_python
        return self.python

    def job_env(self) -> dict:
        """The job's environment: the harness on PYTHONPATH (for `-m harness.…`), nothing
        of gofetch (gofetch run adds its client itself in the gofetch mode)."""
        env = dict(os.environ)
        paths = [BENCH_DIR]
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
        # GOFETCH_BENCH_OPEN_READAHEAD_KB=0: the shim's warming at open off, to compare.
        if os.environ.get("GOFETCH_BENCH_OPEN_READAHEAD_KB"):
            f.write(f"  open_readahead_kb: {int(os.environ['GOFETCH_BENCH_OPEN_READAHEAD_KB'])}\n")


# What each workload's interpreter imports before its first epoch.
WORKLOAD_IMPORTS = {
    "builtin": "import harness.loader",
    "torch": "import torch, torchvision, harness.torch_job; from torchvision import datasets, transforms",
}


def preload_interpreter(bench: Bench, workload: str) -> dict:
    """Imports what the job's interpreter imports, in a process of the harness's own
    cgroup, right after the drop: the page cache of the interpreter's libraries is
    then charged outside the run's memory group. Used for the runs with a memory
    limit (and the calibration that sizes it): torch's import alone brings ~1.3 GiB
    of library pages into the cache, most of them touched once; counted as the job's
    memory they would make the allowance huge, and under the limit the kernel would
    reclaim them first and hand the data far more room than the scenario's fraction.
    The job's anonymous memory and the library pages it touches after the import are
    still charged to the run's group."""
    code = WORKLOAD_IMPORTS[workload]
    started = time.monotonic()
    r = subprocess.run([bench.python_for(workload), "-c", code], env=bench.job_env(), capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"pre-loading the {workload} job's imports failed: {r.stderr.strip()[-500:]}")
    return {"imports": code, "seconds": time.monotonic() - started,
            "note": "imported by the harness outside the run's cgroup after the drop"}


def gofetch_command(bench: Bench, mode: str, run_dir: str) -> List[str]:
    """`gofetch run` for the gofetch modes: `transparent`, `unnamed` and `again` with --no-python-hook,
    `unnamed` with --no-command-line-hints too."""
    command = [bench.gofetch, "run", "--json", "--config", bench.gofetch_config,
               "--db", os.path.join(run_dir, "gofetch.db")]
    if mode in ("transparent", "unnamed", "again"):
        command.append("--no-python-hook")
    if mode == "unnamed":
        command.append("--no-command-line-hints")
    # GOFETCH_BENCH_RUN_ARGS: more options of gofetch run, for a side-by-side run of
    # one setting (e.g. --no-command-line-hints).
    command += os.environ.get("GOFETCH_BENCH_RUN_ARGS", "").split()
    # GOFETCH_BENCH_LOG_LEVEL=trace: every prefetch's timing in the run's job.log.
    if os.environ.get("GOFETCH_BENCH_LOG_LEVEL"):
        command += ["--log-level", os.environ["GOFETCH_BENCH_LOG_LEVEL"]]
    return command


def _stats(gofetch: str, db: str, *args: str) -> Tuple[Optional[dict], Optional[str]]:
    """`gofetch stats --json` of the run's store, or (None, why not)."""
    try:
        r = subprocess.run([gofetch, "stats", "--json", "--db", db, "--top", "0", *args], capture_output=True, text=True,
                           timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"gofetch stats failed: {e}"
    if r.returncode != 0:
        return None, f"gofetch stats exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}"
    try:
        return json.loads(r.stdout), None
    except ValueError:
        return None, "gofetch stats printed no JSON"


_EPOCH_KEYS = ("reads", "coldReads", "coldFiles", "stallNanoseconds", "files", "bytesRead")


def store_epochs(gofetch: str, db: str, spans: Optional[List[Tuple[int, int]]] = None
                 ) -> Tuple[Optional[List[dict]], Optional[str]]:
    """The run's reads per epoch as gofetch's trace store has them (`gofetch stats
    --json`): reads, cold reads (slower than a page-cache copy, docs/metrics.md) and
    the files that had one, time in cold reads. By the epochs the events are tagged
    with, where the Python client's announcements tagged them (`"by": "tag"`); else
    by `spans`, each epoch's (start, end) on the wall clock as the job measured it
    (`"by": "time"`, `gofetch stats --since --until`). Returns (epochs, None) or
    (None, why not)."""
    stats, why = _stats(gofetch, db)
    if stats is None:
        return None, why
    tagged = [e for e in stats.get("epochs", []) if e.get("epoch") is not None]
    if tagged or not spans:
        epochs = [dict({k: e.get(k) for k in _EPOCH_KEYS}, epoch=e["epoch"], by="tag") for e in tagged]
        return sorted(epochs, key=lambda e: e["epoch"]), None
    epochs = []
    for number, (start, end) in enumerate(spans):
        part, why = _stats(gofetch, db, "--since", f"{start / 1e9:.9f}", "--until", f"{end / 1e9:.9f}")
        if part is None:
            return None, why
        # Untagged: one row (none when the span holds no events).
        epochs.append(dict({k: sum(e.get(k) or 0 for e in part.get("epochs", [])) for k in _EPOCH_KEYS},
                           epoch=number, by="time"))
    return epochs, None


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
             prewarm: Optional[bool] = None, split_groups: bool = False, first_of_two: bool = False,
             round_number: int = 1) -> dict:
    """Runs `mode` of `scenario` on `storage`; returns its record (status, epochs, figures).
    `again` runs the job twice in one run folder (one store, one command line) and
    returns the second run's record. Round n > 1 of --repeat runs in its own folder,
    `runs/<scenario>/<mode>.<n>`."""
    name = tag or f"{scenario.id}-{mode}"
    folder = mode if round_number <= 1 else f"{mode}.{round_number}"
    run_dir = os.path.join(bench.out_dir, "runs", scenario.id, folder) if not tag else os.path.join(
        bench.out_dir, "runs", "calibration", tag)
    if mode == "again" and not first_of_two:
        first = run_mode(bench, scenario, storage, mode, memory_limit, epochs, tag, job_spec_extra, prewarm, split_groups,
                         first_of_two=True, round_number=round_number)
        if first.get("status") != "ok":
            return first
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
    files = storage.files()
    source_files = [os.path.join(storage.dataset.root, rel) for rel in storage.dataset.files]
    record = {"mode": mode, "status": "failed", "run_dir": os.path.relpath(run_dir, bench.out_dir)}

    record["drop_s"] = pagecache.drop(files + source_files)
    if scenario.memory_limited:
        record["interpreter_preloaded"] = preload_interpreter(bench, scenario.workload)
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
    job_command = [bench.python_for(scenario.workload), "-m", module, "--spec", spec_path, "--result", result_path]
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
        if mode in GOFETCH_MODES:
            gofetch_group = member("gofetch")
            # gofetch enters the group before it starts anything; the job it starts is
            # in it by inheritance (or enters its own child group in the calibration).
            if split_groups:
                job_command = wrapper_command([job_group], job_command)
            command = wrapper_command([gofetch_group] + list(storage.cgroups), gofetch_command(bench, mode, run_dir)
                                      + ["--"] + job_command)
        else:
            command = wrapper_command([job_group] + list(storage.cgroups), job_command)
        env = bench.job_env()
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
                    cwd=run_dir, env=bench.job_env(), stdin=subprocess.DEVNULL, stdout=wlog, stderr=wlog,
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
    if mode in GOFETCH_MODES:
        summary = parse_gofetch_json(log_text)
        if summary is not None:
            with open(summary_path, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2, sort_keys=True)
            record["gofetch"] = summary.get("summary", summary)
            record["python_hook"] = summary.get("pythonHook")
            record["gofetch_summary_file"] = os.path.relpath(summary_path, bench.out_dir)
        else:
            record.setdefault("error", "gofetch printed no JSON summary")
    if os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as f:
            result = json.load(f)
        record.update(result)
        if returncode == 0:
            record["status"] = "ok"
    db = os.path.join(run_dir, "gofetch.db")
    if mode in GOFETCH_MODES and os.path.exists(db):
        spans = [(e["started_ns"], e["ended_ns"]) for e in record.get("epochs", []) if "started_ns" in e]
        epochs, why = store_epochs(bench.gofetch, db, spans)
        if epochs is not None:
            record["gofetch_epochs"] = epochs
        else:
            record["gofetch_epochs_error"] = why
    if record["status"] != "ok":
        tail = log_text.strip().splitlines()[-15:]
        record.setdefault("error", f"exit code {returncode}")
        record["log_tail"] = tail
    record["log_file"] = os.path.relpath(log_path, bench.out_dir)
    return record


def calibrate_memory(bench: Bench, scenario: Scenario, storage, workers: bool = True, client: bool = True) -> dict:
    """What the processes use besides the data's page cache: a run under gofetch with
    every data page pre-read outside the run's cgroup first (so the group is charged
    only the processes' own memory), the job and gofetch each in a child group;
    their peaks (max_usage) and sampled peak anonymous memory and page cache.
    `workers` False: the job as the no-prefetch mode runs it (num_workers=0; a torch
    worker holds a few hundred MiB of its own). `client` False: without the Python
    client gofetch injects (`transparent`), the job as every mode but `gofetch` runs
    it: the client freezes what a forked worker inherits from the garbage collector,
    which leaves the workers' copy-on-write pages shared; without it the torch job with
    two workers measured up to ~90 MiB more (bench S2 runs sized by the client's peak
    were killed by the memory limit)."""
    extra = None if workers else {"num_workers": 0}
    tag = "calibration-" + ("gofetch" if client else "transparent") + ("" if workers else "-no-workers")
    rec = run_mode(bench, scenario, storage, "gofetch" if client else "transparent", None, tag=tag, prewarm=True,
                   split_groups=True, job_spec_extra=extra)
    if rec["status"] != "ok":
        raise RuntimeError(f"memory calibration run failed: {rec.get('error')}: {rec.get('log_tail')}")
    return {k: {"max_usage_bytes": v["max_usage_bytes"], **(v.get("sampled_peaks") or {})}
            for k, v in rec["cgroup"].get("children", {}).items()}
