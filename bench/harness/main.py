"""bench/run: every scenario, every mode, one table. See bench/README.md."""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from . import BENCH_DIR, REPO_DIR
from . import cgroups, datasets, pagecache, report, storage as storage_mod
from .cgroups import MemoryCgroup
from .cleanup import Cleanup, Interrupted
from .modes import Bench, calibrate_memory, run_mode, write_gofetch_config
from .scenarios import MODE_TEXT, MODES, QUICK_SCENARIOS, REPORT_ORDER, Scenario, build

MiB = 1 << 20
FIXED_ALLOWANCE = 64 * MiB
# Where `scripts/setup --torch` makes a virtual environment with torch and torchvision.
TORCH_VENV_PYTHON = "/var/cache/gofetch/venv-torch/bin/python"


def log(msg: str) -> None:
    print(msg, flush=True)


def find_gofetch(explicit: Optional[str]) -> Optional[str]:
    candidates = [explicit] if explicit else []
    if os.environ.get("GOFETCH_BIN"):
        candidates.append(os.environ["GOFETCH_BIN"])
    candidates += [os.path.join(REPO_DIR, ".build", "release", "gofetch")]
    candidates += sorted(glob.glob(os.path.join(REPO_DIR, ".build", "*", "release", "gofetch")))
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return os.path.realpath(c)
    return None


def check_client(python: str, python_dir: str = os.path.join(REPO_DIR, "python")) -> Optional[str]:
    """None when the client `gofetch run` injects can start in `python` (it imports
    `gofetch._autostart` from `python_dir`, as python/inject/sitecustomize.py does),
    else why not. A preflight only: what happened in a run is in gofetch's summary
    (`pythonHook`)."""
    code = ("import sys\n"
            "if sys.version_info < (3, 8): sys.exit('Python %d.%d is older than 3.8, the oldest the client supports'"
            " % sys.version_info[:2])\n"
            "import gofetch\n"
            "try:\n"
            "    from gofetch import _autostart\n"
            "except ImportError:\n"
            "    sys.exit('gofetch (' + gofetch.__file__ + ') has no _autostart: not the client gofetch run injects')\n"
            "if not callable(getattr(_autostart, 'start', None)): sys.exit('gofetch._autostart.start is missing')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = python_dir
    try:
        r = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"checking the client failed: {e}"
    if r.returncode == 0:
        return None
    text = (r.stderr or r.stdout).strip().splitlines()
    return text[-1] if text else f"import gofetch failed (exit {r.returncode})"


def probe_torch(python: str) -> Tuple[Optional[str], dict]:
    """(None, facts) when `import torch, torchvision` works in `python`, else (why not, {}).
    The facts: the interpreter, its prefixes (so gofetch does not trace torch's own
    files) and the versions."""
    code = ("import json, sys, torch, torchvision, PIL\n"
            "print(json.dumps({'prefix': sys.prefix, 'base_prefix': sys.base_prefix, 'torch': torch.__version__,"
            " 'torchvision': torchvision.__version__}))\n")
    if not python or not os.access(python, os.X_OK):
        return f"{python or 'no interpreter'}: not an executable", {}
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python}: {e}", {}
    if r.returncode != 0:
        text = r.stderr.strip().splitlines()
        return f"{python}: {text[-1] if text else 'import torch failed'}", {}
    info = json.loads(r.stdout.strip().splitlines()[-1])
    info["python"] = python
    return None, info


def choose_workload(args, bench_python: str, log=print) -> Tuple[str, Optional[dict], Optional[str]]:
    """The image scenarios' workload: ("torch", facts, None) when torch and torchvision
    import in --torch-python, else the torch venv `scripts/setup --torch` makes, else
    the bench's own interpreter; else ("builtin", None, why torch is not used).
    --workload torch (--torch) insists: then the image scenarios are not run without it."""
    if args.workload == "builtin":
        return "builtin", None, "--workload builtin"
    candidates = [args.torch_python] if args.torch_python else [TORCH_VENV_PYTHON, bench_python]
    problems = []
    for python in candidates:
        if not python or (python == TORCH_VENV_PYTHON and not os.path.exists(python)):
            problems.append(f"{python}: not there (scripts/setup --torch makes it)")
            continue
        why, info = probe_torch(python)
        if why is None:
            log(f"image scenarios: real torch {info['torch']} / torchvision {info['torchvision']} "
                f"(harness/torch_job.py) with {python}")
            return "torch", info, None
        problems.append(why)
    why = "torch/torchvision not importable: " + "; ".join(problems) + " (install them: scripts/setup --torch)"
    if args.workload == "torch":
        log(f"--torch: image scenarios not run: {why}")
        return "torch", None, why
    log(f"image scenarios: the built-in loader (harness/loader.py): {why}")
    return "builtin", None, why


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Measures what gofetch saves a data-loading training job on slow storage: "
                    "every scenario in every mode, caches dropped before each run. "
                    "Results in bench/out/ (results.json, table.md, gofetch summaries). See bench/README.md.")
    p.add_argument("--quick", action="store_true",
                   help=f"small data sets, 2 epochs, scenarios {','.join(QUICK_SCENARIOS)} (about 12 minutes)")
    p.add_argument("--latency-ms", type=float, default=3.0, help="slowfs latency per read request (default 3)")
    p.add_argument("--bandwidth-mbps", type=float, default=0.0,
                   help="slowfs (or blkio) bandwidth cap in MiB/s for the scenarios without their own "
                        "(S1-cap and S3-cap have 30), 0 = none")
    p.add_argument("--storage", choices=["fuse", "blkio"], default="fuse",
                   help="fuse: slowfs latency emulation (default); blkio: loop-mounted ext4 image with a "
                        "cgroup v1 blkio IOPS throttle shared by the job and gofetch")
    p.add_argument("--iops", type=int, default=250, help="--storage blkio: read IOPS limit (default 250)")
    p.add_argument("--scenarios",
                   help=f"comma-separated subset of {','.join(REPORT_ORDER)} (default: all; with --quick "
                        f"{','.join(QUICK_SCENARIOS)})")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--epochs", type=int, help="epochs per run (quick 2, full 3)")
    p.add_argument("--image-files", type=int, help="files in the image folder (quick 1500, full 6000)")
    p.add_argument("--shards", type=int, help="tar shards of 64 MiB (quick 3, full 8)")
    p.add_argument("--shard-mb", type=int, default=64, help="size of a shard in MiB (default 64)")
    p.add_argument("--workers", type=int, default=2, help="loader workers (default 2, the number of cores here)")
    p.add_argument("--memory-fraction", type=float,
                   help="S2/S4 memory limit: this fraction of the data set (the room for the data's page cache) "
                        "plus the measured allowance for the job's own memory (default: S2 0.6; S4 0.5, so the "
                        "data set is twice the room the limit leaves it)")
    p.add_argument("--allowance-mb", type=float, help="skip the memory calibration and use this allowance")
    p.add_argument("--workload", choices=["auto", "torch", "builtin"], default="auto",
                   help="the image scenarios' job: torch = a real torch DataLoader over torchvision's ImageFolder "
                        "(harness/torch_job.py); builtin = harness/loader.py; auto (default) = torch when "
                        "importable, else builtin (the reason is printed)")
    p.add_argument("--torch", dest="workload", action="store_const", const="torch",
                   help="= --workload torch: every image scenario runs the real torch job; without torch they "
                        "are reported not run, with the reason")
    p.add_argument("--torch-python",
                   help=f"the interpreter with torch and torchvision (default: {TORCH_VENV_PYTHON}, made by "
                        "scripts/setup --torch, else the bench's own)")
    p.add_argument("--gofetch", help="the gofetch executable (default: the release build under .build)")
    p.add_argument("--data-dir", default=os.path.join(BENCH_DIR, "data"))
    p.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "out"))
    p.add_argument("--repeat", type=int, default=1,
                   help="run the modes in this many rounds, every mode once per round, in turns; the tables "
                        "show each mode's run with the median total stall, the goals the median of each "
                        "round's ratio (every run in results.json); default 1")
    p.add_argument("--run-timeout", type=float, default=900.0, help="seconds before a run is killed (default 900)")
    return p.parse_args(argv)


def preflight(args) -> List[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (drop_caches, cgroups, mounts)")
    for why in (pagecache.drop_caches_available(), cgroups.available("memory")):
        if why:
            problems.append(why)
    if args.storage == "fuse":
        why = storage_mod.fuse_unavailable()
    else:
        why = storage_mod.blkio_unavailable() or cgroups.available("blkio")
    if why:
        problems.append(why)
    return problems


LOCK_PATH = "/tmp/gofetch-bench.lock"


def machine_lock():
    """One bench/run at a time on this machine: two would drop each other's caches,
    share the CPUs and (with the same --out-dir) delete each other's runs. Waits for
    the other one, saying so."""
    import fcntl

    f = open(LOCK_PATH, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        other = f.read().strip() or "?"
        log(f"another bench/run (pid {other}) is running on this machine; waiting for it to finish ...")
        fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def scenario_params(sc: Scenario) -> dict:
    return {k: getattr(sc, k) for k in ("order", "memory_limited", "memory_fraction", "bandwidth_mbps", "workers",
                                        "batch_size", "prefetch_factor", "step_ms", "epochs", "read_size",
                                        "workload")}


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    quick = args.quick
    default_scenarios = QUICK_SCENARIOS if quick else REPORT_ORDER
    wanted = [s.strip() for s in (args.scenarios or ",".join(default_scenarios)).split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            print(f"unknown mode {m!r}; modes: {', '.join(MODES)}", file=sys.stderr)
            return 2
    problems = preflight(args)
    gofetch = find_gofetch(args.gofetch)
    if gofetch is None:
        problems.append("gofetch executable not found (build it, or pass --gofetch)")
    elif not os.path.exists(os.path.join(os.path.dirname(gofetch), "libgofetch_preload.so")):
        problems.append(f"libgofetch_preload.so is not beside {gofetch}")
    if problems:
        for p in problems:
            print(f"bench/run: cannot run: {p}", file=sys.stderr)
        return 2

    lock = machine_lock()  # held until this process exits
    image_files = args.image_files or (1500 if quick else 6000)
    n_shards = args.shards or (3 if quick else 8)
    all_scenarios = build(quick, epochs=args.epochs, image_workers=args.workers, shard_workers=args.workers)
    known = [s.id for s in all_scenarios]
    for s in wanted:
        if s not in known:
            print(f"unknown scenario {s!r}; scenarios: {', '.join(known)}", file=sys.stderr)
            return 2
    scenarios = [s for s in all_scenarios if s.id in wanted]
    args.out_dir = os.path.abspath(args.out_dir)  # jobs run in their own folders
    os.makedirs(args.out_dir, exist_ok=True)
    os.makedirs(args.data_dir, exist_ok=True)
    python = sys.executable

    results: Dict = {
        "meta": {
            "quick": quick, "argv": sys.argv, "storage_kind": args.storage,
            "latency_ms": args.latency_ms if args.storage == "fuse" else None,
            "bandwidth_mbps": args.bandwidth_mbps or None,
            "iops": args.iops if args.storage == "blkio" else None,
            "cpus": os.cpu_count(), "kernel": platform.release(), "python": python,
            "pillow": datasets.HAVE_PIL, "gofetch": gofetch,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notes": {},
            # What each mode is, for `gofetch report --bench`.
            "modes": dict(MODE_TEXT), "mode_order": list(MODES),
        },
        "scenarios": {},
    }
    try:
        import hashlib

        st = os.stat(gofetch)
        with open(gofetch, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        results["meta"]["gofetch_binary"] = {
            "path": gofetch, "bytes": st.st_size, "sha256": digest,
            "modified": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(st.st_mtime))}
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", REPO_DIR, "rev-parse", "HEAD"], capture_output=True, text=True)
        results["meta"]["git_head"] = rev.stdout.strip() or None
    except OSError:
        pass
    notes = results["meta"]["notes"]

    torch_info = None
    if any(sc.data == "images" for sc in scenarios):
        workload, torch_info, why = choose_workload(args, python, log)
        results["meta"]["workload"] = {"images": workload, "torch": torch_info, "why_not_torch": why}
        for sc in scenarios:
            if sc.data != "images":
                continue
            sc.workload = workload
            if workload == "torch" and torch_info is None:
                sc.unavailable = {m: f"--torch: {why}" for m in MODES}
        if workload == "builtin":
            notes["workload"] = (f"image scenarios ran the built-in loader (harness/loader.py), not torch ({why}); "
                                 "the client gofetch injects plans torch DataLoaders only, not this loader (each "
                                 "gofetch run's 'announced' shows what it announced)")
        elif torch_info is not None:
            notes["workload"] = (f"image scenarios ran the real torch job (harness/torch_job.py): torch "
                                 f"{torch_info['torch']}, torchvision {torch_info['torchvision']}, "
                                 f"{torch_info['python']}")
    if any(sc.data == "shards" for sc in scenarios):
        notes["shards"] = ("shard scenarios always run the built-in loader (an IterableDataset-like stream): the "
                           "client gofetch injects announces torch map-style DataLoaders' orders only (each gofetch "
                           "run's 'announced' shows what it announced)")
    if "gofetch" in modes:
        for python_ in {python, (torch_info or {}).get("python") or python}:
            why = check_client(python_)
            if why:
                log(f"warning: the client gofetch run injects cannot start in {python_}: {why}")
                notes[f"client in {python_}"] = f"cannot start: {why}"
    if args.storage == "blkio":
        notes["storage"] = (f"loop-mounted ext4 image, cgroup v1 blkio read_iops_device={args.iops}"
                            + ", read_bps_device at each scenario's link cap"
                            + "; the job, its workers and gofetch share the throttle")

    interrupted = None
    failed = False
    with Cleanup(log=lambda s: print(s, file=sys.stderr, flush=True)) as cleanup:
        try:
            cgroups.remove_stale(log)
            storage_mod.remove_stale(log)
            parent = MemoryCgroup(cgroups.harness_group_name()).create()
            cleanup.push(f"remove cgroup {parent.path}", parent.remove)
            config_path = os.path.join(args.out_dir, "gofetch-bench.yaml")
            excluded = [BENCH_DIR, os.path.join(REPO_DIR, ".venv"), os.path.join(REPO_DIR, "python"),
                        sys.prefix, sys.base_prefix]
            if torch_info:  # torch's own files are not the job's data
                excluded += [torch_info["prefix"], torch_info["base_prefix"]]
            write_gofetch_config(config_path, excluded)
            # Our previous runs only (bench/out may hold other benchmarks' files).
            import shutil
            shutil.rmtree(os.path.join(args.out_dir, "runs"), ignore_errors=True)
            bench = Bench(out_dir=args.out_dir, gofetch=gofetch, python=python, cleanup=cleanup,
                          memory_parent=parent, gofetch_config=config_path, run_timeout=args.run_timeout, log=log,
                          torch_python=(torch_info or {}).get("python"))
            # A build copied elsewhere (--gofetch, to compare two builds) finds no client
            # beside it, and its `gofetch` mode would run as transparent: it gets this
            # repository's client, as the build in .build does.
            if args.gofetch and "GOFETCH_PYTHON_CLIENT" not in os.environ:
                bench.extra_env["GOFETCH_PYTHON_CLIENT"] = os.path.join(REPO_DIR, "python")
                results["meta"]["python_client"] = bench.extra_env["GOFETCH_PYTHON_CLIENT"]
            results["meta"]["gofetch_config"] = open(config_path).read()

            data = {}
            if any(s.data == "images" for s in scenarios):
                data["images"] = datasets.ensure_images(args.data_dir, image_files, classes=10 if quick else 20,
                                                        log=log)
            if any(s.data == "shards" for s in scenarios):
                data["shards"] = datasets.ensure_shards(args.data_dir, n_shards, shard_bytes=args.shard_mb * MiB,
                                                        log=log)
            calibrations: Dict[str, dict] = {}
            for (kind, bandwidth), scens in storage_groups(scenarios, args.bandwidth_mbps):
                run_group(args, bench, data[kind], bandwidth, scens, modes, results, calibrations)
        except Interrupted as e:
            interrupted = str(e)
            log(f"\nbench/run: {interrupted}; cleaning up and writing what was measured")
        except KeyboardInterrupt:
            interrupted = "interrupted by SIGINT"
            log(f"\nbench/run: {interrupted}; cleaning up and writing what was measured")
        except Exception as exc:  # noqa: BLE001 - reported, cleaned up, partial results kept
            import traceback

            interrupted = f"failed: {exc!r}"
            failed = True
            traceback.print_exc()
            log(f"\nbench/run: {interrupted}; cleaning up and writing what was measured")
        finally:
            results["meta"]["runtime_s"] = time.monotonic() - started
            if interrupted:
                results["meta"]["interrupted"] = interrupted
            if results["scenarios"]:
                table = report.write(results, args.out_dir)
                print()
                print(table)
                html = report.write_html(gofetch, args.out_dir)
                if html:
                    log(f"report: {html}")
    if cleanup.failures:
        print("clean-up problems:\n  " + "\n  ".join(cleanup.failures), file=sys.stderr)
    log(f"results: {os.path.join(args.out_dir, 'results.json')}, {os.path.join(args.out_dir, 'table.md')}; "
        f"took {time.monotonic() - started:.0f} s")
    return 1 if failed else 130 if interrupted else 0


def storage_groups(scenarios: List[Scenario], default_bandwidth: float) -> List[Tuple[Tuple[str, float], List[Scenario]]]:
    """Scenarios grouped by the storage they need: their data set and link cap (one
    mount each), in the order the first of each group comes."""
    groups: Dict[Tuple[str, float], List[Scenario]] = {}
    for sc in scenarios:
        bandwidth = sc.bandwidth_mbps if sc.bandwidth_mbps is not None else default_bandwidth
        groups.setdefault((sc.data, bandwidth or 0.0), []).append(sc)
    return list(groups.items())


def _open_storage(args, ds, bandwidth_mbps: float):
    if args.storage == "fuse":
        return storage_mod.SlowStorage(ds, args.latency_ms, bandwidth_mbps)
    return storage_mod.BlkioStorage(ds, args.iops, bandwidth_mbps, log=log)


def _progress(sid: str, mode: str, rec: dict) -> str:
    if rec.get("status") != "ok":
        return f"[{sid}] {mode}: {rec.get('status')}: {rec.get('reason') or rec.get('error')}"
    parts = [f"e{e['epoch']} stall {e['stall_s']:.2f} s / epoch {e['wall_s']:.2f} s" for e in rec["epochs"]]
    extra = ""
    g = rec.get("gofetch")
    if g and g.get("prefetch"):
        p = g["prefetch"]
        extra = (f" | gofetch warmed {p['completed']}, resident {p['skipped']}, {p['bytesLoaded'] / MiB:.0f} MiB; "
                 f"announced {p.get('announced', '?')}, tree {p.get('treeFiles', '?')} files")
    hook = rec.get("python_hook") or {}
    if mode == "gofetch" and g and not hook.get("enabled"):
        # Not the mode it names: gofetch ran as in transparent.
        extra += f" | CLIENT OFF: {hook.get('disabledBecause') or 'no client started'}"
    if (rec.get("cgroup") or {}).get("limit_bytes"):
        extra += f" | limit hit {rec['cgroup']['failcnt']}x"
    return f"[{sid}] {mode}: " + "; ".join(parts) + extra


def median_run(runs: List[dict]) -> dict:
    """With --repeat: the run whose total stall is the median, every run (in round
    order) summarised in it."""
    if len(runs) == 1:
        return runs[0]
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: sum(e["stall_s"] for e in r["epochs"]))
    rec = dict(ok[(len(ok) - 1) // 2])
    # In round order: the report pairs the n-th run of one mode with the n-th of another.
    rec["repeats"] = [{"status": r.get("status"), "round": number,
                       "stall_total_s": sum(e["stall_s"] for e in r.get("epochs", [])),
                       "epoch_total_s": sum(e["wall_s"] for e in r.get("epochs", [])),
                       "stall_by_epoch_s": [e["stall_s"] for e in r.get("epochs", [])],
                       "epoch_by_epoch_s": [e["wall_s"] for e in r.get("epochs", [])],
                       "run_dir": r.get("run_dir"),
                       "gofetch_prefetch": (r.get("gofetch") or {}).get("prefetch"),
                       "gofetch_epochs": r.get("gofetch_epochs")}
                      for number, r in enumerate(runs, start=1)]
    return rec


def _calibration(bench: Bench, sc: Scenario, st, workers: bool, client: bool, calibrations: Dict[str, dict],
                 results: dict) -> dict:
    """The job's own memory (and gofetch's), measured once per workload, per workers /
    no workers (the no-prefetch mode has none; a torch worker holds a few hundred
    MiB) and per client / none (only the `gofetch` mode's job runs the Python client,
    whose frozen garbage collector keeps forked workers smaller)."""
    key = f"{sc.workload}" + ("" if workers else "-no-workers") + ("" if client else "-no-client")
    cal = calibrations.get(key)
    if cal is not None:
        return cal
    log(f"measuring the processes' own memory ({sc.workload} job, "
        + (f"{sc.workers} workers" if workers else "no workers (as no-prefetch)")
        + (", the Python client on (as gofetch)" if client else ", no Python client")
        + "; one run under gofetch, the data pre-read outside its cgroup, the job and gofetch in child groups) ...")
    peaks = calibrate_memory(bench, sc, st, workers=workers, client=client)
    job = peaks.get("job", {}).get("max_usage_bytes", 0)
    # A fixed allowance unless the job needs more: what the job is charged varies
    # between runs by ~10 MiB (which of the interpreter's and libraries' pages the
    # harness itself touched first after the drop), and the limit should not.
    allowance = max(FIXED_ALLOWANCE, (job + 16 * MiB + MiB - 1) // MiB * MiB)
    g = peaks.get("gofetch", {})
    cal = {"peaks": peaks, "allowance_bytes": allowance, "job_peak_bytes": job, "gofetch": g}
    calibrations[key] = cal
    results.setdefault("calibration", {})[key] = cal
    log(f"  job {job / MiB:.0f} MiB; gofetch {g.get('max_usage_bytes', 0) / MiB:.0f} MiB "
        f"(anonymous {g.get('rss_bytes', 0) / MiB:.0f} MiB); allowance {allowance / MiB:.0f} MiB")
    return cal


def memory_limits(args, bench: Bench, sc: Scenario, st, ds, modes: List[str], calibrations: Dict[str, dict],
                  results: dict) -> Tuple[Dict[str, int], str]:
    """The memory limit of every mode of `sc`: the same room for the data's page cache
    in every mode — its memory fraction (--memory-fraction overrides it) x the data set
    — + an allowance for the job's own memory (its measured peak + 16 MiB, at least
    64 MiB), measured with workers for the modes that have them and without for
    no-prefetch, with the Python client for gofetch and without for the others.
    gofetch's and the warm-up's own memory is not added: it competes with
    the data for the same limit, as it would inside the job's container. Returns (limit
    per mode, the rule in words)."""
    fraction = args.memory_fraction if args.memory_fraction is not None else sc.memory_fraction
    room = int(fraction * ds.total_bytes)
    if args.allowance_mb is not None:
        allowance = int(args.allowance_mb * MiB)
        results.setdefault("calibration", {})[sc.workload] = {"source": "--allowance-mb", "allowance_bytes": allowance}
        limits = {m: room + allowance for m in MODES}
        basis = f"{args.allowance_mb:.0f} MiB (--allowance-mb) in every mode"
    else:
        # (workers, Python client) of each mode's job: no-prefetch has no workers, only
        # gofetch runs the client.
        def kind(mode: str) -> Tuple[bool, bool]:
            return (mode != "no-prefetch", mode == "gofetch")
        allowances = {}
        for workers, client in sorted({kind(m) for m in modes}, reverse=True):
            allowances[(workers, client)] = _calibration(bench, sc, st, workers, client, calibrations, results)
        limits = {m: room + allowances[kind(m)]["allowance_bytes"] for m in MODES if kind(m) in allowances}
        parts = []
        for (workers, client), cal in allowances.items():
            parts.append(f"{cal['allowance_bytes'] / MiB:.0f} MiB for the job "
                         + (f"with its {sc.workers} workers" if workers else "without workers (no-prefetch)")
                         + (" and the Python client (gofetch)" if client else "")
                         + f" (measured peak {cal['job_peak_bytes'] / MiB:.0f} MiB)")
        g = next(iter(allowances.values()))["gofetch"]
        basis = (" and ".join(parts) + f"; allowance = max({FIXED_ALLOWANCE // MiB} MiB, peak + 16 MiB), the "
                 f"interpreter's imports pre-loaded outside the group; gofetch's own memory (measured: "
                 f"{g.get('max_usage_bytes', 0) / MiB:.0f} MiB peak, of which anonymous "
                 f"{g.get('rss_bytes', 0) / MiB:.0f} MiB, the rest page cache of its executable, libraries and "
                 f"store) is not added: it competes with the data, as in the job's container")
    limit = max(limits.values())
    rule = (f"{fraction:.0%} of the data set ({room / MiB:.0f} MiB of room for its page cache in every mode: the "
            f"data set is {ds.total_bytes / max(room, 1):.1f} x that room, {ds.total_bytes / limit:.2f} x the "
            f"largest limit) + {basis}")
    return limits, rule


def run_group(args, bench: Bench, ds, bandwidth_mbps: float, scens: List[Scenario], modes: List[str],
              results: dict, calibrations: Dict[str, dict]) -> None:
    """Every mode of every scenario in `scens` on one mount of `ds` at `bandwidth_mbps`."""
    with _open_storage(args, ds, bandwidth_mbps) as st:
        token = bench.cleanup.push(f"unmount {st.path}", st.close)
        try:
            desc = st.describe()
            results["meta"].setdefault("storage", {}).update(
                {k: v for k, v in desc.items() if k not in ("mount", "image", "loop", "device", "bandwidth_mbps")})
            log(f"{ds.name}: {len(ds.files)} files, {ds.total_bytes / 1e6:.0f} MB, mounted at {st.path} "
                f"({args.storage}" + (f", {bandwidth_mbps:g} MiB/s link" if bandwidth_mbps else "") + ")")
            for sc in scens:
                entry = results["scenarios"].setdefault(sc.id, {
                    "title": sc.title, "goal": sc.goal, "params": scenario_params(sc),
                    "dataset": ds.describe(), "storage": desc, "modes": {}})
                runnable = [m for m in modes if m not in sc.unavailable]
                limits: Optional[Dict[str, int]] = None
                if sc.memory_limited and runnable:
                    limits, rule = memory_limits(args, bench, sc, st, ds, runnable, calibrations, results)
                    entry["memory_limit_bytes"] = limits
                    entry["memory_limit_note"] = rule
                    # The room the limit leaves for the data set's page cache, as a share of it.
                    entry["memory_room_share"] = (args.memory_fraction if args.memory_fraction is not None
                                                  else sc.memory_fraction)
                for mode in modes:
                    if mode in sc.unavailable:
                        entry["modes"][mode] = {"mode": mode, "status": "n/a", "reason": sc.unavailable[mode]}
                        if mode == modes[0]:
                            log(f"[{sc.id}] not run: {sc.unavailable[mode]}")
                # With --repeat, the modes take turns (round 1: every mode, round 2: every
                # mode, ...): a machine that drifts over the rounds then drifts under every
                # mode alike, and the report pairs each mode's run with the others' of its round.
                # Each run is kept as it ends: an interrupted bench writes what it measured.
                rounds = max(1, args.repeat)
                runs: Dict[str, List[dict]] = {mode: [] for mode in runnable}
                for number in range(1, rounds + 1):
                    for mode in runnable:
                        rec = run_mode(bench, sc, st, mode, limits[mode] if limits else None, round_number=number)
                        runs[mode].append(rec)
                        entry["modes"][mode] = median_run(runs[mode])
                        log((f"round {number} of {rounds}: " if rounds > 1 else "") + _progress(sc.id, mode, rec))
                if rounds > 1:
                    for mode in runnable:
                        log("median: " + _progress(sc.id, mode, entry["modes"][mode]))
        finally:
            bench.cleanup.discard(token)
