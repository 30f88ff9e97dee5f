"""LookaheadSampler on plain samplers, in this process (no hook, no torch): the
order and the random stream are unchanged, and the announcement is the order."""

from __future__ import annotations

import os
import random
import threading

import pytest

import gofetch_testlib  # noqa: F401  (puts python/ on sys.path)
from gofetch import LookaheadSampler, _runtime, _sender, _state, path_resolver, wire


class Recorder:
    """Stands in for the process runtime: keeps the announcements instead of sending them."""

    def __init__(self):
        self.pid = os.getpid()
        self.flush_interval = 0.02
        self.announced = []
        self.wake = threading.Event()  # set_epoch wakes the sender

    def announce(self, announcement, delay=0.0):
        self.announced.append(announcement)


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(_runtime, "_rt", rec)
    monkeypatch.setattr(_state, "explicit_epoch", None)
    yield rec
    _runtime._epoch[0] = _runtime.UNKNOWN_EPOCH


class GlobalRandomSampler:
    """Like torch's RandomSampler: a generator; its seed comes from the global RNG at the first next()."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        rng = random.Random(random.getrandbits(64))
        order = list(range(self.n))
        rng.shuffle(order)
        yield from order

    def __len__(self):
        return self.n


class Batches:
    def __init__(self, sampler, size):
        self.sampler, self.size = sampler, size

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.size:
                yield batch
                batch = []
        if batch:
            yield batch

    def __len__(self):
        return (len(self.sampler) + self.size - 1) // self.size


class Folder:
    def __init__(self, n):
        self.samples = [(f"/data/c{i % 3}/s{i:03d}.jpg", i % 3) for i in range(n)]

    def __len__(self):
        return len(self.samples)


def consume(index_sampler, epochs=2):
    """What a DataLoader does with its index sampler: iter() at epoch start, a base seed
    drawn from the global RNG, then next() per batch; plus per-sample "augmentation" draws."""
    out = []
    for _ in range(epochs):
        it = iter(index_sampler)
        base_seed = random.getrandbits(32)
        epoch = []
        for batch in it:
            epoch.append((list(batch), [round(random.random(), 9) for _ in batch]))
        out.append((base_seed, epoch))
    return out, random.getrandbits(32)


def test_same_batches_and_random_stream(recorder):
    random.seed(1234)
    plain = consume(Batches(GlobalRandomSampler(23), 4))
    random.seed(1234)
    planned = consume(LookaheadSampler(Batches(GlobalRandomSampler(23), 4), Folder(23), num_workers=2, batched=True))
    assert planned == plain
    assert len(recorder.announced) == 2


class EagerBatches:
    """A batch sampler whose __iter__ is a plain function: it draws at iter(), before the loader's base seed."""

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __iter__(self):
        order = list(range(self.n))
        random.shuffle(order)
        return iter([order[i:i + self.size] for i in range(0, self.n, self.size)])

    def __len__(self):
        return (self.n + self.size - 1) // self.size


def test_same_random_stream_with_a_sampler_that_draws_at_iter(recorder):
    random.seed(99)
    plain = consume(EagerBatches(17, 5))
    random.seed(99)
    planned = consume(LookaheadSampler(EagerBatches(17, 5), Folder(17), batched=True))
    assert planned == plain


def test_announcement_is_the_order_with_workers(recorder):
    random.seed(5)
    folder = Folder(10)
    sampler = LookaheadSampler(Batches(GlobalRandomSampler(10), 3), folder, num_workers=2, batched=True)
    seen = [list(b) for b in sampler]
    (announcement,) = recorder.announced
    assert announcement.epoch == 0 and _runtime.get_epoch() == 0
    expected = [(folder.samples[i][0], position % 2, 0) for position, batch in enumerate(seen) for i in batch]
    assert list(announcement.entries()) == expected
    records = [r for m in announcement.messages(77, {}) for r in wire.decode_message(m)[1]]
    assert records[0] == wire.Record(kind=wire.Kind.EPOCH, fd=-1, worker_id=-1, epoch=0)
    assert [(r.path, r.worker_id, r.offset, r.epoch) for r in records[1:]] == [
        (p, w, i, 0) for i, (p, w, _) in enumerate(expected)]
    assert records[1].flags == wire.Flag.ANNOUNCEMENT_START and all(r.flags == 0 for r in records[2:])
    # the next iteration is the next epoch, with its own order
    second = [list(b) for b in sampler]
    assert recorder.announced[1].epoch == 1
    assert [p for p, _, _ in recorder.announced[1].entries()] == [folder.samples[i][0] for b in second for i in b]


def test_main_process_loader_announces_worker_minus_one(recorder):
    sampler = LookaheadSampler(range(5), Folder(5), num_workers=0)
    assert list(sampler) == [0, 1, 2, 3, 4]
    assert [w for _, w, _ in recorder.announced[0].entries()] == [-1] * 5


def test_explicit_epoch_wins_then_counts_on(recorder):
    sampler = LookaheadSampler(range(3), Folder(3))
    list(sampler)
    _runtime.set_epoch(5)
    list(sampler)
    list(sampler)
    assert [a.epoch for a in recorder.announced] == [0, 5, 6]


def test_sampler_error_surfaces_where_it_would_have(recorder):
    def failing():
        yield 0
        yield 1
        raise KeyError("boom")

    class Failing:
        def __iter__(self):
            return failing()

        def __len__(self):
            return 5

    got = []
    with pytest.raises(KeyError):
        for i in LookaheadSampler(Failing(), Folder(5)):
            got.append(i)
    assert got == [0, 1]
    assert [p for p, _, _ in recorder.announced[0].entries()] == ["/data/c0/s000.jpg", "/data/c1/s001.jpg"]


def test_unknown_length_passes_through_and_extra_items_are_kept(recorder):
    class NoLen:
        def __iter__(self):
            return iter([3, 1, 2])

    assert list(LookaheadSampler(NoLen(), Folder(4))) == [3, 1, 2]
    assert recorder.announced == []

    class Liar:
        def __iter__(self):
            return iter([0, 1, 2, 3])

        def __len__(self):
            return 2

    assert list(LookaheadSampler(Liar(), Folder(4))) == [0, 1, 2, 3]
    assert len(list(recorder.announced[0].entries())) == 2


def test_nothing_drawn_before_the_first_next(recorder):
    draws = []

    class Counting:
        def __iter__(self):
            draws.append("drawn")
            yield from range(3)

        def __len__(self):
            return 3

    it = iter(LookaheadSampler(Counting(), Folder(3)))
    assert draws == [] and recorder.announced == []
    assert next(it) == 0
    assert draws == ["drawn"] and len(recorder.announced) == 1


def test_path_resolvers():
    class Imgs:
        imgs = [("/a/0.png", 0), ("/a/1.png", 1)]

    class Paths:
        paths = ["/p/0", "/p/1", "/p/2"]

    class Files:
        files = [("/f/0", "meta"), ("/f/1", "meta")]

    class Subset:
        def __init__(self, dataset, indices):
            self.dataset, self.indices = dataset, indices

    class Concat:
        def __init__(self, parts):
            self.datasets = parts
            self.cumulative_sizes = [2, 5]

    class Opaque:
        rows = [1, 2]

    assert path_resolver(Imgs())(1) == "/a/1.png"
    assert path_resolver(Files())(0) == "/f/0"
    assert path_resolver(Subset(Paths(), [2, 0]))(0) == "/p/2"
    concat = path_resolver(Concat([Imgs(), Paths()]))
    assert [concat(i) for i in range(5)] == ["/a/0.png", "/a/1.png", "/p/0", "/p/1", "/p/2"]
    assert path_resolver(Opaque()) is None
    assert path_resolver(Opaque(), lambda i: [f"/x/{i}.a", f"/x/{i}.b"])(3) == ["/x/3.a", "/x/3.b"]


def test_multi_file_samples_and_relative_paths(recorder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sampler = LookaheadSampler([[0, 1]], object(), num_workers=3, batched=True,
                               path_of=lambda i: [f"d/{i}.img", f"./d/{i}.lbl"])
    list(sampler)
    records = [r for m in recorder.announced[0].messages(1, {f"{tmp_path}/d/1.img": 42})
               for r in wire.decode_message(m)[1]][1:]
    assert [(r.path, r.worker_id, r.length) for r in records] == [
        (f"{tmp_path}/d/0.img", 0, 0), (f"{tmp_path}/d/0.lbl", 0, 0),
        (f"{tmp_path}/d/1.img", 0, 42), (f"{tmp_path}/d/1.lbl", 0, 0)]


class _ShimReports:
    """An interception whose accesses the preload shim reports (the sender sends none);
    ``alone``: whether the shim also stamps the records alone (it reads the epoch cell)."""

    def __init__(self, alone=True):
        self.alone = alone

    def sends_accesses(self):
        return False

    def shim_tags_alone(self):
        return self.alone


def test_the_sender_idles_only_where_nothing_comes_unannounced():
    def runtime(role, alone=True):
        return _sender.Runtime(role=role, db=None, socket_path=None, stream=False, flush_interval=0.02,
                               db_interval=0.1, busy_timeout_ms=1000, collector_address=None,
                               interception=_ShimReports(alone))

    root, lite, child = runtime(_sender.Runtime.ROOT), runtime(_sender.Runtime.LITE), runtime(_sender.Runtime.CLIENT)
    try:
        assert root._may_idle() and lite._may_idle()
        # A forked worker whose events go to the root's store looks every 20 ms.
        assert child.forward_events and not child._may_idle()
        # One that only announces idles when the shim stamps its records alone ...
        child.forward_events = False
        assert child._may_idle()
        # ... and not when its pass is what hands the shim a new epoch (no shared cell).
        stuck = runtime(_sender.Runtime.CLIENT, alone=False)
        stuck.forward_events = False
        assert not stuck._may_idle()
        # While a data set's mapping is learned from the workers, no one idles.
        _state.learning.add(("dataset", 1))
        assert not root._may_idle() and not child._may_idle()
    finally:
        _state.learning.discard(("dataset", 1))
        if root.collector is not None:
            root.collector.close()
    assert root._may_idle()


def test_the_shim_tags_alone_only_with_the_cell_and_a_known_worker(monkeypatch):
    """The rule a forked worker's sender idles by (``_Interception.shim_tags_alone``)."""
    interception = _runtime._INTERCEPTION
    monkeypatch.setattr(_runtime, "_shim", lambda worker, epoch: None)
    monkeypatch.setattr(_runtime, "_shim_reads_epoch", True)
    monkeypatch.setattr(_runtime, "_worker", None)
    assert not interception.shim_tags_alone()  # its worker id not learnt yet: its pass tells the shim
    monkeypatch.setattr(_runtime, "_worker", 0)
    assert interception.shim_tags_alone()
    monkeypatch.setattr(_runtime, "_shim_reads_epoch", False)
    assert not interception.shim_tags_alone()  # the shim took no cell: its pass hands it the epoch
    monkeypatch.setattr(_runtime, "_shim", None)
    monkeypatch.setattr(_runtime, "_shim_reads_epoch", True)
    assert not interception.shim_tags_alone()  # no shim
