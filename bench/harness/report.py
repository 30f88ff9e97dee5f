"""Figures derived from the runs, the goals, results.json and table.md.

Definitions (bench/README.md has them too):

- stall: seconds the training loop waited in `next()` for a batch, summed over
  the epoch's batches (per epoch, and the total over all epochs);
- epoch: wall seconds of an epoch in the job (per epoch, and the total);
- stall ratio: a mode's stall / the no-prefetch mode's stall in the same
  scenario (total; per epoch in results.json);
- epoch vs warm: a mode's total epoch time / the warm mode's.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

from .scenarios import MODES, MODE_TEXT, REPORT_ORDER


def _ok(rec: Optional[dict]) -> bool:
    return bool(rec) and rec.get("status") == "ok" and bool(rec.get("epochs"))


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None:
        return None
    if b <= 0:
        return None if a > 0 else 0.0
    return a / b


def derive(scenario: dict) -> None:
    """Adds totals and ratios to every mode record of a scenario (in place)."""
    modes: Dict[str, dict] = scenario["modes"]
    for rec in modes.values():
        if _ok(rec):
            rec["stall_by_epoch_s"] = [e["stall_s"] for e in rec["epochs"]]
            rec["epoch_by_epoch_s"] = [e["wall_s"] for e in rec["epochs"]]
            rec["stall_total_s"] = sum(rec["stall_by_epoch_s"])
            rec["epoch_total_s"] = sum(rec["epoch_by_epoch_s"])
    base = modes.get("no-prefetch")
    warm = modes.get("warm")
    for rec in modes.values():
        if not _ok(rec):
            continue
        if _ok(base):
            rec["stall_ratio"] = _ratio(rec["stall_total_s"], base["stall_total_s"])
            rec["stall_ratio_by_epoch"] = [_ratio(a, b) for a, b in
                                           zip(rec["stall_by_epoch_s"], base["stall_by_epoch_s"])]
        if _ok(warm):
            rec["epoch_vs_warm"] = _ratio(rec["epoch_total_s"], warm["epoch_total_s"])
            rec["epoch_vs_warm_by_epoch"] = [_ratio(a, b) for a, b in
                                             zip(rec["epoch_by_epoch_s"], warm["epoch_by_epoch_s"])]


def _goal(text: str, value: Optional[float], limit: float, fmt: str = "{:.3f}", strict_less: bool = False) -> dict:
    if value is None:
        return {"goal": text, "value": None, "limit": limit, "met": None, "text": f"{text}: cannot tell (missing figures)"}
    met = value < limit if strict_less else value <= limit
    return {"goal": text, "value": value, "limit": limit, "met": met,
            "text": f"{text}: {fmt.format(value)} -> {'met' if met else 'NOT met'}"}


def evaluate(sid: str, scenario: dict) -> List[dict]:
    modes = scenario["modes"]
    g, lo, np_ = modes.get("gofetch"), modes.get("loader"), modes.get("no-prefetch")
    if not _ok(g):
        reason = (g or {}).get("reason") or (g or {}).get("error") or "gofetch mode did not run"
        return [{"goal": scenario.get("goal", ""), "met": None, "text": f"not evaluated: {reason}"}]
    out = []
    vs_loader = _ratio(g["stall_total_s"], lo["stall_total_s"]) if _ok(lo) else None
    epoch_vs_loader = _ratio(g["epoch_total_s"], lo["epoch_total_s"]) if _ok(lo) else None
    if sid == "S1":
        out.append(_goal("stall ratio <= 0.05", g.get("stall_ratio"), 0.05))
        out.append(_goal("epoch time <= 1.05 x warm", g.get("epoch_vs_warm"), 1.05))
        out.append(_goal("stall below the loader's own prefetching (gofetch/loader < 1)", vs_loader, 1.0,
                         strict_less=True))
    elif sid == "S2":
        later = None
        if _ok(np_) and len(g["stall_by_epoch_s"]) > 1:
            later = _ratio(sum(g["stall_by_epoch_s"][1:]), sum(np_["stall_by_epoch_s"][1:]))
        out.append(_goal("stall ratio from epoch 2 <= 0.10", later, 0.10))
        out.append(_goal("stall below the loader's own prefetching (gofetch/loader < 1)", vs_loader, 1.0,
                         strict_less=True))
        if _ok(lo) and len(g["stall_by_epoch_s"]) > 1:
            later_lo = _ratio(sum(g["stall_by_epoch_s"][1:]), sum(lo["stall_by_epoch_s"][1:]))
            out.append(_goal("(also) from epoch 2, stall below the loader's (gofetch/loader < 1)", later_lo, 1.0,
                             strict_less=True))
    elif sid == "S3":
        out.append(_goal("stall <= 0.5 x loader alone (kernel readahead alone)", vs_loader, 0.5))
    elif sid.startswith("S4"):
        if sid == "S4":
            out.append(_goal("never worse than no prefetch: stall ratio <= 1.02", g.get("stall_ratio"), 1.02))
            out.append(_goal("(stricter reading) stall <= 1.02 x the same loader without gofetch", vs_loader, 1.02))
            out.append(_goal("(stricter reading) epoch time <= 1.02 x the same loader without gofetch",
                             epoch_vs_loader, 1.02))
        else:
            out.append(_goal("data fits the budget: stall ratio <= 0.5", g.get("stall_ratio"), 0.5))
            out.append(_goal("(stricter reading) stall <= 0.5 x the same loader without gofetch", vs_loader, 0.5))
            out.append(_goal("never worse than the same loader without gofetch: epoch <= 1.02x",
                             epoch_vs_loader, 1.02))
    return out


# ---------------------------------------------------------------------------
# table

def _f(x: Optional[float], digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _per_epoch(values: List[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _bytes(n: Optional[int]) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _note(rec: dict) -> str:
    notes = []
    if rec.get("note"):
        notes.append(rec["note"])
    if rec.get("shared_from"):
        notes.append(f"same job as {rec['shared_from']} (figures shared)")
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


def render(results: dict) -> str:
    lines = []
    meta = results["meta"]
    lines.append(f"# gofetch benchmark ({'quick' if meta['quick'] else 'full'})")
    lines.append("")
    st = meta.get("storage", {})
    lines.append(f"Storage: {meta['storage_kind']} "
                 + ", ".join(f"{k}={v}" for k, v in st.items() if k in ("latency_ms", "bandwidth_mbps", "read_iops",
                                                                         "read_ahead_kb") and v is not None)
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
    for sid in [s for s in REPORT_ORDER if s in scen] + [s for s in scen if s not in REPORT_ORDER]:
        sc = scen[sid]
        for mode in MODES:
            rec = sc["modes"].get(mode)
            if rec is None:
                continue
            if _ok(rec):
                lines.append(f"| {sid} | {mode} | {_per_epoch(rec['stall_by_epoch_s'])} | {_f(rec['stall_total_s'])} "
                             f"| {_per_epoch(rec['epoch_by_epoch_s'])} | {_f(rec['epoch_total_s'])} "
                             f"| {_f(rec.get('stall_ratio'), 3)} | {_f(rec.get('epoch_vs_warm'), 2)} | {_note(rec)} |")
            else:
                why = rec.get("reason") or rec.get("error") or rec.get("status")
                label = "n/a" if rec.get("status") == "n/a" else rec.get("status", "failed")
                lines.append(f"| {sid} | {mode} | {label} | | | | | | {why} |")
    lines.append("")

    lines.append("## gofetch's own summary per run")
    lines.append("")
    lines.append("| scenario | requests issued | warmed | already resident | cannot last | failed+missing+denied "
                 "| prefetched | predictions (Markov / remaining set chosen) | epochs seen | not issued: below conf. / dup. / queue "
                 "| waits: budget / rate / pressure | events (dropped) | run's memory peak |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sid in [s for s in REPORT_ORDER if s in scen] + [s for s in scen if s not in REPORT_ORDER]:
        rec = scen[sid]["modes"].get("gofetch")
        if not rec or not rec.get("gofetch"):
            continue
        s = rec["gofetch"]
        p = s.get("prefetch") or {}
        dropped = s.get("clientDropped", 0) + s.get("storeDropped", 0) + s.get("catalogFull", 0)
        lines.append(
            f"| {sid} | {p.get('released', '–')} | {p.get('completed', '–')} | {p.get('skipped', '–')} "
            f"| {p.get('cannotLast', '–')} | {p.get('failed', 0) + p.get('missing', 0) + p.get('denied', 0)} "
            f"| {_bytes(p.get('bytesLoaded'))} | {p.get('predictions', '–')} ({p.get('markovChoices', '–')} / "
            f"{p.get('remainingSetChoices', '–')}) | {p.get('epochs', '–')} "
            f"| {p.get('belowThreshold', '–')} / {p.get('duplicates', '–')} / {p.get('queueDropped', '–')} "
            f"| {p.get('budgetWaits', '–')} / {p.get('rateWaits', '–')} / {p.get('pressureWaits', '–')} "
            f"| {s.get('events', '–')} ({dropped}) | {_bytes((rec.get('cgroup') or {}).get('max_usage_bytes'))} |")
    lines.append("")
    lines.append("Fates of gofetch's prefetches and the job's reads as gofetch measured them (docs/metrics.md):")
    lines.append("")
    lines.append("| scenario | useful | late | wasted (evicted / never read) | skipped | accuracy | coverage | job's reads warm | stall in cold reads | budget at end |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for sid in [s for s in REPORT_ORDER if s in scen] + [s for s in scen if s not in REPORT_ORDER]:
        rec = scen[sid]["modes"].get("gofetch")
        p = ((rec or {}).get("gofetch") or {}).get("prefetch") or {}
        a = p.get("accounting")
        if not a:
            continue
        lines.append(
            f"| {sid} | {a['useful']} | {a['late']} | {a['wasted']} ({a['evictedBeforeUse']} / {a['unread']}) | {a['skipped']} "
            f"| {a['accuracy']:.3f} | {a['coverage']:.3f} | {a['hitRate']:.3f} | {a['stallNanoseconds'] / 1e9:.2f} s "
            f"| {_bytes(p.get('effectiveBudget'))} |")
    lines.append("")

    lines.append("## Goals")
    lines.append("")
    for sid in [s for s in REPORT_ORDER if s in scen] + [s for s in scen if s not in REPORT_ORDER]:
        sc = scen[sid]
        lines.append(f"- **{sid}** ({sc['title']}):")
        for goal in sc.get("goals", []):
            lines.append(f"  - {goal['text']}")
    lines.append("")

    lines.append("## Set-up")
    lines.append("")
    for sid in [s for s in REPORT_ORDER if s in scen] + [s for s in scen if s not in REPORT_ORDER]:
        sc = scen[sid]
        p = sc.get("params", {})
        ds = sc.get("dataset", {})
        limit = sc.get("memory_limit_bytes")
        lines.append(f"- {sid}: {ds.get('files', '?')} files, {_bytes(ds.get('bytes'))} ({ds.get('content', '')}); "
                     f"order {p.get('order')}; {p.get('workers')} workers, batch {p.get('batch_size')}, "
                     f"prefetch_factor {p.get('prefetch_factor')}, step {p.get('step_ms')} ms, {p.get('epochs')} epochs; "
                     + ("memory limit (below)" if limit else "no memory limit"))
    cal = results.get("calibration")
    if cal:
        limits = sorted(set(cal.get("limits_bytes", {}).values()))
        lines.append(f"- memory limit (S2, S4): {', '.join(_bytes(v) for v in limits)} = {cal.get('rule', '')}.")
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
