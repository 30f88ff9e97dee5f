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
from typing import Dict, List, Optional

from . import BENCH_DIR, REPO_DIR
from . import cgroups, datasets, pagecache, report, storage as storage_mod
from .cgroups import MemoryCgroup
from .cleanup import Cleanup, Interrupted
from .modes import Bench, calibrate_memory, run_mode, write_gofetch_config
from .scenarios import MODES, Scenario, build

MiB = 1 << 20
FIXED_ALLOWANCE = 64 * MiB


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


def check_hook(python: str, python_dir: str = os.path.join(REPO_DIR, "python")) -> Optional[str]:
    """None when `import gofetch; gofetch.lookahead` works (with `python_dir` on the
    path), else why not."""
    code = ("import sys, gofetch\n"
            "f = getattr(gofetch, 'lookahead', None)\n"
            "if f is None: sys.exit('gofetch (python/gofetch, ' + gofetch.__file__ + ') has no lookahead yet')\n"
            "if not callable(f): sys.exit('gofetch.lookahead is not callable')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = python_dir
    try:
        r = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"checking the hook failed: {e}"
    if r.returncode == 0:
        return None
    text = (r.stderr or r.stdout).strip().splitlines()
    return text[-1] if text else f"import gofetch failed (exit {r.returncode})"


def check_torch(python: str) -> Optional[str]:
    r = subprocess.run([python, "-c", "import torch, torchvision"], capture_output=True, text=True)
    if r.returncode == 0:
        return None
    text = r.stderr.strip().splitlines()
    return text[-1] if text else "import torch failed"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Measures what gofetch saves a data-loading training job on slow storage: "
                    "every scenario (S1-S4) in every mode, caches dropped before each run. "
                    "Results in bench/out/ (results.json, table.md, gofetch summaries). See bench/README.md.")
    p.add_argument("--quick", action="store_true", help="small data sets, 2 epochs (under 5 minutes)")
    p.add_argument("--latency-ms", type=float, default=4.0, help="slowfs latency per read request (default 4)")
    p.add_argument("--bandwidth-mbps", type=float, default=0.0, help="slowfs (or blkio) bandwidth cap in MiB/s, 0 = none")
    p.add_argument("--storage", choices=["fuse", "blkio"], default="fuse",
                   help="fuse: slowfs latency emulation (default); blkio: loop-mounted ext4 image with a "
                        "cgroup v1 blkio IOPS throttle shared by the job and gofetch")
    p.add_argument("--iops", type=int, default=250, help="--storage blkio: read IOPS limit (default 250)")
    p.add_argument("--scenarios", default="S1,S2,S3,S4,S4-fit",
                   help="comma-separated subset of S1,S2,S3,S4,S4-fit (default all)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--epochs", type=int, help="epochs per run (quick 2, full 3)")
    p.add_argument("--image-files", type=int, help="files in the image folder (quick 1500, full 6000)")
    p.add_argument("--shards", type=int, help="tar shards of 64 MiB (quick 3, full 8)")
    p.add_argument("--shard-mb", type=int, default=64, help="size of a shard in MiB (default 64)")
    p.add_argument("--workers", type=int, default=2, help="loader workers (default 2, the number of cores here)")
    p.add_argument("--memory-fraction", type=float, default=0.6,
                   help="S2/S4 memory limit: this fraction of the data set plus the measured allowance (default 0.6)")
    p.add_argument("--allowance-mb", type=float, help="skip the memory calibration and use this allowance")
    p.add_argument("--torch", action="store_true",
                   help="also run S4-fit with a real torch DataLoader over torchvision ImageFolder (skipped with "
                        "the reason when torch is not importable)")
    p.add_argument("--gofetch", help="the gofetch executable (default: the release build under .build)")
    p.add_argument("--data-dir", default=os.path.join(BENCH_DIR, "data"))
    p.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "out"))
    p.add_argument("--repeat", type=int, default=1,
                   help="run every mode this many times and report the run with the median total stall "
                        "(all of them in results.json); default 1")
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
    return {k: getattr(sc, k) for k in ("order", "hook", "memory_limited", "workers", "batch_size",
                                        "prefetch_factor", "step_ms", "epochs", "read_size", "workload")}


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    quick = args.quick
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
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
    known = {s.id for s in all_scenarios}
    for s in wanted:
        if s not in known and s != "S4-fit-torch":
            print(f"unknown scenario {s!r}; scenarios: {', '.join(sorted(known))}", file=sys.stderr)
            return 2
    scenarios = [s for s in all_scenarios if s.id in wanted]
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

    hook_problem = check_hook(python) if any(s.hook for s in scenarios) else None
    results["meta"]["hook"] = "available" if hook_problem is None else f"not available: {hook_problem}"
    torch_problem = None
    if args.torch or "S4-fit-torch" in wanted:
        torch_problem = check_torch(python)
        if torch_problem:
            msg = f"--torch: skipped: torch/torchvision not importable ({torch_problem})"
            log(msg)
            notes["torch"] = msg
        else:
            base = next((s for s in all_scenarios if s.id == "S4-fit"), None)
            if base is not None:
                t = Scenario(**{**base.__dict__, "id": "S4-fit-torch", "workload": "torch",
                                "title": base.title + " - real torch DataLoader + tiny model",
                                "modes": list(base.modes), "notes": {}, "unavailable": {}})
                scenarios.append(t)
    if args.storage == "blkio":
        notes["storage"] = (f"loop-mounted ext4 image, cgroup v1 blkio read_iops_device={args.iops}"
                            + (f", read_bps {args.bandwidth_mbps} MiB/s" if args.bandwidth_mbps else "")
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
            write_gofetch_config(config_path, [BENCH_DIR, os.path.join(REPO_DIR, ".venv"),
                                               os.path.join(REPO_DIR, "python"), sys.prefix, sys.base_prefix])
            # Our previous runs only (bench/out may hold other benchmarks' files).
            import shutil
            shutil.rmtree(os.path.join(args.out_dir, "runs"), ignore_errors=True)
            bench = Bench(out_dir=args.out_dir, gofetch=gofetch, python=python, cleanup=cleanup,
                          memory_parent=parent, gofetch_config=config_path, run_timeout=args.run_timeout, log=log)
            results["meta"]["gofetch_config"] = open(config_path).read()

            image_scen = [s for s in scenarios if s.data == "images"]
            shard_scen = [s for s in scenarios if s.data == "shards"]
            groups = []
            if image_scen:
                groups.append((datasets.ensure_images(args.data_dir, image_files, classes=10 if quick else 20,
                                                      log=log), image_scen))
            if shard_scen:
                groups.append((datasets.ensure_shards(args.data_dir, n_shards, shard_bytes=args.shard_mb * MiB,
                                                      log=log), shard_scen))
            for ds, scens in groups:
                run_dataset(args, bench, ds, scens, modes, results, hook_problem)
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
    if cleanup.failures:
        print("clean-up problems:\n  " + "\n  ".join(cleanup.failures), file=sys.stderr)
    log(f"results: {os.path.join(args.out_dir, 'results.json')}, {os.path.join(args.out_dir, 'table.md')}; "
        f"took {time.monotonic() - started:.0f} s")
    return 1 if failed else 130 if interrupted else 0


def _open_storage(args, ds):
    if args.storage == "fuse":
        return storage_mod.SlowStorage(ds, args.latency_ms, args.bandwidth_mbps)
    return storage_mod.BlkioStorage(ds, args.iops, args.bandwidth_mbps, log=log)


def _progress(sid: str, mode: str, rec: dict) -> str:
    if rec.get("status") != "ok":
        return f"[{sid}] {mode}: {rec.get('status')}: {rec.get('reason') or rec.get('error')}"
    parts = [f"e{e['epoch']} stall {e['stall_s']:.2f} s / epoch {e['wall_s']:.2f} s" for e in rec["epochs"]]
    extra = ""
    g = rec.get("gofetch")
    if g and g.get("prefetch"):
        p = g["prefetch"]
        extra = f" | gofetch warmed {p['completed']}, resident {p['skipped']}, {p['bytesLoaded'] / MiB:.0f} MiB"
    if (rec.get("cgroup") or {}).get("limit_bytes"):
        extra += f" | limit hit {rec['cgroup']['failcnt']}x"
    return f"[{sid}] {mode}: " + "; ".join(parts) + extra


def median_run(runs: List[dict]) -> dict:
    """With --repeat: the run whose total stall is the median, the others summarised in it."""
    if len(runs) == 1:
        return runs[0]
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: sum(e["stall_s"] for e in r["epochs"]))
    rec = dict(ok[(len(ok) - 1) // 2])
    rec["repeats"] = [{"status": r.get("status"),
                       "stall_total_s": sum(e["stall_s"] for e in r.get("epochs", [])),
                       "epoch_total_s": sum(e["wall_s"] for e in r.get("epochs", [])),
                       "stall_by_epoch_s": [e["stall_s"] for e in r.get("epochs", [])],
                       "gofetch_prefetch": (r.get("gofetch") or {}).get("prefetch")} for r in runs]
    return rec


def memory_limits(args, bench: Bench, sc: Scenario, st, ds, results: dict) -> Dict[str, int]:
    """One memory limit for every mode: --memory-fraction x the data set + a fixed
    allowance for the job's own memory (its measured peak + 16 MiB). gofetch's and
    the warm-up's own memory is not added: it competes with the data for the
    same limit, as it would inside the job's container."""
    room = int(args.memory_fraction * ds.total_bytes)
    if args.allowance_mb is not None:
        allowance = int(args.allowance_mb * MiB)
        results["calibration"] = {"source": "--allowance-mb"}
        rule = f"{args.memory_fraction:.0%} of the data set + {args.allowance_mb:.0f} MiB (--allowance-mb)"
    else:
        log("measuring the processes' own memory (one run under gofetch, the data pre-read outside its "
            "cgroup, the job and gofetch in child groups) ...")
        peaks = calibrate_memory(bench, sc, st)
        job = peaks.get("job", {}).get("max_usage_bytes", 0)
        # A fixed allowance unless the job needs more: what the job is charged varies
        # between runs by ~10 MiB (which of the interpreter's and libraries' pages the
        # harness itself touched first after the drop), and the limit should not.
        allowance = max(FIXED_ALLOWANCE, (job + 16 * MiB + MiB - 1) // MiB * MiB)
        g = peaks.get("gofetch", {})
        results["calibration"] = {"peaks": peaks}
        rule = (f"{args.memory_fraction:.0%} of the data set + {allowance / MiB:.0f} MiB allowance for the job's "
                f"own memory (measured peak {job / MiB:.0f} MiB; allowance = max({FIXED_ALLOWANCE // MiB} MiB, "
                f"peak + 16 MiB)), the same in every mode; gofetch's own memory "
                f"(measured: {g.get('max_usage_bytes', 0) / MiB:.0f} MiB peak, of which anonymous "
                f"{g.get('rss_bytes', 0) / MiB:.0f} MiB, the rest page cache of its executable, libraries "
                f"and store) is not added: it competes with the data, as in the job's container")
        log(f"  job {job / MiB:.0f} MiB; gofetch {g.get('max_usage_bytes', 0) / MiB:.0f} MiB "
            f"(anonymous {g.get('rss_bytes', 0) / MiB:.0f} MiB); allowance {allowance / MiB:.0f} MiB")
    limits = {m: room + allowance for m in MODES}
    results["calibration"].update({"allowance_bytes": allowance, "data_room_bytes": room,
                                   "limits_bytes": limits, "rule": rule})
    return limits


def run_dataset(args, bench: Bench, ds, scens: List[Scenario], modes: List[str], results: dict,
                hook_problem: Optional[str]) -> None:
    with _open_storage(args, ds) as st:
        token = bench.cleanup.push(f"unmount {st.path}", st.close)
        try:
            desc = st.describe()
            results["meta"].setdefault("storage", {}).update(
                {k: v for k, v in desc.items() if k not in ("mount", "image", "loop", "device")})
            log(f"{ds.name}: {len(ds.files)} files, {ds.total_bytes / 1e6:.0f} MB, mounted at {st.path} "
                f"({args.storage})")
            limits: Optional[Dict[str, int]] = None
            done: Dict[str, Scenario] = {}
            for sc in scens:
                entry = results["scenarios"].setdefault(sc.id, {
                    "title": sc.title, "goal": sc.goal, "params": scenario_params(sc),
                    "dataset": ds.describe(), "storage": desc, "modes": {}})
                if sc.memory_limited and limits is None:
                    limits = memory_limits(args, bench, sc, st, ds, results)
                if sc.memory_limited:
                    entry["memory_limit_bytes"] = limits
                    entry["memory_limit_note"] = results["calibration"]["rule"]
                source = done.get(sc.baseline_from) if sc.baseline_from else None
                if source is not None and not source.same_job(sc):
                    source = None
                for mode in modes:
                    if sc.hook and hook_problem:
                        entry["modes"][mode] = {"mode": mode, "status": "n/a",
                                                "reason": f"hook not available yet: {hook_problem}"}
                        if mode == modes[0]:
                            log(f"[{sc.id}] not available: {hook_problem}")
                        continue
                    if mode in sc.unavailable:
                        entry["modes"][mode] = {"mode": mode, "status": "n/a", "reason": sc.unavailable[mode]}
                        continue
                    if source is not None and mode != "gofetch" and mode in results["scenarios"][source.id]["modes"]:
                        rec = dict(results["scenarios"][source.id]["modes"][mode])
                        rec["shared_from"] = source.id
                        entry["modes"][mode] = rec
                        continue
                    runs = [run_mode(bench, sc, st, mode, limits[mode] if sc.memory_limited else None)
                            for _ in range(max(1, args.repeat))]
                    rec = median_run(runs)
                    entry["modes"][mode] = rec
                    log(_progress(sc.id, mode, rec))
                done[sc.id] = sc
        finally:
            bench.cleanup.discard(token)
