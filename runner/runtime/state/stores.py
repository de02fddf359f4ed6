"""The store of one input partition's state, at the level of bytes.

Keys are ``<state name> NUL <record key>``; what a store keeps about itself (the changelog
offset it has caught up to) lives under keys that start with NUL, which no state name does.
Every change of a batch is applied in one :meth:`PartitionStore.apply`, atomically where
the engine allows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

__all__ = ["MemoryStore", "PartitionStore", "StoreOpener", "meta_key", "store_key"]


def store_key(state: str, key: bytes) -> bytes:
    """The store's key of ``key``'s value in ``state``."""
    return state.encode() + b"\x00" + key


def meta_key(name: str) -> bytes:
    """The store's key of its own metadata ``name``."""
    return b"\x00" + name.encode()


class PartitionStore(Protocol):
    """A key-value store of one partition's state values."""

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or ``None``."""
        ...

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        """Write every entry (``None`` deletes), all or none."""
        ...

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every entry whose key starts with ``prefix``, in key order."""
        ...

    def close(self) -> None:
        """Release the store (its data stays where it is kept)."""
        ...


#: Opens the store of a partition: ``opener(partition)``.
StoreOpener = Callable[[int], PartitionStore]


class MemoryStore:
    """A store kept in a dict: the local runner's default, and the testkit's."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or ``None``."""
        return self.data.get(key)

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        """Write every entry (``None`` deletes)."""
        data = self.data
        for key, value in writes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every entry whose key starts with ``prefix``, in key order."""
        for key in sorted(k for k in self.data if k.startswith(prefix)):
            yield key, self.data[key]

    def entries(self) -> int:
        """How many entries the store holds (its own metadata included)."""
        return len(self.data)

    def close(self) -> None:
        """Nothing to release: the data goes with the object."""
