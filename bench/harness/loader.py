"""The benchmark's training job: a data loader that behaves like PyTorch's.

It mirrors `torch.utils.data.DataLoader`'s multi-process iterator without
depending on it:

- `num_workers` worker processes, forked at the start of every epoch and shut
  down at its end (PyTorch's default, `persistent_workers=False`); with 0,
  every batch is loaded synchronously in the main process;
- a sampler: `shuffle` (a new seeded permutation every epoch, like
  RandomSampler), `fixed` (one seeded permutation, the same every epoch,
  like shuffle=False over a data set whose index order is not the directory
  order) or `sorted` (the data set's own index order, i.e. the sorted file
  list, like shuffle=False over ImageFolder), cut into batches of
  `batch_size` (the last one may be short);
- `prefetch_factor * num_workers` batches outstanding; batch indices go to the
  workers round-robin, results are handed out in order (early results wait),
  and each batch handed out sends the next index list, as in
  `_MultiProcessingDataLoaderIter`;
- an iterable mode for tar shards (like an IterableDataset): worker w reads
  shards w, w+N, ... sequentially in `read_size` reads, parses the tar headers
  and batches its own records; the main loop takes batches round-robin and
  drops a worker from the cycle once it is exhausted;
- a training step per batch, emulated by sleeping `step_ms`;
- the job never imports gofetch. The loader has the attributes gofetch's
  Python client looks for on a torch DataLoader (`dataset` with `paths`,
  `num_workers`, `_auto_collation`, `_dataset_kind`, and the `_index_sampler`
  property its iterator draws each epoch's batches from), so a script could
  call `gofetch.lookahead(loader)` on it; but the client `gofetch run`
  injects plans `torch.utils.data.DataLoader` only (it patches that class
  when the application imports torch.utils.data). This loader is not torch:
  under `gofetch run` nothing announces its order, and the gofetch mode sees
  what the transparent mode sees (the shim's trace);
- an image sample is read whole (`f.read()`: one read of the file's size) and
  decoded with Pillow (`Image.open(BytesIO(data)).convert("RGB")`) when
  installed, else only read. (torchvision's pil_loader streams through
  `Image.open(f)` instead; its small first reads make the kernel's readahead
  ramp up, which costs about three request latencies per file on slowfs
  instead of one. Reading whole files is the stronger baseline for the
  loader's own prefetching, so it is the one used here.)

Workers return only a digest of a batch (sample count, decoded bytes, crc), not
the pixels: PyTorch moves tensors through shared memory, and pickling megabytes
through a pipe here would add a cost the real loader does not have.

Measured: per batch, the time the main loop waited in `next()` for it (the
stall; the first batch's includes creating the iterator, i.e. forking the
workers), and per epoch the wall time from before `iter()` to the end of the
last step.

Run as a program: `python -m harness.loader --spec SPEC.json --result OUT.json`.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import multiprocessing as mp
import os
import queue as queue_module
import random
import signal
import sys
import time
import zlib
from typing import Iterator, List, Optional, Sequence

try:
    from PIL import Image

    HAVE_PIL = True
except ImportError:  # pragma: no cover
    Image = None
    HAVE_PIL = False

_EXHAUSTED = "__exhausted__"


# ---------------------------------------------------------------------------
# data sets

class ImageFolderSource:
    """Map-style: sample i is the file `paths[i]` (= root/files[i]); `paths` is
    also what gofetch.lookahead's resolver would find (like ImageFolder's `samples`)."""

    iterable = False

    def __init__(self, root: str, files: Sequence[str], decode: bool = True):
        self.root = root
        self.files = list(files)
        self.paths = [os.path.join(root, f) for f in self.files]
        self.decode = decode and HAVE_PIL

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int):
        # The file is read whole (one read of its size), then decoded from memory.
        with open(self.paths[index], "rb") as f:
            data = f.read()
        if self.decode:
            image = Image.open(io.BytesIO(data)).convert("RGB")
            return image.width * image.height * 3, 0
        return len(data), zlib.crc32(data)

    def load_batch(self, indices: Sequence[int]):
        count = nbytes = crc = 0
        for i in indices:
            n, c = self.load(i)
            count += 1
            nbytes += n
            crc ^= c
        return count, nbytes, crc


class TarShardSource:
    """Iterable: worker w of n reads shards w, w+n, ... in `read_size` reads."""

    iterable = True

    def __init__(self, root: str, files: Sequence[str], read_size: int = 1 << 20):
        self.root = root
        self.files = list(files)
        self.read_size = read_size

    def records(self, path: str) -> Iterator[memoryview]:
        with open(path, "rb", buffering=0) as f:
            buf = bytearray()
            pos = 0
            eof = False

            def fill(n: int) -> bool:
                nonlocal buf, pos, eof
                while len(buf) - pos < n and not eof:
                    if pos >= self.read_size:
                        del buf[:pos]
                        pos = 0
                    chunk = f.read(self.read_size)
                    if not chunk:
                        eof = True
                    else:
                        buf += chunk
                return len(buf) - pos >= n

            while fill(512):
                header = bytes(buf[pos:pos + 512])
                if header == b"\0" * 512:
                    break
                size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
                padded = (size + 511) // 512 * 512
                pos += 512
                if not fill(padded):
                    break
                record = bytes(buf[pos:pos + size])
                pos += padded
                typeflag = header[156:157]
                if typeflag in (b"0", b"\0"):
                    yield record
            # Read to the end, as a reader of the whole shard would.
            while f.read(self.read_size):
                pass

    def worker_batches(self, worker_id: int, num_workers: int, batch_size: int):
        batch_count = nbytes = crc = 0
        for rel in self.files[worker_id::num_workers]:
            for record in self.records(os.path.join(self.root, rel)):
                batch_count += 1
                nbytes += len(record)
                crc ^= zlib.crc32(record)
                if batch_count == batch_size:
                    yield batch_count, nbytes, crc
                    batch_count = nbytes = crc = 0
        if batch_count:
            yield batch_count, nbytes, crc


# ---------------------------------------------------------------------------
# iterators

def _worker_loop(source, worker_id: int, num_workers: int, batch_size: int,
                 index_queue, result_queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    batches = source.worker_batches(worker_id, num_workers, batch_size) if source.iterable else None
    while True:
        task = index_queue.get()
        if task is None:
            break
        idx, indices = task
        try:
            if batches is not None:
                try:
                    data = next(batches)
                except StopIteration:
                    data = _EXHAUSTED
            else:
                data = source.load_batch(indices)
        except Exception as exc:  # noqa: BLE001 - reported to the main process
            data = ("__error__", f"worker {worker_id}: {exc!r}")
        result_queue.put((idx, worker_id, data))


class WorkerError(RuntimeError):
    pass


class SingleProcessIter:
    def __init__(self, loader):
        self.source = loader.dataset
        self.sampler_iter = iter(loader._index_sampler) if not self.source.iterable else None
        self.shard_batches = self.source.worker_batches(0, 1, loader.batch_size) if self.source.iterable else None

    def __iter__(self):
        return self

    def __next__(self):
        if self.shard_batches is not None:
            return next(self.shard_batches)
        return self.source.load_batch(next(self.sampler_iter))

    def close(self) -> None:
        pass


class MultiProcessIter:
    """PyTorch's `_MultiProcessingDataLoaderIter`, reduced to what matters here."""

    def __init__(self, loader):
        ctx = mp.get_context("fork")
        source = self.source = loader.dataset
        num_workers = self.num_workers = loader.num_workers
        batch_size = loader.batch_size
        prefetch_factor = loader.prefetch_factor
        # Like PyTorch: iter() on the index sampler once per epoch, next() per batch dispatched.
        self.sampler_iter = iter(loader._index_sampler) if not source.iterable else None
        self.index_queues = [ctx.Queue() for _ in range(num_workers)]
        self.result_queue = ctx.Queue()
        self.workers = []
        for w in range(num_workers):
            p = ctx.Process(target=_worker_loop, daemon=True,
                            args=(source, w, num_workers, batch_size, self.index_queues[w], self.result_queue))
            p.start()
            self.workers.append(p)
        self.active = [True] * num_workers
        self.cycle = itertools.cycle(range(num_workers))
        self.send_idx = 0
        self.rcvd_idx = 0
        self.task_info = {}  # idx -> [worker] or [worker, data]
        self.outstanding = 0
        self.max_outstanding = 0
        self.dispatched_to: List[int] = []
        self.shut = False
        for _ in range(prefetch_factor * num_workers):
            self._try_put_index()

    def _try_put_index(self) -> None:
        indices = None
        if self.sampler_iter is not None:
            try:
                indices = next(self.sampler_iter)
            except StopIteration:
                return
        for _ in range(self.num_workers):
            w = next(self.cycle)
            if self.active[w]:
                break
        else:
            return
        self.index_queues[w].put((self.send_idx, indices))
        self.task_info[self.send_idx] = [w]
        self.dispatched_to.append(w)
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        self.send_idx += 1

    def _get(self):
        while True:
            try:
                return self.result_queue.get(timeout=1.0)
            except queue_module.Empty:
                dead = [w for w, p in enumerate(self.workers) if not p.is_alive()]
                if dead:
                    raise WorkerError(f"worker(s) {dead} exited unexpectedly "
                                      f"(exit codes {[self.workers[w].exitcode for w in dead]})")

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            while self.rcvd_idx < self.send_idx:
                info = self.task_info[self.rcvd_idx]
                if len(info) == 2 or self.active[info[0]]:
                    break
                del self.task_info[self.rcvd_idx]
                self.rcvd_idx += 1
            else:
                self.close()
                raise StopIteration
            if len(self.task_info[self.rcvd_idx]) == 2:
                data = self.task_info.pop(self.rcvd_idx)[1]
                return self._process(data)
            idx, worker_id, data = self._get()
            self.outstanding -= 1
            if isinstance(data, tuple) and data and data[0] == "__error__":
                raise WorkerError(data[1])
            if data == _EXHAUSTED:
                self.active[worker_id] = False
                self._try_put_index()
                continue
            if idx != self.rcvd_idx:
                self.task_info[idx].append(data)
            else:
                del self.task_info[idx]
                return self._process(data)

    def _process(self, data):
        self.rcvd_idx += 1
        self._try_put_index()
        return data

    def close(self) -> None:
        if self.shut:
            return
        self.shut = True
        for q in self.index_queues:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for p in self.workers:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        for q in self.index_queues + [self.result_queue]:
            q.close()
            q.join_thread()


class EpochSampler:
    """Index order of each epoch (a generator: the epoch is drawn at the first next(),
    as PyTorch's samplers do)."""

    def __init__(self, n: int, mode: str, seed: int):
        self.n, self.mode, self.seed = n, mode, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return self._epoch()

    def _epoch(self):
        epoch = self.epoch
        self.epoch += 1
        yield from epoch_order(self.n, self.mode, self.seed, epoch)


class BatchSampler:
    def __init__(self, sampler, batch_size: int, drop_last: bool = False):
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch


class DataLoader:
    """Shaped like torch's DataLoader where gofetch's lookahead looks: `dataset`,
    `num_workers`, `_auto_collation`, `_dataset_kind` and the `_index_sampler`
    property the iterator draws its batches from. Not torch's class, so the
    client `gofetch run` injects does not plan it by itself."""

    def __init__(self, dataset, batch_size: int, num_workers: int = 0, prefetch_factor: int = 2,
                 sampler=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self._dataset_kind = 1 if dataset.iterable else 0
        self._auto_collation = True
        self.batch_sampler = None if dataset.iterable else BatchSampler(sampler, batch_size)

    @property
    def _index_sampler(self):
        return self.batch_sampler

    def __iter__(self):
        if self.num_workers == 0:
            return SingleProcessIter(self)
        return MultiProcessIter(self)


def epoch_order(n: int, mode: str, seed: int, epoch: int) -> List[int]:
    order = list(range(n))
    if mode == "shuffle":
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    elif mode == "fixed":
        random.Random(seed * 1_000_003 - 1).shuffle(order)
    elif mode not in ("sorted", "sequential"):
        raise ValueError(f"unknown order {mode!r}")
    return order


# ---------------------------------------------------------------------------
# the job

def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def measure_epochs(loader: DataLoader, epochs: int, step_s: float, max_batches: int = 0) -> List[dict]:
    """Runs `epochs` epochs of `loader` with a `step_s` training step per batch; per
    epoch: wall time, the stall of every batch (time in iter()+next() for the first,
    next() for the others) and their sum, quantiles, samples."""
    out = []
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        started_ns = time.time_ns()  # the epoch's span on the wall clock, as the trace store's events carry it
        stalls: List[float] = []
        samples = decoded = 0
        it = None
        try:
            t0 = time.perf_counter()
            it = iter(loader)
            while True:
                try:
                    count, nbytes, _ = next(it)
                except StopIteration:
                    break
                stalls.append(time.perf_counter() - t0)
                samples += count
                decoded += nbytes
                if step_s:
                    time.sleep(step_s)
                if max_batches and len(stalls) >= max_batches:
                    break
                t0 = time.perf_counter()
        finally:
            if it is not None:
                it.close()
        wall = time.perf_counter() - t_epoch
        record = {
            "epoch": epoch + 1,
            "wall_s": wall,
            "started_ns": started_ns,
            "ended_ns": time.time_ns(),
            "stall_s": sum(stalls),
            "batches": len(stalls),
            "samples": samples,
            "first_batch_stall_s": stalls[0] if stalls else 0.0,
            "stall_p50_s": _quantile(stalls, 0.5),
            "stall_p95_s": _quantile(stalls, 0.95),
            "stall_max_s": max(stalls) if stalls else 0.0,
            "step_s": step_s * len(stalls),
            "decoded_bytes": decoded,
            "stalls_s": [round(x, 6) for x in stalls],
        }
        if isinstance(it, MultiProcessIter):
            record["max_outstanding_batches"] = it.max_outstanding
        out.append(record)
    return out


def run_job(spec: dict) -> dict:
    kind = spec["kind"]
    root = spec["root"]
    if kind == "images":
        source = ImageFolderSource(root, spec["files"], decode=spec.get("decode", True))
        sampler = EpochSampler(len(source), spec.get("order", "shuffle"), spec.get("seed", 0))
    elif kind == "shards":
        source = TarShardSource(root, spec["files"], read_size=spec.get("read_size", 1 << 20))
        sampler = None
    else:
        raise ValueError(f"unknown kind {kind!r}")
    loader = DataLoader(source, spec["batch_size"], spec["num_workers"], spec.get("prefetch_factor", 2), sampler)
    step = spec.get("step_ms", 0.0) / 1000.0
    started = time.perf_counter()
    epochs = measure_epochs(loader, spec["epochs"], step, spec.get("max_batches") or 0)
    return {"epochs": epochs, "job_s": time.perf_counter() - started, "workload": "builtin", "pillow": HAVE_PIL,
            "decode": bool(getattr(source, "decode", False))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The gofetch benchmark's data-loading job.")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    result = run_job(spec)
    tmp = args.result + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
