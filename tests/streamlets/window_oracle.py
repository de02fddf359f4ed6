"""A brute-force computation of windowed results, to test the window engine and the runners
against: for a list of events in arrival order, which records are late, which windows are
emitted with which values (``emit="final"``), and which updates each record makes
(``emit="every"``). It follows the definitions in ``streamlets/windows/specs.py`` directly,
with lists and loops, and shares no code with the engine."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from streamlets.windows import Count, First, Hopping, Last, Max, Mean, Min, Session, Sliding, Sum
from streamlets.windows.specs import WindowSpec

#: The aggregates every test computes, over the field ``v`` (a nullable long).
AGGREGATES = {
    "n": Count(),
    "c": Count("v"),
    "s": Sum("v"),
    "m": Mean("v"),
    "lo": Min("v"),
    "hi": Max("v"),
    "f": First("v"),
    "l": Last("v"),
}


@dataclass(frozen=True)
class Event:
    """A keyed record with event time ``t`` and value ``v``."""

    key: str
    t: int
    v: int | None


#: A window as (key, start, end).
WindowId = tuple[str, int, int]


@dataclass
class Expected:
    """What the runner must give for a list of events."""

    late: list[int] = field(default_factory=list)  # arrival indexes of late records
    final: dict[WindowId, dict[str, Any]] = field(default_factory=dict)
    #: per arrival index: the windows it changed, with their values after it
    updates: dict[int, dict[WindowId, dict[str, Any]]] = field(default_factory=dict)


def values(vs: list[int | None]) -> dict[str, Any]:
    """The aggregates of ``AGGREGATES`` over values in arrival order."""
    present = [v for v in vs if v is not None]
    total = sum(present) if present else None
    return {
        "n": len(vs),
        "c": len(present),
        "s": total,
        "m": (float(sum(float(v) for v in present)) / len(present)) if present else None,
        "lo": min(present) if present else None,
        "hi": max(present) if present else None,
        "f": vs[0],
        "l": vs[-1],
    }


def stream_times(events: list[Event]) -> list[int]:
    """Stream time after each arrival: the highest timestamp so far."""
    out, now = [], None
    for e in events:
        now = e.t if now is None else max(now, e.t)
        out.append(now)
    return out


def expected(spec: WindowSpec, events: list[Event]) -> Expected:
    """The brute-force result of ``events`` (one partition) under ``spec``."""
    if isinstance(spec, Hopping):
        return _hopping(spec, events)
    if isinstance(spec, Sliding):
        return _sliding(spec, events)
    assert isinstance(spec, Session)
    return _session(spec, events)


def _hopping(spec: Hopping, events: list[Event]) -> Expected:
    stream = stream_times(events)
    result = Expected()
    contents: dict[WindowId, list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        lowest = max(e.t - spec.size + 1, 0)  # no window starts before the epoch
        first = -(-lowest // spec.step) * spec.step
        mine = [
            start for start in range(first, e.t + 1, spec.step) if start <= e.t < start + spec.size
        ]
        open_ = [s for s in mine if s + spec.size + spec.grace > stream[i]]
        if not open_:
            result.late.append(i)
            continue
        result.updates[i] = {}
        for start in open_:
            wid = (e.key, start, start + spec.size)
            contents[wid].append(i)
            result.updates[i][wid] = values([events[j].v for j in contents[wid]])
    for wid, idx in contents.items():
        result.final[wid] = values([events[j].v for j in idx])
    return result


def _sliding(spec: Sliding, events: list[Event]) -> Expected:
    stream = stream_times(events)
    size, grace = spec.size, spec.grace
    result = Expected()
    accepted = []
    for i, e in enumerate(events):
        if e.t + size + 1 + grace <= stream[i]:
            result.late.append(i)
        else:
            accepted.append(i)

    def close(start: int) -> int:
        return start + size + 1 + grace

    # Every window with the arrivals at which something would make it.
    candidates: dict[tuple[str, int], list[int]] = defaultdict(list)
    for q in accepted:
        eq = events[q]
        candidates[(eq.key, eq.t - size)].append(q)
        later = [
            r for r in accepted if events[r].key == eq.key and eq.t < events[r].t <= eq.t + 1 + size
        ]
        if later:
            candidates[(eq.key, eq.t + 1)].append(max(q, min(later)))
    created: dict[tuple[str, int], int] = {}
    for (key, start), at in candidates.items():
        first = min(at)
        if close(start) > stream[first]:
            created[(key, start)] = first
    for key, start in created:
        wid = (key, start, start + size)
        members = [
            i
            for i in accepted
            if events[i].key == key
            and start <= events[i].t <= start + size
            and stream[i] < close(start)
        ]
        result.final[wid] = values([events[i].v for i in members])
    for i in accepted:
        e = events[i]
        changed = {}
        for (key, start), first in created.items():
            if key != e.key or first > i or close(start) <= stream[i]:
                continue
            if not (start <= e.t <= start + size) and first != i:
                continue
            members = [
                j
                for j in accepted
                if j <= i and events[j].key == key and start <= events[j].t <= start + size
            ]
            changed[(key, start, start + size)] = values([events[j].v for j in members])
        result.updates[i] = changed
    return result


def _session(spec: Session, events: list[Event]) -> Expected:
    stream = stream_times(events)
    gap, grace = spec.gap, spec.grace
    result = Expected()
    sessions: dict[str, list[list[Any]]] = defaultdict(list)  # key -> [start, end, idx]

    def closed(session: list[Any], now: int) -> bool:
        return bool(session[1] + gap + 1 + grace <= now)

    for i, e in enumerate(events):
        for key, open_ in sessions.items():
            for s in [s for s in open_ if closed(s, stream[i])]:
                result.final[(key, s[0], s[1])] = values([events[j].v for j in s[2]])
                open_.remove(s)
        mine = sessions[e.key]
        joined = [s for s in mine if s[0] - gap <= e.t <= s[1] + gap]
        start = min([e.t, *(s[0] for s in joined)])
        end = max([e.t, *(s[1] for s in joined)])
        if end + gap + 1 + grace <= stream[i]:
            result.late.append(i)
            continue
        members = sorted([i, *(j for s in joined for j in s[2])])
        for s in joined:
            mine.remove(s)
        mine.append([start, end, members])
        result.updates[i] = {(e.key, start, end): values([events[j].v for j in members])}
    for key, open_ in sessions.items():
        for s in open_:
            result.final[(key, s[0], s[1])] = values([events[j].v for j in s[2]])
    return result
