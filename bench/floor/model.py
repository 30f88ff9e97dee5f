"""The first epoch of a shuffled image folder on a capped link, as a model.

A discrete-event model of the benchmark's S1-cap set-up, to answer one question
the measurements cannot: how low can the first epoch's stall go for a prefetcher
that does not know the job's order (no announcements), whatever it does? It
models:

- the link as bench/emulator/slowfs.c paces it: a request's data start flowing
  once its latency has passed and the link is free, in the order requests
  arrive (first come, first served), and occupy the link for bytes / rate;
- the job as torch's DataLoader runs it: `workers` processes, each loading whole
  batches of `batch` files one file after another (a warm file costs `item_s`; a
  cold one first waits for its own read of `round_trips` requests), at most
  `prefetch_factor` batches per worker outstanding, delivered in order to the
  training loop, which is busy `batch_s` per batch after it;
- a prefetcher that warms whole files in a fixed order of its own (the job's
  order is a uniformly random permutation it cannot know), from `head_start_s`
  before the job's first read, under one of these policies:
    - `none`: no prefetch (the loader alone);
    - `window:K`: K prefetch reads at the link at a time, each sent when one
      completes, first come first served with the job's own reads (gofetch's
      executor: a window adapted to the link keeps one or two here);
    - `paced`: a read is sent whenever the link's queue would otherwise drain
      within a request's latency, so the link stays full and the job's reads
      never queue behind more than that (an oracle: it reads the link's queue,
      which a prefetcher only infers from its own reads' times, late);
    - `first`: every read of the job goes ahead of all prefetch at the link (a
      priority no prefetcher outside the storage has: the floor for any policy
      without the order).

A file the job asks for while its prefetch is on the link waits for that prefetch.
Stall is the training loop's wait for batches, summed, as bench/harness measures it.
The link bound is bench/harness/report.py's: bytes / rate minus the job's busy time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

MiB = 1024 * 1024
DEFAULT_POLICIES = ["none", "window:1", "window:2", "window:4", "paced", "first"]


@dataclass
class Setup:
    files: int = 6000
    file_bytes: int = 106_086  # 103.6 KiB: images-6000's 636 MB over its 6,000 files
    latency_s: float = 0.003
    link_mibps: float = 30.0
    workers: int = 2
    batch: int = 16
    prefetch_factor: int = 2
    item_s: float = 0.004  # 3.2 ms alone; 4 ms beside the rest of the job on 2 cores (bench/README)
    batch_s: float = 0.0358  # warm's epoch-1 busy time (wall - stall) / 375 batches, at full size
    round_trips: int = 1
    head_start_s: float = 0.0
    seed: int = 0

    @property
    def link_bound_s(self) -> float:
        batches = -(-self.files // self.batch)
        return max(0.0, self.files * self.file_bytes / (self.link_mibps * MiB) - batches * self.batch_s)


@dataclass
class Outcome:
    stall_s: float
    epoch_s: float
    cold_reads: int
    waited_on_prefetch: int


class _Link:
    """slowfs's link: first come, first served after each request's latency."""

    def __init__(self, setup: Setup, job_first: bool) -> None:
        self.latency = setup.latency_s
        self.rate = setup.link_mibps * MiB
        self.free_at = 0.0
        self.job_first = job_first

    def reserve(self, now: float, nbytes: float, job: bool) -> float:
        """When a request arriving `now` for `nbytes` completes."""
        transfer = nbytes / self.rate
        if job and self.job_first:
            # Ahead of everything queued: the queued prefetch moves back by this transfer.
            done = now + self.latency + transfer
            self.free_at = max(self.free_at, now) + transfer
            return done
        start = max(now + self.latency, self.free_at)
        self.free_at = start + transfer
        return self.free_at


def simulate(setup: Setup, policy: str) -> Outcome:
    """Runs one first epoch under `policy` (`none`, `window:K`, `paced`, `first`)."""
    paced = False
    if policy == "none":
        window = 0
    elif policy == "first":
        window = 4
    elif policy == "paced":
        window, paced = setup.files, True
    elif policy.startswith("window:") and policy[7:].isdigit() and int(policy[7:]) >= 1:
        window = int(policy[7:])
    else:
        raise ValueError(f"unknown policy {policy!r}: none, window:K (K at least 1), paced or first")
    link = _Link(setup, job_first=policy == "first")
    order = list(range(setup.files))
    random.Random(setup.seed).shuffle(order)
    queue: List = []
    tick = itertools.count()

    def at(when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(queue, (when, next(tick), action))

    warm = [False] * setup.files
    taken = [False] * setup.files
    on_link: Dict[int, List[Callable[[float], None]]] = {}
    counts = {"cold": 0, "waited": 0}
    prefetch = {"next": 0, "in_flight": 0}
    start = setup.head_start_s  # the job's clock starts after the head start

    def pump(now: float) -> None:
        while window and prefetch["in_flight"] < window and prefetch["next"] < setup.files:
            if paced and link.free_at - now > link.latency + 1e-7:
                # Queue no more than the link drains during a request's latency.
                at(link.free_at - link.latency, pump)
                return
            f = prefetch["next"]
            prefetch["next"] += 1
            if taken[f]:
                continue
            on_link[f] = []
            prefetch["in_flight"] += 1
            at(link.reserve(now, setup.file_bytes, job=False), lambda t, f=f: prefetched(t, f))

    def prefetched(now: float, f: int) -> None:
        prefetch["in_flight"] -= 1
        warm[f] = True
        for resume in on_link.pop(f, []):
            resume(now)
        if not paced:
            pump(now)

    batches = -(-setup.files // setup.batch)
    ready: Dict[int, float] = {}
    loop = {"next": 0, "free_at": start, "stall": 0.0}
    worker_next = list(range(setup.workers))
    parked = [False] * setup.workers

    def load(w: int, now: float) -> None:
        b = worker_next[w]
        if b >= batches:
            return
        if b >= loop["next"] + setup.prefetch_factor * setup.workers:
            parked[w] = True
            return
        worker_next[w] += setup.workers
        files = order[b * setup.batch:(b + 1) * setup.batch]

        def item(i: int, t: float) -> None:
            if i == len(files):
                ready[b] = t
                deliver(t)
                load(w, t)
                return
            f = files[i]
            taken[f] = True
            then = lambda t2: at(t2 + setup.item_s, lambda t3: item(i + 1, t3))  # noqa: E731
            if warm[f]:
                then(t)
            elif f in on_link:
                counts["waited"] += 1
                on_link[f].append(then)
            else:
                counts["cold"] += 1
                done = t
                for _ in range(setup.round_trips):
                    done = link.reserve(done, setup.file_bytes / setup.round_trips, job=True)
                then(done)

        item(0, now)

    def deliver(now: float) -> None:
        b = loop["next"]
        if b >= batches or b not in ready or loop["free_at"] > now:
            return
        begin = max(ready[b], loop["free_at"])
        loop["stall"] += begin - loop["free_at"]
        loop["next"] += 1
        loop["free_at"] = begin + setup.batch_s
        for w in range(setup.workers):
            if parked[w]:
                parked[w] = False
                load(w, begin)
        at(loop["free_at"], deliver)

    at(0.0, pump)
    for w in range(setup.workers):
        at(start, lambda t, w=w: load(w, t))
    while queue:
        when, _, action = heapq.heappop(queue)
        action(when)
    return Outcome(stall_s=loop["stall"], epoch_s=loop["free_at"] - start,
                   cold_reads=counts["cold"], waited_on_prefetch=counts["waited"])


def sweep(setup: Setup, policies: Optional[List[str]] = None) -> Dict[str, Outcome]:
    """`simulate` for each policy (default: none, window:1, window:2, window:4, paced, first)."""
    return {p: simulate(setup, p) for p in policies or DEFAULT_POLICIES}
