from ._utils.worker import get_worker_info
from .dataloader import DataLoader, default_collate
from .dataset import ConcatDataset, Dataset, IterableDataset, Subset
from .distributed import DistributedSampler
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "Dataset", "IterableDataset", "Subset", "ConcatDataset", "Sampler", "SequentialSampler",
           "RandomSampler", "BatchSampler", "DistributedSampler", "get_worker_info", "default_collate"]
