"""The window engine against a brute-force computation (tests/streamlets/window_oracle.py):
random keyed, out-of-order event streams through each window type with grace, with the
engine stored and rebuilt from what it stored at random points (a restart), give the same
late records, final windows and per-record updates as the offline computation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlets.schema import Schema
from streamlets.windows import Hopping, Session, Sliding, Tumbling
from streamlets.windows.aggregates import bind_aggregates
from streamlets.windows.engine import Engine, make_engine
from streamlets.windows.specs import WindowSpec
from tests.streamlets.window_oracle import AGGREGATES, Event, Expected, expected

INPUT = Schema.of(
    {"type": "record", "name": "E", "fields": [{"name": "v", "type": ["null", "long"]}]}
)
BASE = 1_700_000_000_000  # event times near now: windows never reach before the epoch


@st.composite
def event_streams(draw: st.DrawFn) -> list[Event]:
    """Keyed events in arrival order: a time line with jitter, so that some arrive out of
    order (some far enough to be late)."""
    n = draw(st.integers(0, 40))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    jitter = draw(st.lists(st.integers(-12, 2), min_size=n, max_size=n))
    vs = draw(st.lists(st.one_of(st.none(), st.integers(-5, 20)), min_size=n, max_size=n))
    events, now = [], BASE
    for key, step, back, v in zip(keys, steps, jitter, vs, strict=True):
        now += step
        events.append(Event(key, max(now + back, 0), v))
    return events


SIZES, GRACES = st.integers(1, 8), st.integers(0, 4)
SPECS = st.one_of(
    st.builds(lambda s, g: Tumbling(f"{s}ms", grace=f"{g}ms"), SIZES, GRACES),
    st.integers(1, 8).flatmap(
        lambda step: st.builds(
            lambda k, g: Hopping(f"{step * k}ms", f"{step}ms", grace=f"{g}ms"),
            st.integers(1, 3),
            GRACES,
        )
    ),
    st.builds(lambda s, g: Sliding(f"{s}ms", grace=f"{g}ms"), SIZES, GRACES),
    st.builds(lambda s, g: Session(f"{s}ms", grace=f"{g}ms"), st.integers(1, 6), GRACES),
)


def run(
    spec: WindowSpec, events: list[Event], every: bool, restarts: set[int]
) -> tuple[list[int], list[tuple[Any, ...]], dict[int, dict[Any, Any]]]:
    """Events through an engine (rebuilt from its stored changes before each arrival in
    ``restarts``); returns late arrivals, final windows in emission order, updates."""
    aggregate = bind_aggregates(AGGREGATES, INPUT)
    engine: Engine = make_engine(spec, aggregate, every=every, records=INPUT)
    store: dict[bytes, bytes] = {}
    late: list[int] = []
    final: list[tuple[Any, ...]] = []
    updates: dict[int, dict[Any, Any]] = {}

    def collect(outputs: list[Any], at: int) -> None:
        for out in outputs:
            wid = (out.key.decode(), out.start, out.end)
            if out.final:
                final.append((*wid, aggregate.result(out.acc)))
            else:
                updates.setdefault(at, {})[wid] = aggregate.result(out.acc)

    for i, e in enumerate(events):
        if i in restarts:
            for key, value in engine.take_changes().items():
                if value is None:
                    store.pop(key, None)
                else:
                    store[key] = value
            engine = make_engine(spec, aggregate, every=every, records=INPUT)
            engine.load(sorted(store.items()))
        plan = engine.plan(e.key.encode(), e.t, {"v": e.v})
        if plan is None:
            late.append(i)
            continue
        updates.setdefault(i, {})
        collect(engine.apply(plan), i)
    collect(engine.close_all(), len(events))
    return late, final, updates


def check(spec: WindowSpec, events: list[Event], every: bool, restarts: set[int]) -> None:
    want: Expected = expected(spec, events)
    late, final, updates = run(spec, events, every, restarts)
    assert late == want.late
    if every:
        assert final == []
        assert {i: u for i, u in updates.items() if i < len(events)} == want.updates
    else:
        got = {(k, s, e): v for k, s, e, v in final}
        assert len(got) == len(final), "a window was emitted twice"
        assert got == want.final
        assert all(not u for u in updates.values())


@settings(max_examples=300, deadline=None)
@given(spec=SPECS, events=event_streams(), every=st.booleans(), data=st.data())
def test_windows_match_a_brute_force_computation(
    spec: WindowSpec, events: list[Event], every: bool, data: st.DataObject
) -> None:
    restarts = set(data.draw(st.lists(st.integers(0, max(len(events) - 1, 0)), max_size=3)))
    check(spec, events, every, restarts)


def test_tumbling_closes_at_end_plus_grace_and_a_record_after_that_is_late() -> None:
    spec = Tumbling("10ms", grace="5ms")
    events = [Event("a", 100, 1), Event("a", 114, 2), Event("a", 115, 3), Event("a", 109, 4)]
    late, final, _ = run(spec, events, every=False, restarts=set())
    # 115 >= 110 + 5 closes [100, 110): the record at 109 arrives after that.
    assert late == [3]
    assert final[0][:3] == ("a", 100, 110) and final[0][3]["n"] == 1
    check(spec, events, every=False, restarts=set())


def test_session_records_within_the_gap_merge_two_sessions() -> None:
    spec = Session("10ms", grace="10ms")  # [100] is still open at stream time 120
    events = [Event("a", 100, 1), Event("a", 120, 2), Event("a", 110, 3)]
    _, final, _ = run(spec, events, every=False, restarts=set())
    (only,) = final
    assert only[:3] == ("a", 100, 120)
    assert only[3]["n"] == 3 and only[3]["f"] == 1 and only[3]["l"] == 3


def test_sliding_windows_are_kafka_streams_left_and_right_windows() -> None:
    spec = Sliding("10ms")
    events = [Event("a", 100, 1), Event("a", 105, 2)]
    _, final, _ = run(spec, events, every=False, restarts=set())
    bounds = sorted(f[:3] for f in final)
    # left windows [90, 100] and [95, 105]; the first record's right window [101, 111]
    assert bounds == [("a", 90, 100), ("a", 95, 105), ("a", 101, 111)]


@pytest.mark.parametrize("spec", [Tumbling("10ms"), Sliding("10ms"), Session("10ms")])
def test_stored_windows_survive_a_restart_in_the_middle(spec: WindowSpec) -> None:
    events = [Event(k, BASE + t, t) for t in range(0, 40, 3) for k in ("a", "b")]
    check(spec, events, every=False, restarts={5, 11, 17})
