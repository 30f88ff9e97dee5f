"""The first epoch of a shuffled image folder on a capped link, as a model.

A discrete-event model of the benchmark's S1-cap set-up, to answer one question
the measurements cannot: how low can the first epoch's stall go for a prefetcher
that does not know the job's order (no announcements)? It models:

- the link as bench/emulator/slowfs.c paces it: a request's data start flowing
  once its latency has passed and the link is free, in the order requests
  arrive (first come, first served), and occupy the link for bytes / rate;
- the job as torch's DataLoader runs it: `workers` processes, batches assigned
  to them in turn, each loading its batch's `batch` files one after another (a
  cached file costs `item_s`; a cold one first waits for its own read, in
  `round_trips` requests one after the other), at most `prefetch_factor` x
  `workers` batches outstanding (sent to a worker, not yet taken by the training
  loop), delivered in order to the training loop, which is busy `batch_s` per
  batch;
- a prefetcher that warms whole files in a fixed order of its own (the job's
  order is a uniformly random permutation it cannot know), starting
  `head_start_s` before the job (a negative value: after it), under one of these
  policies:
    - `none`: no prefetch (the loader alone);
    - `window:K`: K prefetch reads at the link at a time, each sent when one
      completes, first come first served with the job's own reads (gofetch's
      executor: a window adapted to the link keeps one or two here);
    - `paced`: a read is sent whenever the link's queue would otherwise drain
      within a request's latency, so the link stays full and a job's read
      queues behind at most about one prefetch transfer (an oracle: it reads the
      link's queue, which a prefetcher only infers from its own reads' times,
      late);
    - `own`: paced as `paced`, but by the prefetcher's own reads alone, the most
      a prefetcher outside the storage knows in time: it sends a read when its
      own reads already sent would drain within a request's latency (from the
      link's rate and latency, known to it exactly here), and learns of the
      job's reads only as its own come back later than that;
    - `first`: the job's reads are served before any prefetch at the link (they
      queue only behind each other; a prefetch transfer under way is pushed back
      by theirs), enough prefetch reads are queued to keep the link full, and a
      job that needs a file whose prefetch is still on the link takes whichever
      comes first, that prefetch or its own read. A priority no prefetcher
      outside the storage has, and optimistic on purpose: no policy without the
      order can stall less in this model.

Otherwise, a file the job asks for while its prefetch is on the link waits for that
prefetch (the kernel's page lock). Stall is the training loop's wait for batches,
summed, as bench/harness measures it. The link bound is bytes / rate minus the job's
busy time (bench/harness/report.py's, which also never goes below warm's own stall).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

MiB = 1024 * 1024
DEFAULT_POLICIES = ["none", "window:1", "window:2", "window:4", "own", "paced", "first"]


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
    def batches(self) -> int:
        return -(-self.files // self.batch)

    @property
    def link_bound_s(self) -> float:
        return max(0.0, self.files * self.file_bytes / (self.link_mibps * MiB) - self.batches * self.batch_s)


@dataclass
class Outcome:
    stall_s: float
    epoch_s: float
    batches: int  # delivered to the training loop
    cold_reads: int  # files the job read from the link itself
    waited_on_prefetch: int  # files the job waited for while their prefetch was on the link
    prefetched: int  # prefetch reads completed
    cold_wait_s: float  # the workers' time waiting for the link, summed
    longest_cold_wait_s: float  # the longest of those waits
    most_outstanding: int  # most batches sent to workers and not yet taken by the loop
    prefetch_done_s: Optional[float]  # the last prefetch's completion, from the prefetcher's start


class _Link:
    """slowfs's link; with `job_first`, the job's reads go before all prefetch."""

    def __init__(self, setup: Setup, job_first: bool) -> None:
        self.latency = setup.latency_s
        self.rate = setup.link_mibps * MiB
        self.job_first = job_first
        self.free_at = 0.0  # when everything reserved so far has crossed
        self.job_free_at = 0.0  # when the job's own reserved reads have crossed (job_first)
        self.prefetch_ends: List[List[float]] = []  # the prefetches on the link: [end], moved by job_first

    def transfer(self, nbytes: float) -> float:
        return nbytes / self.rate

    def _first_come(self, now: float, transfer: float) -> float:
        """Reserves a request arriving `now` behind everything reserved; returns its end."""
        start = max(now + self.latency, self.free_at)
        self.free_at = start + transfer
        return self.free_at

    def _job_start(self, now: float) -> float:
        """With `job_first`: when a read of the job arriving `now` would start crossing."""
        return max(now + self.latency, self.job_free_at)

    def reserve_prefetch(self, now: float, nbytes: float) -> List[float]:
        end = [self._first_come(now, self.transfer(nbytes))]
        self.prefetch_ends.append(end)
        return end

    def reserve_job(self, now: float, nbytes: float) -> float:
        """When a read of the job arriving `now` for `nbytes` completes."""
        transfer = self.transfer(nbytes)
        if not self.job_first:
            return self._first_come(now, transfer)
        start = self._job_start(now)
        self.job_free_at = start + transfer
        # Prefetch not yet across at `start` crosses after this transfer instead.
        for end in self.prefetch_ends:
            if end[0] > start:
                end[0] += transfer
        self.free_at = max(self.free_at, start) + transfer
        return self.job_free_at

    def job_read_would_end(self, now: float, nbytes: float) -> float:
        """With `job_first`: when a read of the job arriving `now` would complete."""
        return self._job_start(now) + self.transfer(nbytes)

    def crossed(self, end: List[float]) -> None:
        self.prefetch_ends.remove(end)


def simulate(setup: Setup, policy: str) -> Outcome:
    """Runs one first epoch under `policy` (`none`, `window:K`, `own`, `paced`, `first`)."""
    paced = False
    if policy == "none":
        window = 0
    elif policy == "first":
        # Reads enough to keep the link full: its bandwidth-delay product, twice over.
        per_read = setup.file_bytes / (setup.link_mibps * MiB)
        window = 2 * math.ceil((setup.latency_s + per_read) / per_read) + 1
    elif policy in ("paced", "own"):
        window, paced = setup.files, True
    elif policy.startswith("window:") and policy[7:].isdigit() and int(policy[7:]) >= 1:
        window = int(policy[7:])
    else:
        raise ValueError(f"unknown policy {policy!r}: none, window:K (K at least 1), own, paced or first")
    link = _Link(setup, job_first=policy == "first")
    # `own`: when the prefetcher's own reads sent so far would have crossed, as it reckons.
    own = {"on": policy == "own", "free_at": 0.0}
    order = list(range(setup.files))
    random.Random(setup.seed).shuffle(order)
    queue: List = []
    tick = itertools.count()

    def at(when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(queue, (when, next(tick), action))

    prefetch_start = max(0.0, -setup.head_start_s)
    job_start = max(0.0, setup.head_start_s)
    warm = [False] * setup.files
    taken = [False] * setup.files
    on_link: Dict[int, List[float]] = {}  # file -> its prefetch's [end]
    waiting: Dict[int, List[Callable[[float], None]]] = {}
    counts = {"cold": 0, "waited": 0, "prefetched": 0, "cold_wait": 0.0, "longest": 0.0, "last_prefetch": None}
    prefetch = {"next": 0, "in_flight": 0}

    def pump(now: float) -> None:
        while window and prefetch["in_flight"] < window and prefetch["next"] < setup.files:
            free_at = own["free_at"] if own["on"] else link.free_at
            if paced and free_at - now > link.latency + 1e-7:
                # Queue no more than the link drains during a request's latency.
                at(free_at - link.latency, pump)
                return
            f = prefetch["next"]
            prefetch["next"] += 1
            if taken[f]:
                continue
            prefetch["in_flight"] += 1
            own["free_at"] = max(now + link.latency, own["free_at"]) + link.transfer(setup.file_bytes)
            end = link.reserve_prefetch(now, setup.file_bytes)
            on_link[f] = end
            at(end[0], lambda t, f=f, end=end: prefetched(t, f, end))

    def prefetched(now: float, f: int, end: List[float]) -> None:
        if now < end[0]:  # pushed back by the job's reads meanwhile
            at(end[0], lambda t: prefetched(t, f, end))
            return
        link.crossed(end)
        prefetch["in_flight"] -= 1
        if own["on"]:
            # Back later than reckoned: the job's reads crossed meanwhile; those still out
            # cross after this one.
            own["free_at"] = max(own["free_at"], now + prefetch["in_flight"] * link.transfer(setup.file_bytes))
        counts["prefetched"] += 1
        counts["last_prefetch"] = now
        warm[f] = True
        on_link.pop(f, None)
        for resume in waiting.pop(f, []):
            resume(now)
        if not paced:
            pump(now)

    ready: Dict[int, float] = {}
    loop = {"next": 0, "free_at": job_start, "stall": 0.0, "started": 0, "most": 0}
    worker_next = list(range(setup.workers))
    parked = [False] * setup.workers

    def load(w: int, now: float) -> None:
        b = worker_next[w]
        if b >= setup.batches:
            return
        if b >= loop["next"] + setup.prefetch_factor * setup.workers:
            parked[w] = True
            return
        worker_next[w] += setup.workers
        loop["started"] += 1
        loop["most"] = max(loop["most"], loop["started"] - loop["next"])
        files = order[b * setup.batch:(b + 1) * setup.batch]

        def item(i: int, t: float) -> None:
            if i == len(files):
                ready[b] = t
                deliver(t)
                load(w, t)
                return
            f = files[i]
            taken[f] = True

            def then(t2: float, asked: float = t) -> None:
                counts["cold_wait"] += t2 - asked
                counts["longest"] = max(counts["longest"], t2 - asked)
                at(t2 + setup.item_s, lambda t3: item(i + 1, t3))

            if warm[f]:
                then(t)
            elif f in on_link and not (link.job_first and
                                       link.job_read_would_end(t, setup.file_bytes) < on_link[f][0]):
                counts["waited"] += 1
                waiting.setdefault(f, []).append(then)
            else:
                counts["cold"] += 1
                read(setup.round_trips, t, then)

        item(0, now)

    def read(requests_left: int, now: float, then: Callable[[float], None]) -> None:
        # A cold read's requests go one after another, each sent when the last returns.
        end = link.reserve_job(now, setup.file_bytes / setup.round_trips)
        if requests_left == 1:
            at(end, then)
        else:
            at(end, lambda t: read(requests_left - 1, t, then))

    def deliver(now: float) -> None:
        b = loop["next"]
        if b >= setup.batches or b not in ready or loop["free_at"] > now:
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

    at(prefetch_start, pump)
    for w in range(setup.workers):
        at(job_start, lambda t, w=w: load(w, t))
    while queue:
        when, _, action = heapq.heappop(queue)
        action(when)
    last = counts["last_prefetch"]
    return Outcome(stall_s=loop["stall"], epoch_s=loop["free_at"] - job_start, batches=loop["next"],
                   cold_reads=counts["cold"], waited_on_prefetch=counts["waited"],
                   prefetched=counts["prefetched"], cold_wait_s=counts["cold_wait"],
                   longest_cold_wait_s=counts["longest"],
                   most_outstanding=loop["most"],
                   prefetch_done_s=None if last is None else last - prefetch_start)


def sweep(setup: Setup, policies: Optional[List[str]] = None) -> Dict[str, Outcome]:
    """`simulate` for each policy (default: none, window:1, window:2, window:4, paced, first)."""
    return {p: simulate(setup, p) for p in policies or DEFAULT_POLICIES}
