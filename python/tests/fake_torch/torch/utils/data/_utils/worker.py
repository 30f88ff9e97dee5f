import random as _random

from .fetch import _MapDatasetFetcher

_worker_info = None


class WorkerInfo:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def get_worker_info():
    return _worker_info


class _ResumeIteration:
    pass


def _worker_loop(dataset, index_queue, data_queue, auto_collation, collate_fn, base_seed, worker_id, num_workers):
    global _worker_info
    _random.seed(base_seed + worker_id)
    _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=base_seed + worker_id, dataset=dataset)
    fetcher = _MapDatasetFetcher(dataset, auto_collation, collate_fn, False)
    while True:
        r = index_queue.get()
        if r is None:
            break
        if isinstance(r, _ResumeIteration):
            data_queue.put((r, None))
            continue
        idx, index = r
        data_queue.put((idx, fetcher.fetch(index)))
