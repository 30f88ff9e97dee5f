"""State one process's client shares between its interception (``_runtime``), its
sender (``_sender``) and its DataLoader integration (``_lookahead``): none reads
another's private names.

``_runtime`` imports nothing from ``_lookahead``, ``_sender`` nothing from
``_runtime``. Values here are read through the module (``_state.counters``)
because a forked child replaces them.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional


class Counters:
    """Per-process counters (``gofetch.stats()``)."""

    FIELDS = (
        "recorded", "queue_dropped", "internal_errors", "bad_paths",
        "db_written", "db_errors", "db_dropped", "db_skipped_locked", "db_lock_busy",
        "daemon_sent", "daemon_dropped", "daemon_unconnected", "daemon_messages", "daemon_connects",
        "collector_sent", "collector_dropped", "collector_received", "collector_messages",
        "lookahead_announced", "lookahead_records", "lookahead_dropped", "learned",
    )
    __slots__ = FIELDS

    def __init__(self):
        for name in self.FIELDS:
            setattr(self, name, 0)

    def as_dict(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}


# The kinds of the items the interception queues for the sender: the wire's event
# kinds, and two of its own (MAP: which file a sample index opened; ANNOUNCE: a
# lookahead list). EPOCH items are (EPOCH, epoch, worker).
OPEN, READ, MMAP, CLOSE, EPOCH = 1, 2, 3, 4, 5
MAP = 0
ANNOUNCE = 16

# This process's counters (a forked child starts its own).
counters = Counters()

# The epoch the script set with ``set_epoch`` (``None``: none yet), and how many
# times it was set, so a sampler sees each explicit setting once.
explicit_epoch: Optional[int] = None
explicit_epoch_generation = 0

# Where the root process's runtime hands (dataset key, index, path) when a sample's
# file is learned; ``_lookahead`` puts its sink here when it is imported.
root_learn_sink: Optional[Callable[[int, Any, str], None]] = None

# The dataset keys whose sample -> file mapping is being learned (``_lookahead``; forked
# workers inherit it). While any is, the root's sender never idles: the workers' mappings
# must be in by the next epoch's announcement.
learning: set = set()
