"""Benchmark: key-value engines for the state store, on the store's own access pattern.

Each batch of records reads the value of each record's key, then writes the batch's changes
in one write batch (one transaction), as ``runner.runtime.state`` does: a per-key running
count over ``--keys`` keys (default 10,000) and ``--records`` records (default 200,000),
batches of ``--batch`` (default 256). Engines, side by side in one run:

- RocksDB through ``rocksdict`` (what Kafka Streams and Quix Streams use; the project's
  store, see runner/runtime/state/rocks.py),
- SQLite (the standard library; WAL, ``synchronous=NORMAL``, one transaction per batch),
- LMDB through ``lmdb`` (when installed: ``pip install lmdb``; one write transaction per
  batch),
- a dict, as the floor.

Run: ``.venv/bin/python benchmarks/state_store.py [--records N] [--keys K] [--batch B]``.
Reports records/s and the ratio to the dict, per engine, plus reopen (recovery) time.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runner.runtime.state import MemoryStore, PartitionStore, RocksStore  # noqa: E402

_COUNT = struct.Struct(">q")


class SqliteStore:
    """The store interface on SQLite, for comparison."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def get(self, key: bytes) -> bytes | None:
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO kv VALUES (?, ?)",
            [(k, v) for k, v in writes.items() if v is not None],
        )
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


class LmdbStore:
    """The store interface on LMDB, for comparison."""

    def __init__(self, path: Path) -> None:
        import lmdb  # optional: only this benchmark uses it

        # No fsync per transaction: like RocksDB without a synced WAL (the changelog is
        # what makes state durable; the store only saves a restore).
        self.env = lmdb.open(str(path), map_size=1 << 30, sync=False, metasync=False)

    def get(self, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        with self.env.begin(write=True) as txn:
            for k, v in writes.items():
                if v is not None:
                    txn.put(k, v)

    def close(self) -> None:
        self.env.close()


def run(store: Any, keys: list[bytes]) -> None:
    batch: dict[bytes, bytes | None] = {}
    for i, key in enumerate(keys, 1):
        raw = batch.get(key) or store.get(key)
        count = _COUNT.unpack(raw)[0] if raw else 0
        batch[key] = _COUNT.pack(count + 1)
        if i % ARGS.batch == 0:
            store.apply(batch)
            batch = {}
    store.apply(batch)


def measure(name: str, make: Callable[[Path], Any], keys: list[bytes]) -> tuple[str, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        store = make(path)
        start = time.perf_counter()
        run(store, keys)
        seconds = time.perf_counter() - start
        check = store.get(keys[0])
        store.close()
        assert check is not None
        start = time.perf_counter()
        again = make(path)
        assert again.get(keys[0]) == check  # durable (for the dict: nothing to reopen)
        reopen = time.perf_counter() - start
        again.close()
    return name, len(keys) / seconds, reopen


def main() -> None:
    rng = random.Random(7)
    keys = [b"card-%d" % rng.randrange(ARGS.keys) for _ in range(ARGS.records)]
    memory: PartitionStore = MemoryStore()
    engines: list[tuple[str, Callable[[Path], Any]]] = [
        ("dict (floor)", lambda _: memory),
        ("rocksdict", RocksStore),
        ("sqlite3", SqliteStore),
    ]
    try:
        import lmdb  # noqa: F401
    except ImportError:
        print("lmdb: not installed (pip install lmdb to compare it)")
    else:
        engines.append(("lmdb", LmdbStore))
    print(f"{ARGS.records:,} records, {ARGS.keys:,} keys, batches of {ARGS.batch}")
    rows = [measure(name, make, keys) for name, make in engines]
    floor = rows[0][1]
    print(f"{'engine':<14}{'records/s':>12}{'vs dict':>9}{'reopen ms':>11}")
    for name, rate, reopen in rows:
        print(f"{name:<14}{rate:>12,.0f}{rate / floor:>9.2f}{reopen * 1000:>11.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=256)
    ARGS = parser.parse_args()
    main()
