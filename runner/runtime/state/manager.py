"""The backend of one streamlet instance's states: what ``State.get/set/delete`` act on.

Changes travel in three steps, so that a failed record changes nothing and a crash loses
nothing that was committed:

1. A handler's changes stay in its record's :class:`~streamlets.state.RecordScope` and are
   dropped when the handler raises (the record goes to the error policy, stage
   ``process`` or ``state``).
2. When it succeeds they join the instance's pending changes, which later records read,
   and, on Kafka, the changelog entries the runner produces with the record's outputs.
3. :meth:`StateManager.checkpoint` writes the pending changes of each partition to its
   store in one write batch: after every batch on the local runner, and on Kafka after
   the changelog and the outputs are acknowledged (or their transaction committed), just
   before the input offsets are committed. A store is therefore never ahead of its
   changelog, and a store that is behind catches up from it (:meth:`restore`).

Values are kept in their Avro form (the state's schema): ``get()`` returns a fresh value,
so changing it in place changes nothing until it is ``set()`` again. Immutable values
(numbers, strings) are also kept decoded, which saves the decode for the hot keys.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from runner.runtime.state.stores import PartitionStore, StoreOpener, meta_key, store_key
from streamlets.codecs.avro import AvroCodec
from streamlets.errors import CodecError
from streamlets.state import RecordScope, State, StateError, current_scope

__all__ = ["ChangelogEntry", "StateManager", "changelog_topic"]

#: Decoded values kept per partition before the cache starts over.
_CACHE_LIMIT = 100_000
#: Values that can be handed out again as they are: nothing can change them in place.
_IMMUTABLE = (int, float, str, bytes, bool, type(None))
#: A change: the encoded value (``None``: deleted; ``_LAZY``: encode ``value`` when it is
#: written out) and the value itself when immutable (else ``_NO_VALUE``).
_Change = tuple[Any, Any]
_NO_VALUE = object()
_LAZY = object()
_DELETED: _Change = (None, None)
#: The Python types a value of an Avro primitive state may have, checked by ``type()``.
_PRIMITIVE_TYPES: dict[str, tuple[type, ...]] = {
    "long": (int,),
    "double": (float, int),
    "string": (str,),
    "bytes": (bytes,),
    "boolean": (bool,),
}


def changelog_topic(app: str, streamlet: str, state: str) -> str:
    """The Kafka topic that keeps ``state`` of ``streamlet`` (DESIGN §8)."""
    return f"{app}.{streamlet}.{state}.changelog"


def _offset_meta(state: str) -> bytes:
    return meta_key(f"changelog-offset:{state}")


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One change to write to a changelog: ``value`` ``None`` is a tombstone."""

    state: str
    partition: int
    key: bytes
    value: bytes | None


class StateManager:
    """The states of one streamlet instance, with a store per input partition.

    ``opener`` opens the store of a partition, on first use (or when the runner assigns
    it). With ``changelog``, every applied change is also kept for :meth:`take_changelog`.
    A source (``source=True``) has one value per state, under its own scope (key
    ``own_key``, partition 0): there is no record whose key it would be. A source's changes
    stay in its scope, where its reads see them, until the source pump hands over the
    records they were made for (:meth:`own_snapshot`, :meth:`apply_own`): a position is
    kept only with the records it is the position after.
    """

    def __init__(
        self,
        streamlet: str,
        states: Mapping[str, State[Any]],
        opener: StoreOpener,
        *,
        changelog: bool = False,
        source: bool = False,
        own_key: bytes = b"",
    ) -> None:
        self.streamlet = streamlet
        self.states = dict(states)
        self.codecs = {name: AvroCodec(state.schema) for name, state in states.items()}
        self._opener = opener
        self._changelog_on = changelog
        self._stores: dict[int, PartitionStore] = {}
        self._pending: dict[int, dict[tuple[str, bytes], _Change]] = {}
        self._cache: dict[int, dict[tuple[str, bytes], Any]] = {}
        self._changed: dict[int, dict[tuple[str, bytes], _Change]] = {}
        self._lock = threading.Lock()
        self._var = current_scope()
        # States whose values are Python primitives: checked by type, encoded when written.
        self._primitive: dict[str, tuple[type, ...]] = {}
        for name, state in states.items():
            check = _PRIMITIVE_TYPES.get(str(self.codecs[name].writer.avro))
            if check is not None and state.source in (int, float, str, bytes, bool):
                self._primitive[name] = check
        #: A source's own scope (its states' one value each), else ``None``.
        self.own: RecordScope | None = RecordScope(own_key, 0, keyed=False) if source else None
        self._own_applied: dict[tuple[str, bytes], _Change] = {}
        self._reset_listeners: list[Callable[[int], None]] = []

    def bind(self, instance: object) -> None:
        """Point ``instance``'s states at this manager (before its ``setup()``)."""
        for state in self.states.values():
            state.bind(instance, self)

    # -- the backend of State -------------------------------------------------------------

    def read(self, state: str, scope: RecordScope) -> tuple[bool, Any]:
        """``(True, value)`` for the scope's key in ``state``, or ``(False, None)``."""
        entry = (state, scope.key or b"")
        change = scope.changes.get(entry)
        if change is None:
            pending = self._pending.get(scope.partition)
            if pending is not None:
                change = pending.get(entry)
        if change is not None:
            raw, value = change
            if raw is None:
                return False, None
            return True, (value if value is not _NO_VALUE else self._decode(state, raw))
        cache = self._cache.get(scope.partition)
        if cache is not None and entry in cache:
            return True, cache[entry]
        raw = self.store(scope.partition).get(store_key(*entry))
        if raw is None:
            return False, None
        value = self._decode(state, raw)
        if isinstance(value, _IMMUTABLE):
            self._cache_put(scope.partition, entry, value)
        return True, value

    def write(self, state: str, scope: RecordScope, value: Any) -> None:
        """Set the scope's key in ``state`` to ``value`` (checked against its schema now).

        A number or string of the state's own primitive type is encoded when it is
        written out (a hot key set many times in a batch is encoded once); any other value
        is encoded at once, which checks it and keeps it as it is now.
        """
        check = self._primitive.get(state)
        if check is not None and type(value) in check:
            if type(value) is int and float in check:
                value = float(value)  # what a double state gives back
            change: _Change = (_LAZY, value)
        else:
            try:
                raw = self.codecs[state].encode(self.states[state].to_stored(value))
            except (CodecError, ValueError) as exc:
                raise StateError(
                    f"state '{self.streamlet}.{state}': {value!r} does not fit its schema: {exc}"
                ) from exc
            change = (raw, value if isinstance(value, _IMMUTABLE) else _NO_VALUE)
        scope.changes[(state, scope.key or b"")] = change

    def remove(self, state: str, scope: RecordScope) -> None:
        """Delete the scope's key in ``state``."""
        scope.changes[(state, scope.key or b"")] = _DELETED

    def put(self, state: str, partition: int, changes: Mapping[bytes, Any]) -> None:
        """Set keys of ``state`` in ``partition`` (a value ``None`` deletes its key), as the
        changes of a record that succeeded are applied: for a runtime that keeps its own
        values by keys of its own making (the windows')."""
        scope = RecordScope(None, partition)
        for key, value in changes.items():
            scope.key = key
            if value is None:
                self.remove(state, scope)
            else:
                self.write(state, scope, value)
        self.settle(scope, True)

    def items(self, state: str, partition: int) -> Iterator[tuple[bytes, Any]]:
        """Every (key, value) of ``state`` in ``partition``: the stored ones, with the
        pending changes over them, in key order."""
        prefix = store_key(state, b"")
        pending = {k: c for (s, k), c in self._pending.get(partition, {}).items() if s == state}
        found: dict[bytes, Any] = {}
        for skey, raw in self.store(partition).items(prefix):
            key = skey[len(prefix) :]
            if key not in pending:
                found[key] = self._decode(state, raw)
        for key, change in pending.items():
            encoded = self._raw(state, change)
            if encoded is not None:
                value = change[1]
                found[key] = value if value is not _NO_VALUE else self._decode(state, encoded)
        for key in sorted(found):
            yield key, found[key]

    def on_reset(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(partition)`` whenever a partition's values change other than
        through this manager's handlers (restored from its changelog) or its store is closed
        (the partition was revoked): a runtime that keeps values of its own in memory (the
        windows') then forgets that partition's and reads them again when it needs them."""
        self._reset_listeners.append(listener)

    def _reset(self, partition: int) -> None:
        for listener in self._reset_listeners:
            listener(partition)

    def _decode(self, state: str, raw: bytes) -> Any:
        try:
            return self.states[state].from_stored(self.codecs[state].decode(raw))
        except CodecError as exc:
            raise StateError(
                f"state '{self.streamlet}.{state}': a stored value does not decode with the "
                f"state's schema ({exc}); was the schema changed incompatibly?"
            ) from exc

    def _raw(self, state: str, change: _Change) -> bytes | None:
        """The encoded value of a change (``None``: deleted)."""
        raw, value = change
        if raw is _LAZY:
            return self.codecs[state].encode(value)
        return raw  # type: ignore[no-any-return]

    def _cache_put(self, partition: int, entry: tuple[str, bytes], value: Any) -> None:
        cache = self._cache.setdefault(partition, {})
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[entry] = value

    # -- records --------------------------------------------------------------------------

    def enter(
        self, key: bytes | None, partition: int
    ) -> tuple[RecordScope, contextvars.Token[Any]]:
        """Start handling a record of ``key`` from ``partition``: its scope, and the token
        that :meth:`leave` takes."""
        scope = RecordScope(key, partition if partition >= 0 else 0)
        return scope, self._var.set(scope)

    def leave(self, scope: RecordScope, token: contextvars.Token[Any], ok: bool) -> None:
        """End a record's handling: its changes are applied when ``ok``, else dropped."""
        self._var.reset(token)
        if ok and scope.changes:
            self._apply_changes(scope.partition, scope.changes)

    def settle(self, scope: RecordScope, ok: bool) -> None:
        """End one record of a scope that is reused record after record (a sync batch):
        apply its changes when ``ok``, drop them otherwise, and clear them."""
        changes = scope.changes
        if changes:
            if ok:
                self._apply_changes(scope.partition, changes)
            changes.clear()

    def reset(self, token: contextvars.Token[Any]) -> None:
        """End a scope :meth:`enter` started and :meth:`settle` ended record by record."""
        self._var.reset(token)

    def _apply_changes(self, partition: int, changes: Mapping[tuple[str, bytes], _Change]) -> None:
        with self._lock:  # a sync source changes its state from a worker thread
            pending = self._pending.get(partition)
            if pending is None:
                pending = self._pending[partition] = {}
            pending.update(changes)
            if self._changelog_on:
                changed = self._changed.get(partition)
                if changed is None:
                    changed = self._changed[partition] = {}
                changed.update(changes)
        cache = self._cache.get(partition)
        if cache is not None:
            for entry in changes:
                cache.pop(entry, None)

    def take_changelog(self) -> list[ChangelogEntry]:
        """The changelog entries of the changes applied since the last call: the latest
        change of each key (as Kafka Streams' record caches do, a key changed many times
        between two calls gets one entry)."""
        with self._lock:
            changed, self._changed = self._changed, {}
        return [
            ChangelogEntry(state, partition, key, self._raw(state, change))
            for partition, changes in changed.items()
            for (state, key), change in changes.items()
        ]

    # -- a source's own state -------------------------------------------------------------

    def own_snapshot(self) -> dict[tuple[str, bytes], Any] | None:
        """A source's changes so far, to travel with the record it just generated (the
        source pump takes one after each record, where ``generate()`` runs); ``None``
        when there are none (or this is no source)."""
        own = self.own
        if own is None or not own.changes:
            return None
        return dict(own.changes)

    def apply_own(self, snapshot: Mapping[tuple[str, bytes], Any] | None) -> None:
        """Apply a source's changes as of a record (:meth:`own_snapshot`), once that record
        is handed to the transport: they become pending (and changelog) changes."""
        if not snapshot or self.own is None:
            return
        applied = self._own_applied
        fresh = {entry: c for entry, c in snapshot.items() if applied.get(entry) is not c}
        if fresh:
            applied.update(fresh)
            self._apply_changes(self.own.partition, fresh)

    @property
    def pending(self) -> bool:
        """Whether changes wait for :meth:`checkpoint`."""
        return any(self._pending.values())

    def checkpoint(self, offsets: Mapping[tuple[str, int], int] | None = None) -> None:
        """Write the pending changes of each partition to its store in one write batch.

        ``offsets`` gives, per ``(state, partition)``, the changelog offset the store has
        caught up to with these changes (the offset after the last entry written): it is
        kept with them, so a restore starts there.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        by_partition: dict[int, dict[bytes, bytes | None]] = {}
        for partition, changes in pending.items():
            if not changes:
                continue
            by_partition[partition] = {
                store_key(state, key): self._raw(state, change)
                for (state, key), change in changes.items()
            }
            # What was written is read from the cache (immutable values) or the store.
            for entry, (_, value) in changes.items():
                if isinstance(value, _IMMUTABLE) and value is not None:
                    self._cache_put(partition, entry, value)
        for (state, partition), offset in (offsets or {}).items():
            by_partition.setdefault(partition, {})[_offset_meta(state)] = str(offset).encode()
        for partition, writes in by_partition.items():
            self.store(partition).apply(writes)

    def find(self, state: str, key: bytes) -> Any:
        """The value of ``key`` in ``state`` in whichever partition holds it (of those with
        an open store or pending changes), or ``None``: a lookup outside a record handler."""
        with self._lock:
            partitions = sorted(set(self._stores) | set(self._pending))
        for partition in partitions:
            found, value = self.read(state, RecordScope(key, partition))
            if found:
                return value
        return None

    # -- partitions -----------------------------------------------------------------------

    def store(self, partition: int) -> PartitionStore:
        """The store of ``partition``, opened on first use."""
        store = self._stores.get(partition)
        if store is None:
            store = self._stores[partition] = self._opener(partition)
        return store

    def entries(self) -> int | None:
        """How many entries the open stores hold (for a live view; ``None`` when a store
        cannot say). Read from another thread, it may miss a store opened meanwhile."""
        total = 0
        for store in list(self._stores.values()):
            count = getattr(store, "entries", None)
            if count is None:
                return None
            total += int(count())
        return total

    @property
    def partitions(self) -> list[int]:
        """The partitions whose stores are open."""
        return sorted(self._stores)

    def changelog_offset(self, state: str, partition: int) -> int | None:
        """The changelog offset ``partition``'s store of ``state`` has caught up to."""
        raw = self.store(partition).get(_offset_meta(state))
        return None if raw is None else int(raw)

    def restore(
        self,
        state: str,
        partition: int,
        entries: Iterable[tuple[bytes, bytes | None]],
        next_offset: int,
    ) -> int:
        """Write changelog ``entries`` (key, value or ``None``) of ``state`` to
        ``partition``'s store, which has then caught up to ``next_offset``; returns how
        many entries were written."""
        writes: dict[bytes, bytes | None] = {}
        for key, value in entries:
            writes[store_key(state, key)] = value
        writes[_offset_meta(state)] = str(next_offset).encode()
        self.store(partition).apply(writes)
        self._cache.pop(partition, None)
        self._reset(partition)
        return len(writes) - 1

    def drop(self, state: str, partition: int) -> int:
        """Delete every value of ``state`` in ``partition``'s store, and the changelog
        offset it had caught up to (before it is rebuilt from the changelog); returns how
        many values were deleted."""
        store = self.store(partition)
        writes: dict[bytes, bytes | None] = {
            key: None for key, _ in store.items(store_key(state, b""))
        }
        writes[_offset_meta(state)] = None
        store.apply(writes)
        self._cache.pop(partition, None)
        self._reset(partition)
        return len(writes) - 1

    def close_partition(self, partition: int) -> None:
        """Close ``partition``'s store (after a checkpoint: pending changes of it, and
        changelog entries not taken yet, are dropped), e.g. when the partition is revoked."""
        with self._lock:
            self._pending.pop(partition, None)
            self._changed.pop(partition, None)
        self._cache.pop(partition, None)
        store = self._stores.pop(partition, None)
        if store is not None:
            store.close()
        self._reset(partition)

    def close(self) -> None:
        """Close every store."""
        for partition in list(self._stores):
            self.close_partition(partition)

    # -- tests and tools ------------------------------------------------------------------

    def seed(self, state: str, values: Mapping[bytes, Any], partition_of: Any) -> None:
        """Set ``values`` (key -> value) of ``state`` before a run; ``partition_of(key)``
        gives each key's partition."""
        if state not in self.states:
            raise StateError(
                f"streamlet '{self.streamlet}' has no state '{state}'; its states: "
                f"{', '.join(self.states) or 'none'}"
            )
        for key, value in values.items():
            scope = RecordScope(key, partition_of(key))
            self.write(state, scope, value)
            self._pending.setdefault(scope.partition, {}).update(scope.changes)
        self.checkpoint()

    def values(self, state: str) -> Iterator[tuple[bytes, Any]]:
        """Every (key, value) of ``state`` in the open stores, pending changes included."""
        prefix = store_key(state, b"")
        for partition in self.partitions:
            pending = {k: c for (s, k), c in self._pending.get(partition, {}).items() if s == state}
            for skey, raw in self.store(partition).items(prefix):
                key = skey[len(prefix) :]
                if key not in pending:
                    yield key, self._decode(state, raw)
            for key, (change, value) in pending.items():
                if change is _LAZY:
                    yield key, value
                elif change is not None:
                    yield key, self._decode(state, change)
