"""A stand-in for the parts of PyTorch gofetch relies on, for tests on machines
without torch: ``torch.utils.data`` with DataLoader (single- and multi-process,
persistent workers), the samplers, worker info and the map-style fetcher,
shaped like torch 2.x (same attribute names, same order of random draws).

The "global RNG" is Python's ``random`` module (``torch.manual_seed`` seeds it);
a sampler's ``generator`` is a ``random.Random``.
"""
import random as _random

from . import utils  # noqa: F401  (torch imports torch.utils.data too)

__version__ = "0.0.fake"


def manual_seed(seed):
    _random.seed(seed)


class Generator(_random.Random):
    def manual_seed(self, seed):
        self.seed(seed)
        return self
