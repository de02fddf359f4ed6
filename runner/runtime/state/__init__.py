"""Keyed state at run time: stores per input partition and the manager that serves
:class:`streamlets.State` (DESIGN §8).

``stores``
    :class:`PartitionStore`, the bytes-level store of one partition, and the in-memory one.
``rocks``
    :class:`RocksStore`, the durable store on RocksDB (through ``rocksdict``).
``manager``
    :class:`StateManager`: the backend of one streamlet instance's states, with the changes
    of each record, of each batch, and what the changelog must carry.
"""

from __future__ import annotations

from runner.runtime.state.manager import ChangelogEntry, StateManager, changelog_topic
from runner.runtime.state.rocks import RocksStore
from runner.runtime.state.stores import MemoryStore, PartitionStore, StoreOpener

__all__ = [
    "ChangelogEntry",
    "MemoryStore",
    "PartitionStore",
    "RocksStore",
    "StateManager",
    "StoreOpener",
    "changelog_topic",
]
