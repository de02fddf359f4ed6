"""The windows of one window declaration in one partition: pure logic, no I/O.

A runner keeps one :class:`Engine` per window and input partition. For each record it
calls :meth:`Engine.plan` (which runs the aggregate's functions and may raise: the record
then fails and nothing changed) and, once everything the record does has succeeded,
:meth:`Engine.apply`, which advances stream time, closes the windows that stream time has
passed and takes the record into the open ones; both give the windows to emit as
:class:`WindowOutput` values. :meth:`Engine.take_changes` hands the runner what to store
(the entries changed since the last call, as bytes), :meth:`Engine.load` rebuilds an
engine from what was stored (after a restart or a rebalance), and
:meth:`Engine.close_all` closes every open window when the input has ended.

What is stored, under keys of the engine's own (one state per window declaration):

* ``t``: stream time and the arrival number of the next record (16 bytes);
* ``w`` + key + start: a window: its end (8 bytes) and its accumulator (Avro of the
  aggregate's accumulator schema); a sliding window stores no accumulator;
* ``r`` + key + timestamp + arrival number: a record a sliding window may still need
  (Avro of the input's schema): sliding windows are computed from the records in them, as
  a window of one can start at any record.

The semantics of each window type are in :mod:`streamlets.windows.specs`; a record is
*late* (``plan`` returns ``None``) when every window it would go to is closed. A record
that is late only for some of its windows (an early hopping window, a sliding window that
closed) goes to the others: what a closed window emitted stays as it was.
"""

from __future__ import annotations

import bisect
import heapq
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streamlets.codecs.avro import AvroCodec
from streamlets.schema import Schema
from streamlets.windows.aggregates import BoundAggregate, WindowDefinitionError
from streamlets.windows.fields import without_redefinitions
from streamlets.windows.specs import Hopping, Session, Sliding, WindowSpec

__all__ = ["Engine", "WindowOutput", "make_engine"]

_LONG = struct.Struct(">q")
_TIME = struct.Struct(">qq")
_LEN = struct.Struct(">I")
_OFFSET = 1 << 63  # signed times as unsigned, so that stored keys sort by time
_NO_TIME = -(1 << 63)
_TIME_KEY = b"t"


def _u64(value: int) -> bytes:
    return (value + _OFFSET).to_bytes(8, "big")


def _from_u64(data: bytes) -> int:
    return int.from_bytes(data, "big") - _OFFSET


def window_key(key: bytes, start: int) -> bytes:
    """The stored key of ``key``'s window that starts at ``start``."""
    return b"w" + _LEN.pack(len(key)) + key + _u64(start)


def record_key(key: bytes, t: int, seq: int) -> bytes:
    """The stored key of a record a sliding window keeps."""
    return b"r" + _LEN.pack(len(key)) + key + _u64(t) + _u64(seq)


def _split(stored: bytes) -> tuple[bytes, bytes]:
    (length,) = _LEN.unpack_from(stored, 1)
    return stored[5 : 5 + length], stored[5 + length :]


@dataclass(frozen=True, slots=True)
class WindowOutput:
    """A window to emit: its key, bounds (see the window type for which are inclusive), its
    accumulator (``BoundAggregate.result`` makes the value), and whether it is final (it
    closed) or an update (``emit="every"``)."""

    key: bytes
    start: int
    end: int
    acc: Any
    final: bool


class _Plan:
    """What a record will do once applied."""

    __slots__ = ("key", "record", "removes", "stream", "t", "updates")

    def __init__(self, key: bytes, t: int, stream: int, record: Any) -> None:
        self.key = key
        self.t = t
        self.stream = stream
        self.record = record
        #: (start, end, accumulator, its stored form, whether the window is new)
        self.updates: list[tuple[int, int, Any, Any, bool]] = []
        #: windows (starts) a merge removes
        self.removes: list[int] = []


class Engine:
    """One window declaration's open windows in one partition (see the module docstring).

    ``aggregate`` is bound to the input's schema; ``every`` emits each changed window after
    each record (Kafka Streams' default, Quix's ``.current()``) instead of once when it
    closes (``.final()``, Kafka Streams' ``suppress(untilWindowCloses)``). ``records``
    encodes input records for the engines that keep them (sliding windows).
    """

    def __init__(
        self,
        spec: WindowSpec,
        aggregate: BoundAggregate,
        *,
        every: bool = False,
        records: Schema | None = None,
    ) -> None:
        self.spec = spec
        self.aggregate = aggregate
        self.every = every
        self.stream: int | None = None
        self.seq = 0
        #: key -> window start -> [end, accumulator (its stored bytes when not ``fresh``)]
        self.windows: dict[bytes, dict[int, list[Any]]] = {}
        self._heap: list[tuple[int, bytes, int]] = []
        self._dirty: set[tuple[bytes, int]] = set()
        self._time_dirty = False
        acc_schema = Schema.of(without_redefinitions(aggregate.acc_avro))
        self._acc_codec = AvroCodec(acc_schema)
        self._fresh = aggregate.fresh
        self._records = AvroCodec(records) if records is not None else None

    # -- accumulators ---------------------------------------------------------------------

    def _acc(self, stored: Any) -> Any:
        if self._fresh:
            return stored
        return self.aggregate.from_datum(self._acc_codec.decode(stored))

    def _store(self, acc: Any) -> Any:
        if self._fresh:
            return acc
        return self._acc_codec.encode(self.aggregate.to_datum(acc))

    # -- records --------------------------------------------------------------------------

    def _stream_with(self, t: int) -> int:
        stream = self.stream
        return t if stream is None or t > stream else stream

    def plan(self, key: bytes, t: int, record: Any) -> _Plan | None:
        """What a record of ``key`` at event time ``t`` does, or ``None`` when it is late.

        Runs the aggregate's functions (which may raise; then nothing has changed)."""
        raise NotImplementedError  # pragma: no cover - every engine overrides it

    def apply(self, plan: _Plan) -> list[WindowOutput]:
        """Take the planned record: stream time advances, windows it passed close (emitted
        when ``every`` is off), then the record goes to its windows (each emitted when
        ``every`` is on)."""
        out: list[WindowOutput] = []
        self.seq += 1
        self._time_dirty = True
        if plan.stream != self.stream:
            self.stream = plan.stream
            self._close_until(plan.stream, out)
        key = plan.key
        mine = self.windows.get(key)
        if mine is None:
            mine = self.windows[key] = {}
        dirty = self._dirty
        for start in plan.removes:
            mine.pop(start, None)
            dirty.add((key, start))
        close = self.spec.close_time
        for start, end, acc, stored, created in plan.updates:
            mine[start] = [end, stored]
            dirty.add((key, start))
            if created:
                heapq.heappush(self._heap, (close(start, end), key, start))
            if self.every:
                out.append(WindowOutput(key, start, end, acc, False))
        return out

    def _close_until(self, stream: int, out: list[WindowOutput]) -> None:
        heap = self._heap
        close = self.spec.close_time
        while heap and heap[0][0] <= stream:
            close_at, key, start = heapq.heappop(heap)
            mine = self.windows.get(key)
            entry = mine.get(start) if mine is not None else None
            if entry is None or close(start, entry[0]) != close_at:
                continue  # merged away or grown since (a session): not this window any more
            assert mine is not None
            self._closed(key, start, entry, out)
            del mine[start]
            if not mine:
                del self.windows[key]
            self._dirty.add((key, start))

    def _closed(self, key: bytes, start: int, entry: list[Any], out: list[WindowOutput]) -> None:
        if not self.every:
            out.append(WindowOutput(key, start, entry[0], self._acc(entry[1]), True))

    def close_all(self) -> list[WindowOutput]:
        """Close every open window (the input has ended): the final results, by close time
        then key, when ``every`` is off."""
        out: list[WindowOutput] = []
        close = self.spec.close_time
        entries = sorted(
            (close(start, entry[0]), key, start)
            for key, mine in self.windows.items()
            for start, entry in mine.items()
        )
        for _, key, start in entries:
            self._closed(key, start, self.windows[key][start], out)
            self._dirty.add((key, start))
        self.windows.clear()
        self._heap.clear()
        return out

    @property
    def open_windows(self) -> int:
        """How many windows are open."""
        return sum(len(mine) for mine in self.windows.values())

    # -- storage --------------------------------------------------------------------------

    def take_changes(self) -> dict[bytes, bytes | None]:
        """What changed since the last call, as stored keys and values (``None``: deleted)."""
        changes: dict[bytes, bytes | None] = {}
        if self._time_dirty:
            stream = _NO_TIME if self.stream is None else self.stream
            changes[_TIME_KEY] = _TIME.pack(stream, self.seq)
            self._time_dirty = False
        fresh = self._fresh
        encode = self._acc_codec.encode
        to_datum = self.aggregate.to_datum
        for key, start in self._dirty:
            mine = self.windows.get(key)
            entry = mine.get(start) if mine is not None else None
            if entry is None:
                changes[window_key(key, start)] = None
            else:
                acc = entry[1]
                raw = encode(to_datum(acc)) if fresh else acc
                changes[window_key(key, start)] = _LONG.pack(entry[0]) + raw
        self._dirty.clear()
        return changes

    def load(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Rebuild the engine from what :meth:`take_changes` stored (replacing its state)."""
        self.windows.clear()
        self._heap.clear()
        self._dirty.clear()
        self.stream = None
        self.seq = 0
        close = self.spec.close_time
        for stored, value in items:
            if stored == _TIME_KEY:
                stream, self.seq = _TIME.unpack(value)
                self.stream = None if stream == _NO_TIME else stream
            elif stored[:1] == b"w":
                key, rest = _split(stored)
                start = _from_u64(rest)
                (end,) = _LONG.unpack_from(value)
                raw = value[8:]
                acc = self._load_acc(raw)
                self.windows.setdefault(key, {})[start] = [end, acc]
                self._heap.append((close(start, end), key, start))
            else:
                self._load_other(stored, value)
        heapq.heapify(self._heap)

    def _load_acc(self, raw: bytes) -> Any:
        if self._fresh:
            return self.aggregate.from_datum(self._acc_codec.decode(raw))
        return raw

    def _load_other(self, stored: bytes, value: bytes) -> None:
        """An entry of a kind only some engines store (sliding windows' records)."""


class _TimeEngine(Engine):
    """Tumbling and hopping windows."""

    spec: Hopping

    def plan(self, key: bytes, t: int, record: Any) -> _Plan | None:
        """The windows of a record at ``t`` (see :class:`Engine`)."""
        spec = self.spec
        stream = self.stream
        if stream is None or t > stream:
            stream = t
        grace = spec.grace
        size = spec.size
        step = spec.step
        mine = self.windows.get(key)
        aggregate = self.aggregate
        if step == size:  # tumbling: one window, the hot path
            start = t - t % size
            end = start + size
            if end + grace <= stream:
                return None
            entry = mine.get(start) if mine is not None else None
            if entry is None:
                acc = aggregate.add(aggregate.initial(), record, self.seq)
            else:
                acc = aggregate.add(
                    entry[1] if self._fresh else self._acc(entry[1]), record, self.seq
                )
            plan = _Plan(key, t, stream, record)
            plan.updates.append(
                (start, end, acc, acc if self._fresh else self._store(acc), entry is None)
            )
            return plan
        if spec.last_end(t) + grace <= stream:
            return None
        add = aggregate.add
        seq = self.seq
        plan = _Plan(key, t, stream, record)
        for start in spec.starts(t):
            end = start + size
            if end + grace <= stream:
                break  # this window and the earlier ones have closed
            entry = mine.get(start) if mine is not None else None
            acc = add(aggregate.initial() if entry is None else self._acc(entry[1]), record, seq)
            plan.updates.append((start, end, acc, self._store(acc), entry is None))
        return plan


class _SessionEngine(Engine):
    """Session windows: a record joins (and may merge) the sessions within ``gap``."""

    spec: Session

    def plan(self, key: bytes, t: int, record: Any) -> _Plan | None:
        """The session a record at ``t`` makes or joins (see :class:`Engine`)."""
        spec = self.spec
        stream = self._stream_with(t)
        gap = spec.gap
        close = spec.close_time
        mine = self.windows.get(key)
        joined: list[tuple[int, list[Any]]] = []
        if mine:
            low, high = t - gap, t + gap
            for start, entry in mine.items():
                if start <= high and entry[0] >= low and close(start, entry[0]) > stream:
                    joined.append((start, entry))
        start = min([t, *(s for s, _ in joined)])
        end = max([t, *(e[0] for _, e in joined)])
        if close(start, end) <= stream:
            return None
        aggregate = self.aggregate
        if not joined:
            acc = aggregate.initial()
        else:
            joined.sort(key=lambda item: item[0])
            acc = self._acc(joined[0][1][1])
            merge = aggregate.merge
            for _, entry in joined[1:]:
                if merge is None:  # pragma: no cover - a session window requires a merge
                    raise WindowDefinitionError("merging sessions needs the aggregate's merge")
                acc = merge(acc, self._acc(entry[1]))
        acc = aggregate.add(acc, record, self.seq)
        plan = _Plan(key, t, stream, record)
        plan.removes = [s for s, _ in joined if s != start]
        # A session that grows closes later: it needs a heap entry for its new close time.
        same = any(s == start and entry[0] == end for s, entry in joined)
        plan.updates.append((start, end, acc, self._store(acc), not same))
        return plan


class _SlidingEngine(Engine):
    """Kafka Streams' sliding windows, computed from the records they hold."""

    spec: Sliding

    def __init__(
        self, spec: WindowSpec, aggregate: BoundAggregate, *, every: bool, records: Schema
    ) -> None:
        super().__init__(spec, aggregate, every=every, records=records)
        #: key -> (timestamp, arrival) -> record, and the same keys sorted
        self.records: dict[bytes, dict[tuple[int, int], Any]] = {}
        self._sorted: dict[bytes, list[tuple[int, int]]] = {}
        self._expiry: list[tuple[int, bytes, int, int]] = []
        self._dirty_records: set[tuple[bytes, int, int]] = set()

    def _fold(self, key: bytes, start: int, end: int, extra: tuple[int, int, Any] | None) -> Any:
        """The accumulator of ``key``'s window ``[start, end]``: its records in arrival
        order (``extra``, a record not taken yet, included when it falls in)."""
        order = self._sorted.get(key, [])
        records = self.records.get(key, {})
        low = bisect.bisect_left(order, (start, -1))
        high = bisect.bisect_right(order, (end, 1 << 62))
        chosen = [(seq, t, records[(t, seq)]) for t, seq in order[low:high]]
        if extra is not None and start <= extra[0] <= end:
            chosen.append((extra[1], extra[0], extra[2]))
        chosen.sort(key=lambda item: item[0])
        aggregate = self.aggregate
        acc = aggregate.initial()
        add = aggregate.add
        for seq, _, record in chosen:
            acc = add(acc, record, seq)
        return acc

    def plan(self, key: bytes, t: int, record: Any) -> _Plan | None:
        """The windows a record at ``t`` makes and joins (see :class:`Engine`)."""
        spec = self.spec
        size = spec.size
        stream = self._stream_with(t)
        close = spec.close_time
        if close(t, t + size) <= stream:
            return None  # every window that could hold it has closed

        def is_open(start: int) -> bool:
            return close(start, start + size) > stream

        mine = self.windows.get(key, {})
        order = self._sorted.get(key, [])
        created: list[int] = []
        left = t - size
        if left not in mine and is_open(left):
            created.append(left)
        # Its right window, when a record falls in it.
        right = t + 1
        if right not in mine and is_open(right):
            at = bisect.bisect_left(order, (right, -1))
            if at < len(order) and order[at][0] <= right + size:
                created.append(right)
        # The right window of the record before it, which it is the first record of.
        before = bisect.bisect_left(order, (t, -1))
        if before:
            previous = order[before - 1][0]
            start = previous + 1
            if start not in mine and t <= start + size and is_open(start) and start not in created:
                created.append(start)
        plan = _Plan(key, t, stream, record)
        seq = self.seq
        if self.every:
            touched = [s for s, entry in mine.items() if s <= t <= entry[0] and is_open(s)]
            for start in sorted({*touched, *created}):
                acc = self._fold(key, start, start + size, (t, seq, record))
                plan.updates.append((start, start + size, acc, None, start in created))
        else:
            # The record's windows are folded when they close; check now that the
            # aggregate takes it, so that a record it fails on fails here.
            self.aggregate.add(self.aggregate.initial(), record, seq)
            plan.updates.extend((s, s + size, None, None, True) for s in created)
        return plan

    def apply(self, plan: _Plan) -> list[WindowOutput]:
        """Take the record (see :class:`Engine`), and forget the records no open window
        can hold any more."""
        seq = self.seq
        out = super().apply(plan)
        key, t = plan.key, plan.t
        self.records.setdefault(key, {})[(t, seq)] = plan.record
        bisect.insort(self._sorted.setdefault(key, []), (t, seq))
        self._dirty_records.add((key, t, seq))
        heapq.heappush(self._expiry, (self._expires(t), key, t, seq))
        self._expire(self.stream if self.stream is not None else t)
        return out

    def _closed(self, key: bytes, start: int, entry: list[Any], out: list[WindowOutput]) -> None:
        if not self.every:
            acc = self._fold(key, start, entry[0], None)
            out.append(WindowOutput(key, start, entry[0], acc, True))

    def _expires(self, t: int) -> int:
        """When a record at ``t`` is no longer needed: when its right window, the last one
        it can make, closes (the windows holding it close earlier)."""
        spec = self.spec
        return spec.close_time(t + 1, t + 1 + spec.size)

    def _expire(self, stream: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= stream:
            _, key, t, seq = heapq.heappop(expiry)
            self._forget(key, t, seq)

    def _forget(self, key: bytes, t: int, seq: int) -> None:
        records = self.records.get(key)
        if records is None or records.pop((t, seq), None) is None:
            return
        order = self._sorted[key]
        del order[bisect.bisect_left(order, (t, seq))]
        if not records:
            del self.records[key]
            del self._sorted[key]
        self._dirty_records.add((key, t, seq))

    def close_all(self) -> list[WindowOutput]:
        """Close every window (see :class:`Engine`) and forget every record."""
        out = super().close_all()
        for key, records in self.records.items():
            for t, seq in records:
                self._dirty_records.add((key, t, seq))
        self.records.clear()
        self._sorted.clear()
        self._expiry.clear()
        return out

    def _store(self, acc: Any) -> Any:
        return None  # sliding windows store no accumulator: they fold their records

    def take_changes(self) -> dict[bytes, bytes | None]:
        """Windows (their ends) and records changed since the last call."""
        changes: dict[bytes, bytes | None] = {}
        if self._time_dirty:
            stream = _NO_TIME if self.stream is None else self.stream
            changes[_TIME_KEY] = _TIME.pack(stream, self.seq)
            self._time_dirty = False
        for key, start in self._dirty:
            mine = self.windows.get(key)
            entry = mine.get(start) if mine is not None else None
            changes[window_key(key, start)] = None if entry is None else _LONG.pack(entry[0])
        self._dirty.clear()
        codec = self._records
        assert codec is not None
        for key, t, seq in self._dirty_records:
            record = self.records.get(key, {}).get((t, seq))
            changes[record_key(key, t, seq)] = None if record is None else codec.encode(record)
        self._dirty_records.clear()
        return changes

    def load(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Rebuild windows and records from what was stored."""
        self.records.clear()
        self._sorted.clear()
        self._expiry.clear()
        self._dirty_records.clear()
        super().load(items)
        for order in self._sorted.values():
            order.sort()
        heapq.heapify(self._expiry)

    def _load_acc(self, raw: bytes) -> Any:
        return None

    def _load_other(self, stored: bytes, value: bytes) -> None:
        if stored[:1] != b"r":
            return
        key, rest = _split(stored)
        t, seq = _from_u64(rest[:8]), _from_u64(rest[8:16])
        codec = self._records
        assert codec is not None
        self.records.setdefault(key, {})[(t, seq)] = codec.decode(value)
        self._sorted.setdefault(key, []).append((t, seq))
        self._expiry.append((self._expires(t), key, t, seq))


def make_engine(
    spec: WindowSpec, aggregate: BoundAggregate, *, every: bool, records: Schema
) -> Engine:
    """The engine of a window of type ``spec`` (``records``: the input's schema)."""
    if isinstance(spec, Hopping):
        return _TimeEngine(spec, aggregate, every=every)
    if isinstance(spec, Session):
        if aggregate.merge is None:
            raise WindowDefinitionError(
                "a session window merges sessions, and its aggregate has no merge; give "
                "Aggregate(..., merge=...) or decorate a method with @window.merge"
            )
        return _SessionEngine(spec, aggregate, every=every)
    if isinstance(spec, Sliding):
        return _SlidingEngine(spec, aggregate, every=every, records=records)
    raise WindowDefinitionError(f"{spec!r} is not a window type")  # pragma: no cover
