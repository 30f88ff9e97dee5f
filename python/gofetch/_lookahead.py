"""Exact lookahead: tell the daemon, at the start of each epoch, which sample
files a data loader will read and in which order.

How the order stays unchanged: a PyTorch ``DataLoader`` iterator gets its
indices from ``loader._index_sampler`` (the ``batch_sampler`` when batching
automatically, else the ``sampler``): it calls ``iter()`` on it once per epoch
and ``next()`` for every batch it dispatches. ``LookaheadSampler`` stands in for
that object. Its ``__iter__`` is a generator, so — like the samplers themselves
— nothing is drawn until the first ``next()``; at that moment it draws the whole
epoch from the real sampler (``len(sampler)`` items), hands the list to the
daemon, and then yields exactly that list. The real sampler's random stream is
consumed once, at the moment it would have been consumed anyway (PyTorch's
samplers draw their randomness on the first ``next()``), so the loader yields
the same batches, in the same order, as without gofetch. The sampler and
batch-sampler attributes of the loader are not touched (``set_epoch`` on a
``DistributedSampler`` works as before).

Which worker loads what: with ``num_workers`` = N > 0, PyTorch dispatches batch
*i* of an epoch to worker *i* mod N (it cycles through the workers, and all
workers of a map-style dataset stay active); with 0 the main process loads
everything (worker -1).

Index -> path: a ``path_of(index)`` function; else the dataset's ``samples`` /
``imgs`` (torchvision ``ImageFolder``/``DatasetFolder``), ``paths`` or ``files``;
through ``Subset`` and ``ConcatDataset``. For other map-style datasets, when the
hook is enabled, the first epoch *learns* the mapping: each sample is fetched
inside a ``sample_scope``, and the files opened there (in a worker or the main
process) are reported to the hook's root process; the next epochs announce them.
"""

from __future__ import annotations

import bisect
import importlib.abc
import itertools
import operator
import os
import sys
from typing import Callable, Dict, List, Optional

from . import _runtime, _sender, _state

_ATTR = "_gofetch_lookahead"
_learned: Dict[int, Dict[int, List[str]]] = {}   # dataset key -> index -> paths (in the root)
_learning: set = _state.learning                 # dataset keys being learned (forked workers inherit it)
_auto = False                                    # plan every eligible DataLoader (enable_hook(lookahead=True))
MAX_PLAN = 50_000_000


def _learned_sink(key, index, path) -> None:
    table = _learned.get(key)
    if table is None:
        return
    paths = table.get(index)
    if paths is None:
        table[index] = [path]
        _state.counters.learned += 1
    elif path not in paths:
        paths.append(path)


_state.root_learn_sink = _learned_sink


# ---------------------------------------------------------------------------------------------
# index -> path


def _as_path(item):
    if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__"):
        return item
    if isinstance(item, (tuple, list)) and item:
        first = item[0]
        if isinstance(first, (str, bytes)) or hasattr(first, "__fspath__"):
            return first
    return None


def path_resolver(dataset, path_of: Optional[Callable] = None, _depth: int = 0) -> Optional[Callable]:
    """A function index -> path (or list of paths, or None), or None when none is known."""
    if path_of is not None:
        return path_of
    if dataset is None or _depth > 8:
        return None
    for attr in ("samples", "imgs", "paths", "files"):
        try:
            seq = getattr(dataset, attr, None)
        except Exception:
            seq = None
        if seq is None or isinstance(seq, (str, bytes)) or not hasattr(seq, "__getitem__"):
            continue
        try:
            if len(seq) == 0 or _as_path(seq[0]) is None:
                continue
        except Exception:
            continue
        return lambda index, seq=seq: _as_path(seq[index])
    try:
        inner, indices = getattr(dataset, "dataset", None), getattr(dataset, "indices", None)
    except Exception:
        inner = indices = None
    if inner is not None and indices is not None:  # torch.utils.data.Subset
        resolve = path_resolver(inner, None, _depth + 1)
        if resolve is not None:
            return lambda index: resolve(indices[index])
    try:
        parts, sizes = getattr(dataset, "datasets", None), getattr(dataset, "cumulative_sizes", None)
    except Exception:
        parts = sizes = None
    if parts is not None and sizes is not None:  # torch.utils.data.ConcatDataset
        resolvers = [path_resolver(d, None, _depth + 1) for d in parts]
        if resolvers and all(r is not None for r in resolvers):
            def resolve_concat(index):
                if index < 0:
                    index += sizes[-1]
                part = bisect.bisect_right(sizes, index)
                return resolvers[part](index - (sizes[part - 1] if part else 0))
            return resolve_concat
    return None


# ---------------------------------------------------------------------------------------------
# the list-backed sampler


class LookaheadSampler:
    """Stands in for an index sampler (or batch sampler): yields what it yields, announced first.

    ``gofetch.lookahead(loader)`` puts one in front of a DataLoader's own index
    sampler. On its own, it wraps any sampler for any loader::

        batches = gofetch.LookaheadSampler(BatchSampler(RandomSampler(ds), 32, False), ds,
                                           num_workers=4, batched=True)
        loader = DataLoader(ds, batch_sampler=batches, num_workers=4)

    ``num_workers`` is what the announcement's worker ids are computed from
    (item *i* of the epoch -> worker *i* mod ``num_workers``; -1 when 0), and
    ``batched`` says whether the items are batches (lists of indices).
    """

    def __init__(self, source, dataset=None, *, num_workers: int = 0, batched: Optional[bool] = None,
                 path_of: Optional[Callable] = None):
        self.source = source
        self.dataset = dataset
        self.num_workers = int(num_workers or 0)
        self.batched = batched
        self.path_of = path_of
        self.epoch: Optional[int] = None
        self.epochs_planned = 0
        self.last_plan: Optional[list] = None
        self._seen_generation = _state.explicit_epoch_generation
        self.key = id(dataset) if dataset is not None else None
        self._resolve = path_resolver(dataset, path_of)
        self.learning = False
        if self._resolve is None and dataset is not None and _runtime.is_active():
            self.learning = True
            _learned.setdefault(self.key, {})
            _learning.add(self.key)

    def __len__(self):
        return len(self.source)

    def __getattr__(self, name):
        # Anything else (batch_size, drop_last, sampler, ...) is the real sampler's.
        source = self.__dict__.get("source")
        if source is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(source, name)

    def __iter__(self):
        # iter() on the real sampler now, as the loader would have (a sampler whose __iter__
        # is a plain function draws here); its items only from the first next() on.
        return self._epoch(self.source, iter(self.source))

    def _epoch(self, source, iterator):
        try:
            count = len(source)
        except Exception:
            count = None
        if count is None or count > MAX_PLAN or count < 0:
            # Unknown length: pass through, nothing announced.
            yield from iterator
            return
        plan: list = []
        error: Optional[BaseException] = None
        try:
            plan.extend(itertools.islice(iterator, count))
        except Exception as raised:  # re-raised where the sampler would have raised it
            error = raised
        try:
            self._announce(plan)
        except Exception:
            _state.counters.internal_errors += 1
        yield from plan
        if error is not None:
            raise error
        # Anything past len(): yielded as the sampler yields it (not announced).
        yield from iterator

    def _next_epoch_number(self) -> int:
        generation = _state.explicit_epoch_generation
        if generation != self._seen_generation and _state.explicit_epoch is not None:
            self._seen_generation = generation
            return _state.explicit_epoch
        return 0 if self.epoch is None else self.epoch + 1

    def _announce(self, plan: list) -> None:
        epoch = self._next_epoch_number()
        self.epoch = epoch
        self.epochs_planned += 1
        self.last_plan = plan
        _runtime.set_epoch(epoch, explicit=False, notify=False)
        resolve = self._resolve
        learned = None
        if resolve is None and self.key is not None and _learned.get(self.key):
            learned = _learned[self.key]
            resolve = learned.get
        elif resolve is None and self.learning and self.epochs_planned > 1 and self.key in _learning:
            # A whole epoch opened no traced file per sample (data in memory, or a shared
            # file opened once): stop learning, announce nothing.
            _learning.discard(self.key)
            self.learning = False
        rt = _runtime.current_runtime()
        if rt is None:
            rt = _runtime.ensure_runtime()
        if resolve is None:
            rt.announce(_sender.Announcement(epoch, _runtime.get_worker(), lambda: ()))
            return
        batched = self.batched
        if batched is None:
            batched = bool(plan) and isinstance(plan[0], (list, tuple))
        workers = self.num_workers
        key = self.key

        def entries():
            missing = 0
            for position, item in enumerate(plan):
                worker = position % workers if workers > 0 else -1
                for index in (item if batched else (item,)):
                    try:
                        paths = resolve(index)
                    except Exception:
                        paths = None
                    if paths is None:
                        missing += 1
                        continue
                    if isinstance(paths, (list, tuple)):
                        for path in paths:
                            yield path, worker, 0
                    else:
                        yield paths, worker, 0
            if learned is not None and missing == 0:
                _learning.discard(key)  # every sample known: workers forked from now on stop reporting

        # A learned mapping may still be arriving from workers that just finished: wait a moment.
        rt.announce(_sender.Announcement(epoch, _runtime.get_worker(), entries),
                    delay=2 * rt.flush_interval + 0.005 if learned is not None else 0.0)


# ---------------------------------------------------------------------------------------------
# DataLoader integration (PyTorch, or anything shaped like it)


def _eligible(loader) -> bool:
    kind = getattr(loader, "_dataset_kind", None)
    if kind is not None:
        return int(kind) == 0  # _DatasetKind.Map
    return hasattr(getattr(loader, "dataset", None), "__getitem__")


def _dispatch_workers(loader) -> int:
    """How many workers batches cycle through; 0 when not predictable (or none)."""
    if getattr(loader, "in_order", True) is False:
        return 0  # torch's in_order=False hands batches to whichever worker has room
    return int(getattr(loader, "num_workers", 0) or 0)


def _batched(loader) -> bool:
    batched = getattr(loader, "_auto_collation", None)
    if batched is None:
        batched = getattr(loader, "batch_sampler", None) is not None
    return bool(batched)


def _for_loader(loader, source, path_of=None) -> Optional[LookaheadSampler]:
    dataset = getattr(loader, "dataset", None)
    if path_resolver(dataset, path_of) is None and not _runtime.is_active():
        return None  # nothing to announce and nothing to learn from
    return LookaheadSampler(source, dataset, num_workers=_dispatch_workers(loader), batched=_batched(loader),
                            path_of=path_of)


def _defining_class(cls):
    for klass in cls.__mro__:
        if "_index_sampler" in klass.__dict__:
            return klass
    return None


def _patch_loader_class(cls) -> bool:
    klass = _defining_class(cls)
    if klass is None:
        return False
    prop = klass.__dict__["_index_sampler"]
    if not isinstance(prop, property) or prop.fget is None:
        return False
    if getattr(prop.fget, "_gofetch_original", None) is not None:
        return True
    original = prop.fget

    def _index_sampler(self):
        source = original(self)
        try:
            d = self.__dict__
            planned = d.get(_ATTR)
            if planned is None:
                if not (_auto and _runtime.is_active() and _eligible(self)):
                    return source
                planned = _for_loader(self, source)
                d[_ATTR] = planned if planned is not None else False
                if planned is None:
                    return source
            elif planned is False:
                return source
            if planned.source is not source:
                planned.source = source
            return planned
        except Exception:
            _state.counters.internal_errors += 1
            return source

    _index_sampler._gofetch_original = original
    klass._index_sampler = property(_index_sampler, doc=prop.__doc__)
    return True


def _original_index_sampler(loader):
    klass = _defining_class(type(loader))
    fget = klass.__dict__["_index_sampler"].fget
    return getattr(fget, "_gofetch_original", fget)(loader)


def lookahead(loader, path_of: Optional[Callable] = None):
    """Announces ``loader``'s sample files to the daemon at the start of every epoch.

    ``loader`` is a ``torch.utils.data.DataLoader`` (or anything with the same
    ``_index_sampler`` property); ``path_of(index)`` maps a dataset index to a path
    (or a list of paths) when the dataset has no ``samples``/``imgs``/``paths``/
    ``files``. Returns ``loader``. Call it before the first iteration.
    """
    if not _patch_loader_class(type(loader)):
        raise TypeError(
            f"{type(loader).__name__} has no _index_sampler property: wrap its sampler in gofetch.LookaheadSampler")
    source = _original_index_sampler(loader)
    planned = LookaheadSampler(source, getattr(loader, "dataset", None), num_workers=_dispatch_workers(loader),
                               batched=_batched(loader), path_of=path_of)
    loader.__dict__[_ATTR] = planned
    iterator = loader.__dict__.get("_iterator")
    if iterator is not None and getattr(iterator, "_index_sampler", None) is source:
        iterator._index_sampler = planned  # a persistent-workers iterator re-iterates its cached sampler
    _runtime.ensure_runtime()
    return loader


# -- learning: which files each sample opens --------------------------------------------------


def _scope(key, index):
    try:
        return _runtime.sample_scope(key, operator.index(index))
    except TypeError:
        return _NullScope


class _NullScopeType:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NullScope = _NullScopeType()


def _patch_fetcher_class(cls) -> bool:
    fetch = cls.__dict__.get("fetch")
    if fetch is None:
        return False
    if getattr(fetch, "_gofetch_original", None) is not None:
        return True

    def fetch_learning(self, possibly_batched_index):
        dataset = self.dataset
        key = id(dataset)
        if key not in _learning or not _runtime.is_active():
            return fetch(self, possibly_batched_index)
        if self.auto_collation:
            if hasattr(dataset, "__getitems__") and dataset.__getitems__:
                return fetch(self, possibly_batched_index)  # a batch at once: no per-sample attribution
            data = []
            for index in possibly_batched_index:
                with _scope(key, index):
                    data.append(dataset[index])
        else:
            with _scope(key, possibly_batched_index):
                data = dataset[possibly_batched_index]
        return self.collate_fn(data)

    fetch_learning._gofetch_original = fetch
    fetch_learning.__doc__ = fetch.__doc__
    cls.fetch = fetch_learning
    return True


def _patch_fetcher_init(cls) -> None:
    """A DataLoader worker makes its fetcher once its worker info is set and before its
    first sample: it learns its worker id there, so that even reads that never pass
    through ``open()`` (tarfile's streams use ``os.open``; the preload shim sees them)
    carry it from the first."""
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "_gofetch_original", None) is not None:
        return

    def init_identifying(self, *args, **kwargs):
        init(self, *args, **kwargs)
        _runtime.identify_worker()

    init_identifying._gofetch_original = init
    init_identifying.__doc__ = init.__doc__
    cls.__init__ = init_identifying


def _patch_dataloader_module(module) -> None:
    loader = getattr(module, "DataLoader", None)
    if loader is not None:
        _patch_loader_class(loader)


def _patch_fetch_module(module) -> None:
    fetcher = getattr(module, "_MapDatasetFetcher", None)
    if fetcher is not None:
        _patch_fetcher_class(fetcher)
    base = getattr(module, "_BaseDatasetFetcher", None)
    if base is not None:
        _patch_fetcher_init(base)


_TARGETS = {
    "torch.utils.data.dataloader": _patch_dataloader_module,
    "torch.utils.data._utils.fetch": _patch_fetch_module,
}


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            spec = getattr(module, "__spec__", None)
            if spec is not None and spec.loader is self:
                spec.loader = self._loader
            if getattr(module, "__loader__", None) is self:
                module.__loader__ = self._loader
            self._patch(module)
        except Exception:
            _state.counters.internal_errors += 1
        _Watcher.done(module.__name__)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Watcher(importlib.abc.MetaPathFinder):
    """Patches PyTorch's DataLoader and fetcher when the application imports them (never imports torch)."""

    pending = set()

    def find_spec(self, fullname, path, target=None):
        patch = _TARGETS.get(fullname)
        if patch is None or fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            try:
                spec = find_spec(fullname, path, target)
            except Exception:
                return None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec

    @classmethod
    def done(cls, name):
        cls.pending.discard(name)
        if not cls.pending:
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Watcher)]


def install_torch_integration(auto: bool = True) -> None:
    """Plans every map-style DataLoader (``auto``) and learns index -> file for unmapped datasets."""
    global _auto
    _auto = _auto or auto
    for name, patch in _TARGETS.items():
        module = sys.modules.get(name)
        if module is not None:
            try:
                patch(module)
            except Exception:
                _state.counters.internal_errors += 1
        else:
            _Watcher.pending.add(name)
    if _Watcher.pending and not any(isinstance(f, _Watcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _Watcher())
