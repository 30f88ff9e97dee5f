"""Figures derived from the runs, the goals, results.json and table.md.

Definitions (bench/README.md has them too):

- stall: seconds the training loop waited in `next()` for a batch, summed over
  the epoch's batches (per epoch, and the total over all epochs);
- epoch: wall seconds of an epoch in the job (per epoch, and the total);
- stall ratio: a mode's stall / the no-prefetch mode's stall in the same
  scenario (total, and per epoch);
- epoch vs warm: a mode's total epoch time / the warm mode's;
- for the gofetch modes (gofetch, transparent, unnamed, again), their stall / the
  naive warm-up's, / no prefetch's, / warm's, per epoch and in total; transparent's
  (and unnamed's) / gofetch's; in a scenario with a link cap, epoch 1's stall / the
  link bound;
- link bound (scenarios with a link cap): the least epoch-1 stall the link
  allows: max(warm's epoch-1 stall, data set bytes / link rate - warm's epoch-1
  busy time), where busy time = warm's epoch-1 wall time - its stall (the job's
  own work, which prefetching can overlap with the transfer, but not shorten);
- reads warm: per epoch, the share of the job's reads of traced files that were
  not cold (gofetch's trace store: a read is cold when slower than a page-cache
  copy, docs/metrics.md); files warm: the share of the files the job read with no
  read cold. Epochs are those the events are tagged with (the Python client's
  announcements), or else the job's own epochs on the wall clock (`gofetch stats
  --since --until` over each epoch's span);
- S4's room share: the room the memory limit leaves for the data set's page cache
  ÷ the data set (`--memory-fraction`); the files-warm goal of the modes without
  announcements asks for 0.8 x that from epoch 2 (LRU at the same room keeps less,
  as the shuffled epoch reads last epoch's evicted half as often as its kept one).

With --repeat the modes ran in rounds, in turns; a goal's ratio is then taken in
every round (the link bound from that round's warm run) and judged on the median.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Callable, Dict, List, Optional

from .scenarios import GOFETCH_MODES, MODES, MODE_TEXT, REPORT_ORDER

MiB = 1 << 20


def _ok(rec: Optional[dict]) -> bool:
    return bool(rec) and rec.get("status") == "ok" and bool(rec.get("epochs"))


def _versus(rec: dict, other: Optional[dict], name: str, measure: str) -> None:
    """rec[name] (totals) and rec[name + "_by_epoch"]: rec's `measure` ("stall" or
    "epoch") over other's, when other ran."""
    if not _ok(other):
        return
    rec[name] = _ratio(rec[f"{measure}_total_s"], other[f"{measure}_total_s"])
    rec[name + "_by_epoch"] = _by_epoch(rec[f"{measure}_by_epoch_s"], other[f"{measure}_by_epoch_s"])


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None:
        return None
    if b <= 0:
        return None if a > 0 else 0.0
    return a / b


def _by_epoch(a: List[float], b: List[float]) -> List[Optional[float]]:
    return [_ratio(x, y) for x, y in zip(a, b)]


def link_bound(scenario: dict) -> Optional[dict]:
    """The least epoch-1 stall the scenario's link cap allows (see the module docstring),
    or None without a cap or without a warm run."""
    bandwidth = (scenario.get("params") or {}).get("bandwidth_mbps") or (scenario.get("storage") or {}).get(
        "bandwidth_mbps")
    nbytes = (scenario.get("dataset") or {}).get("bytes")
    warm = scenario["modes"].get("warm")
    if not bandwidth or not nbytes or not _ok(warm):
        return None
    link_s = nbytes / (bandwidth * MiB)
    warm_stall = warm["epochs"][0]["stall_s"]
    busy_s = warm["epochs"][0]["wall_s"] - warm_stall
    return {"epoch1_s": max(warm_stall, link_s - busy_s), "link_s": link_s, "warm_busy_s": busy_s,
            "warm_stall_s": warm_stall, "bandwidth_mbps": bandwidth, "bytes": nbytes}


def reads_warm(rec: dict) -> Optional[List[float]]:
    """Per epoch, the share of the job's reads that were warm, from gofetch's store."""
    epochs = rec.get("gofetch_epochs")
    if not epochs:
        return None
    return [1.0 - e["coldReads"] / e["reads"] if e.get("reads") else None for e in epochs]


def files_warm(rec: dict) -> Optional[List[float]]:
    """Per epoch, the share of the files the job read with no read cold, from gofetch's
    store: a file whose first read misses the cache stalls its reader, and its later
    reads, riding the kernel's readahead, are warm however it was prefetched, so this
    is the share that counts (a file read in four reads, one cold, is 75 % of reads warm)."""
    epochs = rec.get("gofetch_epochs")
    if not epochs or any(e.get("coldFiles") is None for e in epochs):
        return None
    return [1.0 - e["coldFiles"] / e["files"] if e.get("files") else None for e in epochs]


def derive(scenario: dict) -> None:
    """Adds totals and ratios to every mode record of a scenario (in place)."""
    modes: Dict[str, dict] = scenario["modes"]
    for rec in modes.values():
        if _ok(rec):
            rec["stall_by_epoch_s"] = [e["stall_s"] for e in rec["epochs"]]
            rec["epoch_by_epoch_s"] = [e["wall_s"] for e in rec["epochs"]]
            rec["stall_total_s"] = sum(rec["stall_by_epoch_s"])
            rec["epoch_total_s"] = sum(rec["epoch_by_epoch_s"])
    base, warm, warmup = modes.get("no-prefetch"), modes.get("warm"), modes.get("warmup")
    for name, rec in modes.items():
        if not _ok(rec):
            continue
        _versus(rec, base, "stall_ratio", "stall")
        _versus(rec, warm, "epoch_vs_warm", "epoch")
        if name not in GOFETCH_MODES:
            continue
        _versus(rec, warmup, "vs_warmup", "stall")
        _versus(rec, warm, "vs_warm_stall", "stall")
        share = reads_warm(rec)
        if share is not None:
            rec["reads_warm_by_epoch"] = share
        share = files_warm(rec)
        if share is not None:
            rec["files_warm_by_epoch"] = share
    g = modes.get("gofetch")
    for t in (modes.get("transparent"), modes.get("unnamed")):
        if _ok(g) and _ok(t):
            t["vs_gofetch"] = _ratio(t["stall_total_s"], g["stall_total_s"])
            t["vs_gofetch_by_epoch"] = _by_epoch(t["stall_by_epoch_s"], g["stall_by_epoch_s"])
    bound = link_bound(scenario)
    if bound is not None:
        scenario["link_bound"] = bound
        for name in GOFETCH_MODES:
            if _ok(modes.get(name)):
                modes[name]["epoch1_vs_link_bound"] = _ratio(modes[name]["stall_by_epoch_s"][0], bound["epoch1_s"])


def _goal(text: str, value: Optional[float], limit: float, fmt: str = "{:.3f}", strict_less: bool = False,
          paired: Optional[dict] = None, at_least: bool = False, floor: Optional[float] = None) -> dict:
    """A goal judged on `value`, or, with `paired` (the ratio in every --repeat round,
    ``_paired``), on the median of the rounds' ratios. `floor`: the same ratio for a
    warm cache, when the goal asks for a stall below it; the verdict stands, and says
    that no prefetcher could have met it in this run."""
    rounds = ""
    if paired is not None:
        value = paired["median"]
        rounds = (f" (median of {len(paired['rounds'])} rounds, the modes side by side in each: "
                  + " / ".join(fmt.format(v) for v in paired["rounds"]) + ")")
    if value is None:
        return {"goal": text, "value": None, "limit": limit, "met": None, "text": f"{text}: cannot tell (missing figures)"}
    met = value >= limit if at_least else value < limit if strict_less else value <= limit
    beyond = ""
    if floor is not None and not met and not at_least and floor > limit:
        beyond = f" (out of reach in this run: a warm cache's own stall is {fmt.format(floor)} x the same)"
    goal = {"goal": text, "value": value, "limit": limit, "met": met,
            "text": f"{text}: {fmt.format(value)}{rounds} -> {'met' if met else 'NOT met'}{beyond}"}
    if floor is not None:
        goal["warm_floor"] = floor
    if paired is not None:
        goal["rounds"] = paired["rounds"]
    return goal


def _paired(a: Optional[dict], b: Optional[dict], measure: Callable[[dict, dict], Optional[float]]) -> Optional[dict]:
    """With --repeat (the modes take turns, round by round): `measure` of mode a's run
    against mode b's of the same round, for every round both ran, and the median of
    those; None without two such rounds. Pairs by round, so a machine that drifts over
    the rounds moves both sides of each ratio."""
    if not (_ok(a) and _ok(b)):
        return None
    ra = {r.get("round"): r for r in a.get("repeats") or [] if r.get("round") is not None}
    rb = {r.get("round"): r for r in b.get("repeats") or [] if r.get("round") is not None}
    values = []
    for number in sorted(set(ra) & set(rb)):  # an interrupted bench may stop between two modes of a round
        x, y = ra[number], rb[number]
        if x.get("status") == "ok" and y.get("status") == "ok" and x.get("stall_by_epoch_s") and y.get("stall_by_epoch_s"):
            value = measure(x, y)
            if value is not None:
                values.append(value)
    if len(values) < 2:
        return None
    return {"median": statistics.median(values), "rounds": values}


def _e1_ratio(x: dict, y: dict) -> Optional[float]:
    return _ratio(x["stall_by_epoch_s"][0], y["stall_by_epoch_s"][0])


def _total_ratio(x: dict, y: dict) -> Optional[float]:
    return _ratio(x["stall_total_s"], y["stall_total_s"])


def _e1_over_bound(bound: Optional[dict]) -> Callable[[dict, dict], Optional[float]]:
    """A run's epoch-1 stall over the link bound that the warm run of its round gives."""
    def measure(x: dict, warm: dict) -> Optional[float]:
        if bound is None or not warm.get("epoch_by_epoch_s"):
            return None
        stall = warm["stall_by_epoch_s"][0]
        return _ratio(x["stall_by_epoch_s"][0], max(stall, bound["link_s"] - (warm["epoch_by_epoch_s"][0] - stall)))
    return measure


def _fewest_warm_from_2(rec: dict) -> Optional[float]:
    """The smallest share of files warm in a run's epochs from the second on."""
    shares = files_warm(rec)
    if not shares or len(shares) < 2 or any(v is None for v in shares[1:]):
        return None
    return min(shares[1:])


def _rounds(rec: Optional[dict], measure: Callable[[dict], Optional[float]]) -> Optional[dict]:
    """With --repeat: `measure` of each round's run of one mode and their median (as
    ``_paired``, for a figure of one mode alone); None without two such rounds."""
    if not _ok(rec):
        return None
    values = [v for v in (measure(r) for r in rec.get("repeats") or [] if r.get("status") == "ok") if v is not None]
    if len(values) < 2:
        return None
    return {"median": statistics.median(values), "rounds": values}


def _cpu(cpu: Optional[dict]) -> str:
    """gofetch's own CPU time over its run (its summary's `cpu`), and the share of a core."""
    if not cpu or not cpu.get("wallNanoseconds"):
        return "–"
    used = cpu["userNanoseconds"] + cpu["systemNanoseconds"]
    return f"{used / 1e9:.2f} s ({100 * used / cpu['wallNanoseconds']:.1f} % of a core)"


def _e1(rec: Optional[dict]) -> Optional[float]:
    return rec["stall_by_epoch_s"][0] if _ok(rec) else None


def _worst(values: Optional[List[Optional[float]]], total: Optional[float] = None) -> Optional[float]:
    """The largest of per-epoch ratios (and the total's); None when any is missing."""
    if not values:
        return None
    candidates = list(values) + ([total] if total is not None else [])
    if any(v is None for v in candidates):
        return None
    return max(candidates)


def evaluate(sid: str, scenario: dict) -> List[dict]:
    """The scenario's goals. The transparent goals (no order announced) are asked of
    `transparent` (the job's configuration file names its folder) and of `unnamed`
    (nothing names it) where each ran."""
    modes = scenario["modes"]
    g = modes.get("gofetch")
    blind = [(name, modes[name]) for name in ("transparent", "unnamed") if _ok(modes.get(name))]
    lo, np_, warm, warmup = modes.get("loader"), modes.get("no-prefetch"), modes.get("warm"), modes.get("warmup")
    if not _ok(g) and not blind:
        rec = g or modes.get("transparent") or {}
        reason = rec.get("reason") or rec.get("error") or "the gofetch modes did not run"
        return [{"goal": scenario.get("goal", ""), "met": None, "text": f"not evaluated: {reason}"}]
    out = []
    g = g if _ok(g) else None
    bound = scenario.get("link_bound")

    def never_worse(name: str, t: dict) -> dict:
        return _goal(f"{name} never above 1.02 x no prefetch (largest per-epoch or total stall ratio)",
                     _worst(t.get("stall_ratio_by_epoch"), t.get("stall_ratio")), 1.02, paired=_paired(
                         t, np_, lambda x, y: _worst(_by_epoch(x["stall_by_epoch_s"], y["stall_by_epoch_s"]),
                                                     _total_ratio(x, y))))

    if sid == "S1":
        out.append(_goal("gofetch epoch-1 stall <= 1.15 x warm's", _ratio(_e1(g), _e1(warm)), 1.15,
                         paired=_paired(g, warm, _e1_ratio)))
    elif sid == "S1-cap":
        paired = _paired(g, warm, _e1_over_bound(bound))
        # With rounds, each round has its own bound (its warm run's).
        out.append(_goal("gofetch epoch-1 stall <= 1.1 x the link bound"
                         + (f" ({bound['epoch1_s']:.2f} s)" if bound and not paired else ""),
                         _ratio(_e1(g), bound["epoch1_s"]) if bound else None, 1.1, paired=paired))
    elif sid == "S2":
        later = None
        if g and _ok(np_) and len(g["stall_by_epoch_s"]) > 1:
            later = _ratio(sum(g["stall_by_epoch_s"][1:]), sum(np_["stall_by_epoch_s"][1:]))
        out.append(_goal("gofetch stall ratio from epoch 2 <= 0.10", later, 0.10, paired=_paired(
            g, np_, lambda x, y: _ratio(sum(x["stall_by_epoch_s"][1:]), sum(y["stall_by_epoch_s"][1:]))
            if len(x["stall_by_epoch_s"]) > 1 else None)))
        out.append(_goal("gofetch stall below the loader's own prefetching (gofetch/loader < 1)",
                         _ratio(g["stall_total_s"], lo["stall_total_s"]) if g and _ok(lo) else None, 1.0,
                         strict_less=True, paired=_paired(g, lo, _total_ratio)))
    elif sid == "S3":
        out.append(_goal("gofetch stall <= 0.5 x loader alone (kernel readahead alone)",
                         _ratio(g["stall_total_s"], lo["stall_total_s"]) if g and _ok(lo) else None, 0.5,
                         paired=_paired(g, lo, _total_ratio)))
    elif sid in ("S3-cap", "S5"):
        out.append(_goal("gofetch epoch-1 stall <= the naive warm-up's", _ratio(_e1(g), _e1(warmup)), 1.0,
                         paired=_paired(g, warmup, _e1_ratio)))
    elif sid == "S4":
        out.append(_goal("gofetch every epoch's stall <= 0.10 x no prefetch's (largest per-epoch ratio)",
                         _worst(g.get("stall_ratio_by_epoch")) if g else None, 0.10, paired=_paired(
                             g, np_, lambda x, y: _worst(_by_epoch(x["stall_by_epoch_s"], y["stall_by_epoch_s"])))))
    for name, t in blind:
        if sid == "S1":
            # The job is near worker-bound on 2 cores: warm's own stall can be above half the warm-up's.
            warm_rounds = _paired(warm, warmup, _e1_ratio)
            out.append(_goal(f"{name} epoch-1 stall <= 0.5 x the naive warm-up's", _ratio(_e1(t), _e1(warmup)), 0.5,
                             paired=_paired(t, warmup, _e1_ratio),
                             floor=warm_rounds["median"] if warm_rounds else _ratio(_e1(warm), _e1(warmup))))
        elif sid == "S1-cap":
            out.append(_goal(f"{name} epoch-1 stall <= 1.1 x the link bound",
                             _ratio(_e1(t), bound["epoch1_s"]) if bound else None, 1.1,
                             paired=_paired(t, warm, _e1_over_bound(bound))))
        elif sid in ("S3-cap", "S5"):
            out.append(_goal(f"{name} epoch-1 stall <= the naive warm-up's", _ratio(_e1(t), _e1(warmup)), 1.0,
                             paired=_paired(t, warmup, _e1_ratio)))
        elif sid == "S4" and scenario.get("memory_room_share"):
            share = scenario["memory_room_share"]
            out.append(_goal(f"{name} files warm from epoch 2 >= 0.8 x room / data set ({0.8 * share:.2f}; the "
                             "fewest of its epochs from 2, by the job's epoch times)",
                             _fewest_warm_from_2(t), 0.8 * share, at_least=True, paired=_rounds(t, _fewest_warm_from_2)))
        out.append(never_worse(name, t))
    return out


# ---------------------------------------------------------------------------
# table

def _f(x: Optional[float], digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _per_epoch(values: List[Optional[float]], digits: int = 2) -> str:
    return " / ".join(_f(v, digits) for v in values)


def _ratios(rec: dict, key: str) -> str:
    """`e1 / e2 / ... (total t)` of a ratio and its per-epoch values, or –."""
    by_epoch = rec.get(key + "_by_epoch")
    if not by_epoch:
        return "–"
    return f"{_per_epoch(by_epoch)} (total {_f(rec.get(key))})"


def _bytes(n: Optional[int]) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _client_note(rec: dict) -> str:
    """What the injected client did in a gofetch-mode run, from gofetch's summary."""
    hook = rec.get("python_hook")
    if not hook:
        return ""
    if not hook.get("enabled"):
        return f"client off ({hook.get('disabledBecause') or 'turned off'})"
    parts = [f"client on in {hook.get('started', 0)} interpreter(s)"]
    for reason, count in sorted((hook.get("notStarted") or {}).items()):
        parts.append(f"not on in {count}: {reason}")
    return ", ".join(parts)


def _gofetch_note(rec: dict, mode: str, params: dict) -> List[str]:
    notes = []
    p = (rec.get("gofetch") or {}).get("prefetch") or {}
    if p:
        tree = (f"tree {p.get('treeFiles', 0)} files, {_bytes(p.get('treeBytes'))}, {p.get('treeRequests', 0)} requests"
                if p.get("treeRoot") else "no data-set tree")
        if p.get("treeHints"):
            tree += "; from the start: " + ", ".join(p["treeHints"]) + " (named by the command line)"
        if p.get("treeHintsDropped"):
            tree += "; dropped: " + ", ".join(p["treeHintsDropped"])
        if p.get("treeFromLastRun"):
            tree += "; from the start, as the last run read it"
            if p.get("treeOrderFromLastRun"):
                tree += f", {p['treeOrderFromLastRun']} files in the order it first opened them"
            if p.get("treeEpochsInLastRunsOrder"):
                tree += f", {p['treeEpochsInLastRunsOrder']} later epoch(s) each in its order of that epoch"
        notes.append(f"announced {p.get('announced', 0)}; {tree}")
    client = _client_note(rec)
    if client:
        notes.append(client)
    hook = rec.get("python_hook") or {}
    if mode == "gofetch" and hook.get("enabled") and p and not p.get("announced"):
        if params.get("data") == "shards":
            why = "a shard stream has no sampler to announce"
        elif params.get("workload") != "torch":
            why = "the injected client plans torch DataLoaders only; harness/loader.py is not one"
        else:
            why = "see the job's log"
        notes.append(f"nothing announced ({why}): gofetch sees what transparent sees")
    return notes


def _note(rec: dict, mode: str = "", params: Optional[dict] = None) -> str:
    notes = []
    if rec.get("note"):
        notes.append(rec["note"])
    if mode in GOFETCH_MODES:
        notes += _gofetch_note(rec, mode, params or {})
    w = rec.get("warmup")
    if w:
        notes.append(f"warm-up read {_bytes(w.get('bytes'))} in {w['seconds']:.1f} s" if w.get("finished") and
                     "seconds" in w else "warm-up stopped with the job")
    reps = rec.get("repeats")
    if reps:
        stalls = [r["stall_total_s"] for r in reps if r.get("status") == "ok"]
        if stalls:
            notes.append(f"median of {len(reps)} runs (stall {min(stalls):.2f}-{max(stalls):.2f} s)")
    cg = rec.get("cgroup") or {}
    if cg.get("limit_bytes"):
        notes.append(f"limit hit {cg.get('failcnt', 0)}x, {cg.get('pgmajfault', 0)} major faults")
    if rec.get("resident_at_start", 0) > 0.01:
        notes.append(f"{rec['resident_at_start'] * 100:.0f}% resident at start")
    return "; ".join(notes)


def _ordered(scen: dict) -> List[str]:
    return [s for s in REPORT_ORDER if s in scen] + [s for s in scen if s not in REPORT_ORDER]


def render(results: dict) -> str:
    lines = []
    meta = results["meta"]
    lines.append(f"# gofetch benchmark ({'quick' if meta['quick'] else 'full'})")
    lines.append("")
    st = meta.get("storage", {})
    lines.append(f"Storage: {meta['storage_kind']} "
                 + ", ".join(f"{k}={v}" for k, v in st.items() if k in ("latency_ms", "read_iops", "read_ahead_kb")
                             and v is not None)
                 + "; link cap per scenario (set-up below)"
                 + f"; {meta['cpus']} CPUs; run took {meta.get('runtime_s', 0):.0f} s"
                 + (" (INTERRUPTED)" if meta.get("interrupted") else ""))
    gb = meta.get("gofetch_binary")
    if gb:
        lines.append("")
        lines.append(f"gofetch: {gb['path']} (built {gb['modified']}, sha256 {gb['sha256'][:12]}); "
                     f"repository at {str(meta.get('git_head') or '?')[:12]}")
    lines.append("")
    lines.append("stall = seconds the training loop waited for batches; epoch = wall seconds of an epoch; "
                 "values per epoch as e1 / e2 / ...; ratio = stall / no-prefetch stall; "
                 "vs warm = epoch total / warm epoch total.")
    lines.append("")
    lines.append("| scenario | mode | stall s per epoch | stall s total | epoch s per epoch | epoch s total "
                 "| stall ratio | epoch vs warm | notes |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    scen = results["scenarios"]
    for sid in _ordered(scen):
        sc = scen[sid]
        params = {**sc.get("params", {}), "data": (sc.get("dataset") or {}).get("kind")}
        for mode in MODES:
            rec = sc["modes"].get(mode)
            if rec is None:
                continue
            if _ok(rec):
                lines.append(f"| {sid} | {mode} | {_per_epoch(rec['stall_by_epoch_s'])} | {_f(rec['stall_total_s'])} "
                             f"| {_per_epoch(rec['epoch_by_epoch_s'])} | {_f(rec['epoch_total_s'])} "
                             f"| {_f(rec.get('stall_ratio'), 3)} | {_f(rec.get('epoch_vs_warm'), 2)} "
                             f"| {_note(rec, mode, params)} |")
            else:
                why = rec.get("reason") or rec.get("error") or rec.get("status")
                label = "n/a" if rec.get("status") == "n/a" else rec.get("status", "failed")
                lines.append(f"| {sid} | {mode} | {label} | | | | | | {why} |")
    lines.append("")

    lines.append("## The gofetch modes' stall against the others")
    lines.append("")
    lines.append("Stall ratios per epoch (e1 / e2 / ...) and of the totals. ÷ gofetch: transparent's (unnamed's) stall ÷ "
                 "gofetch's. e1 ÷ link bound: epoch 1's stall ÷ the least epoch-1 stall the link allows (scenarios with "
                 "a link cap). Reads warm (files warm): per epoch, the share of the job's reads (of the files it read) "
                 "with no read cold, from gofetch's trace store, by the client's epochs or else the job's own epoch "
                 "times.")
    lines.append("")
    lines.append("| scenario | mode | ÷ naive warm-up | ÷ no prefetch | ÷ warm | ÷ gofetch | e1 ÷ link bound "
                 "| reads (files) warm per epoch |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for sid in _ordered(scen):
        sc = scen[sid]
        bound = sc.get("link_bound")
        for mode in GOFETCH_MODES:
            rec = sc["modes"].get(mode)
            if not _ok(rec):
                continue
            link = f"{_f(rec.get('epoch1_vs_link_bound'))} (bound {bound['epoch1_s']:.2f} s)" if bound else "–"
            warm_reads = rec.get("reads_warm_by_epoch")
            warm_files = rec.get("files_warm_by_epoch") or [None] * len(warm_reads or [])
            warm_text = " / ".join(("–" if v is None else f"{v * 100:.1f}%") + ("" if f is None else f" ({f * 100:.1f}%)")
                                   for v, f in zip(warm_reads, warm_files)) if warm_reads else (
                "not split by epoch" if rec.get("gofetch_epochs") == [] else "–")
            lines.append(f"| {sid} | {mode} | {_ratios(rec, 'vs_warmup')} | {_ratios(rec, 'stall_ratio')} "
                         f"| {_ratios(rec, 'vs_warm_stall')} | {_ratios(rec, 'vs_gofetch')} | {link} | {warm_text} |")
    lines.append("")

    lines.append("## gofetch's own summary per run")
    lines.append("")
    lines.append("| scenario | mode | requests issued | warmed | already resident | cannot last | failed+missing+denied "
                 "| prefetched | announced | data-set tree files (requests) "
                 "| predictions (Markov / remaining set chosen) | epochs seen | not issued: below conf. / dup. / queue "
                 "| waits: budget / rate / pressure | events (dropped) | run's memory peak | gofetch's CPU |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sid in _ordered(scen):
        for mode in GOFETCH_MODES:
            rec = scen[sid]["modes"].get(mode)
            if not rec or not rec.get("gofetch"):
                continue
            s = rec["gofetch"]
            p = s.get("prefetch") or {}
            dropped = s.get("clientDropped", 0) + s.get("storeDropped", 0) + s.get("catalogFull", 0)
            lines.append(
                f"| {sid} | {mode} | {p.get('released', '–')} | {p.get('completed', '–')} | {p.get('skipped', '–')} "
                f"| {p.get('cannotLast', '–')} | {p.get('failed', 0) + p.get('missing', 0) + p.get('denied', 0)} "
                f"| {_bytes(p.get('bytesLoaded'))} | {p.get('announced', '–')} "
                f"| {p.get('treeFiles', '–')} ({p.get('treeRequests', '–')}) "
                f"| {p.get('predictions', '–')} ({p.get('markovChoices', '–')} / "
                f"{p.get('remainingSetChoices', '–')}) | {p.get('epochs', '–')} "
                f"| {p.get('belowThreshold', '–')} / {p.get('duplicates', '–')} / {p.get('queueDropped', '–')} "
                f"| {p.get('budgetWaits', '–')} / {p.get('rateWaits', '–')} / {p.get('pressureWaits', '–')} "
                f"| {s.get('events', '–')} ({dropped}) | {_bytes((rec.get('cgroup') or {}).get('max_usage_bytes'))} "
                f"| {_cpu(s.get('cpu'))} |")
    lines.append("")
    lines.append("Fates of gofetch's prefetches and the job's reads as gofetch measured them (docs/metrics.md):")
    lines.append("")
    lines.append("| scenario | mode | useful | late | wasted (evicted / never read) | skipped | accuracy | coverage "
                 "| job's reads warm | stall in cold reads | budget at end |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for sid in _ordered(scen):
        for mode in GOFETCH_MODES:
            rec = scen[sid]["modes"].get(mode)
            p = ((rec or {}).get("gofetch") or {}).get("prefetch") or {}
            a = p.get("accounting")
            if not a:
                continue
            lines.append(
                f"| {sid} | {mode} | {a['useful']} | {a['late']} | {a['wasted']} ({a['evictedBeforeUse']} / "
                f"{a['unread']}) | {a['skipped']} | {a['accuracy']:.3f} | {a['coverage']:.3f} | {a['hitRate']:.3f} "
                f"| {a['stallNanoseconds'] / 1e9:.2f} s | {_bytes(p.get('effectiveBudget'))} |")
    lines.append("")

    lines.append("## Goals")
    lines.append("")
    for sid in _ordered(scen):
        sc = scen[sid]
        lines.append(f"- **{sid}** ({sc['title']}):")
        for goal in sc.get("goals", []):
            lines.append(f"  - {goal['text']}")
    lines.append("")

    lines.append("## Set-up")
    lines.append("")
    for sid in _ordered(scen):
        sc = scen[sid]
        p = sc.get("params", {})
        ds = sc.get("dataset", {})
        limits = sc.get("memory_limit_bytes") or {}
        limit = None
        if limits:
            by_value: Dict[int, List[str]] = {}
            for mode, value in limits.items():
                by_value.setdefault(value, []).append(mode)
            limit = ", ".join(_bytes(v) + ("" if len(by_value) == 1 else f" ({', '.join(m)})")
                              for v, m in sorted(by_value.items()))
        link = p.get("bandwidth_mbps") or (sc.get("storage") or {}).get("bandwidth_mbps")
        lines.append(f"- {sid}: {ds.get('files', '?')} files, {_bytes(ds.get('bytes'))} ({ds.get('content', '')}); "
                     f"{p.get('workload', 'builtin')} job; order {p.get('order')}; {p.get('workers')} workers, "
                     f"batch {p.get('batch_size')}, prefetch_factor {p.get('prefetch_factor')}, "
                     f"step {p.get('step_ms')} ms, {p.get('epochs')} epochs"
                     + (f", {p['read_size'] >> 10} KiB reads" if ds.get("kind") == "shards" and p.get("read_size") else "")
                     + (f"; link {link:g} MiB/s" if link else "; no link cap")
                     + (f"; memory limit {limit} = {sc.get('memory_limit_note', '')}" if limit
                        else "; no memory limit"))
        bound = sc.get("link_bound")
        if bound:
            lines.append(f"  - link bound: epoch 1 moves {_bytes(bound['bytes'])} in {bound['link_s']:.2f} s at "
                         f"{bound['bandwidth_mbps']:g} MiB/s; warm's epoch 1 is busy {bound['warm_busy_s']:.2f} s "
                         f"and stalls {bound['warm_stall_s']:.2f} s: the least epoch-1 stall is "
                         f"{bound['epoch1_s']:.2f} s")
    for key, value in meta.get("notes", {}).items():
        lines.append(f"- {key}: {value}")
    lines.append("")
    lines.append("Modes: " + "; ".join(f"`{m}` = {t}" for m, t in MODE_TEXT.items()) + ".")
    return "\n".join(lines) + "\n"


def write(results: dict, out_dir: str) -> str:
    for sid, sc in results["scenarios"].items():
        derive(sc)
        sc["goals"] = evaluate(sid, sc)
    table = render(results)
    tmp = os.path.join(out_dir, "results.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(out_dir, "results.json"))
    with open(os.path.join(out_dir, "table.md"), "w", encoding="utf-8") as f:
        f.write(table)
    return table


def write_html(gofetch: str, out_dir: str) -> Optional[str]:
    """report.html beside results.json, made by `gofetch report --bench` (the side-by-side,
    then every gofetch run's charts); None, said on standard error, when it could not be made."""
    import subprocess
    import sys

    path = os.path.join(out_dir, "report.html")
    try:
        r = subprocess.run([gofetch, "report", "--bench", os.path.join(out_dir, "results.json"), "--output", path],
                           capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"bench/run: no HTML report: {exc}", file=sys.stderr)
        return None
    if r.returncode != 0:
        print(f"bench/run: no HTML report: {r.stderr.strip()}", file=sys.stderr)
        return None
    return path
