"""Windows on the in-process runner and through the testkit (DESIGN §9): random keyed,
out-of-order event streams through each window type with grace give what the brute-force
computation of tests/streamlets/window_oracle.py gives (windows, values, late records),
on one partition and across partitions and replicas; the code API (on_close, a handler
next to a window, aggregate hooks, keyless records, a failing hook); the open windows of
a bounded run close and emit when its input ends."""

from __future__ import annotations

import io
import json
import textwrap
from collections import Counter as Tally
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from runner.runtime.partitioning import partition_for
from runner.testkit import Record, run_blueprint, run_streamlet
from streamlets import Inlet, Outlet, Streamlet
from streamlets.library import WindowAggregate
from streamlets.meta import to_epoch_ms
from streamlets.windows import (
    Aggregate,
    Count,
    Max,
    Mean,
    Session,
    Tumbling,
    Window,
    Windowed,
)
from streamlets.windows.specs import Hopping, Sliding, WindowSpec
from tests.streamlets.test_window_engine import BASE, event_streams
from tests.streamlets.window_oracle import Event, expected

EVENT = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "t", "type": "long"},
        {"name": "v", "type": ["null", "long"]},
    ],
}
AGGREGATES = {
    "n": {"count": {}},
    "c": {"count": "v"},
    "s": {"sum": "v"},
    "m": {"mean": "v"},
    "lo": {"min": "v"},
    "hi": {"max": "v"},
    "f": {"first": "v"},
    "l": {"last": "v"},
}
NAMES = list(AGGREGATES)


def window_config(spec: WindowSpec) -> dict[str, Any]:
    """A window as a blueprint writes it."""
    if isinstance(spec, Session):
        return {"type": "session", "gap": f"{spec.gap}ms", "grace": f"{spec.grace}ms"}
    if isinstance(spec, Sliding):
        return {"type": "sliding", "size": f"{spec.size}ms", "grace": f"{spec.grace}ms"}
    if isinstance(spec, Tumbling):
        return {"type": "tumbling", "size": f"{spec.size}ms", "grace": f"{spec.grace}ms"}
    assert isinstance(spec, Hopping)
    return {
        "type": "hopping",
        "size": f"{spec.size}ms",
        "step": f"{spec.step}ms",
        "grace": f"{spec.grace}ms",
    }


def config(spec: WindowSpec, emit: str = "final") -> dict[str, Any]:
    return {
        "input": EVENT,
        "timestamp": "t",
        "window": window_config(spec),
        "aggregates": AGGREGATES,
        "emit": emit,
        "late": "dead-letter",
    }


def records(events: list[Event]) -> list[Record]:
    return [Record({"id": i, "t": e.t, "v": e.v}, key=e.key) for i, e in enumerate(events)]


def window_of(value: dict[str, Any]) -> tuple[str, int, int]:
    return (value["key"], to_epoch_ms(value["start"]), to_epoch_ms(value["end"]))


def late_ids(result: Any) -> set[int]:
    reader = fastavro.parse_schema(EVENT)
    found = set()
    for dead in result.dead_letters:
        assert dead.stage == "late" and dead.error_class == "LateRecord"
        event: Any = fastavro.schemaless_reader(io.BytesIO(dead.original.value), reader)
        found.add(event["id"])
    return found


SPECS = st.one_of(
    st.builds(
        lambda s, g: Tumbling(f"{s}ms", grace=f"{g}ms"), st.integers(1, 8), st.integers(0, 4)
    ),
    st.builds(
        lambda step, k, g: Hopping(f"{step * k}ms", f"{step}ms", grace=f"{g}ms"),
        st.integers(1, 6),
        st.integers(1, 3),
        st.integers(0, 4),
    ),
    st.builds(lambda s, g: Sliding(f"{s}ms", grace=f"{g}ms"), st.integers(1, 8), st.integers(0, 4)),
    st.builds(lambda s, g: Session(f"{s}ms", grace=f"{g}ms"), st.integers(1, 6), st.integers(0, 4)),
)


@settings(max_examples=60, deadline=None)
@given(spec=SPECS, events=event_streams())
def test_window_aggregate_matches_a_brute_force_computation(
    spec: WindowSpec, events: list[Event]
) -> None:
    result = run_streamlet(WindowAggregate, {"records": records(events)}, config=config(spec))
    assert result.error is None
    want = expected(spec, events)
    got = {window_of(v): {n: v[n] for n in NAMES} for v in result.outputs["results"]}
    assert len(got) == len(result.outputs["results"]), "a window was emitted twice"
    assert got == want.final
    assert late_ids(result) == set(want.late)
    assert result.stats.late == len(want.late)
    for record, value in zip(result.records["results"], result.outputs["results"], strict=True):
        assert record.key == value["key"]  # output key: the window's key
        assert record.timestamp == value["end"]  # output timestamp: the window's end


@settings(max_examples=40, deadline=None)
@given(spec=SPECS, events=event_streams())
def test_emit_every_sends_each_change_of_a_window_in_order(
    spec: WindowSpec, events: list[Event]
) -> None:
    result = run_streamlet(
        WindowAggregate, {"records": records(events)}, config=config(spec, emit="every")
    )
    want = expected(spec, events)
    got: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for value in result.outputs["results"]:
        got[window_of(value)].append({n: value[n] for n in NAMES})
    wanted: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for i in sorted(want.updates):
        for wid, values in want.updates[i].items():
            wanted[wid].append(values)
    assert dict(got) == dict(wanted)
    assert late_ids(result) == set(want.late)


BLUEPRINT = """\
name: windows
streamlets:
  agg:
    class: streamlets.library:WindowAggregate
    replicas: 2
    config: {config}
topics:
  events: {{consumers: [agg.records], partitions: 3}}
  results: {{producers: [agg.results]}}
"""


@settings(max_examples=15, deadline=None)
@given(spec=SPECS, events=event_streams())
def test_windows_across_partitions_and_replicas_are_per_partition(
    tmp_path_factory: pytest.TempPathFactory, spec: WindowSpec, events: list[Event]
) -> None:
    path = tmp_path_factory.mktemp("bp") / "blueprint.yaml"
    path.write_text(BLUEPRINT.format(config=json.dumps(config(spec))))
    result = run_blueprint(path, inject={"events": records(events)}, collect=["results"])
    # Stream time is per partition: each partition's events give its own windows.
    by_partition: dict[int, list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        by_partition[partition_for(e.key.encode(), 3)].append(i)
    final: dict[tuple[str, int, int], dict[str, Any]] = {}
    late: set[int] = set()
    for indexes in by_partition.values():
        want = expected(spec, [events[i] for i in indexes])
        final.update(want.final)
        late |= {indexes[j] for j in want.late}
    got = {window_of(v): {n: v[n] for n in NAMES} for v in result.topics["results"]}
    assert got == final
    assert late_ids(result) == late


# -- the code API -------------------------------------------------------------------------


class Reading(BaseModel):
    sensor_id: str
    temperature: float
    at: datetime


class Stats(BaseModel):
    sensor_id: str
    minute: datetime
    avg: float
    hi: float
    n: int


class Alert(BaseModel):
    sensor_id: str
    temperature: float


class SensorStats(Streamlet):
    """A handler (alerts) next to a window (per-minute stats), each to its own outlet."""

    readings = Inlet(Reading, timestamp="at")
    alerts = Outlet(Alert)
    stats = Outlet(Stats)
    per_minute = Window(
        Tumbling("1m", grace="5s"),
        {"avg": Mean("temperature"), "hi": Max("temperature"), "n": Count()},
    )

    def process(self, reading: Reading) -> Any:
        if reading.temperature > 30:
            return self.alerts.emit(
                Alert(sensor_id=reading.sensor_id, temperature=reading.temperature)
            )
        return None

    @per_minute.on_close
    def minute(self, window: Windowed[dict[str, Any]]) -> Any:
        return self.stats.emit(Stats(sensor_id=window.key, minute=window.start, **window.value))


NOON = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def reading(sensor: str, second: float, temperature: float) -> Record:
    at = datetime.fromtimestamp(NOON.timestamp() + second, UTC)
    return Record(Reading(sensor_id=sensor, temperature=temperature, at=at), key=sensor)


def test_a_handler_and_a_window_on_one_inlet_each_emit_to_their_outlet() -> None:
    result = run_streamlet(
        SensorStats,
        {
            "readings": [
                reading("a", 1, 20),
                reading("b", 5, 35),
                reading("a", 50, 31),
                reading("a", 66, 25),  # stream time 12:01:06 closes 12:00 (+5 s grace)
                reading("a", 59, 99),  # late: its minute has closed
                reading("b", 130, 10),
            ]
        },
    )
    assert result.error is None
    assert [(a.sensor_id, a.temperature) for a in result.outputs["alerts"]] == [
        ("b", 35),
        ("a", 31),
        ("a", 99),  # the handler still sees a late record; only the window skips it
    ]
    stats = [(s.sensor_id, s.minute.minute, s.avg, s.hi, s.n) for s in result.outputs["stats"]]
    # 12:00 closes at stream time 12:01:05 (the record at 66 s); the rest at the end.
    assert stats == [
        ("a", 0, 25.5, 31, 2),
        ("b", 0, 35, 35, 1),
        ("a", 1, 25, 25, 1),
        ("b", 2, 10, 10, 1),
    ]
    assert result.stats.late == 1
    assert result.dead_letters == []  # late="skip" (the default) counts it only
    assert [r.timestamp for r in result.records["stats"]] == [
        NOON.replace(minute=m) for m in (1, 1, 2, 3)
    ]


class Visits(BaseModel):
    clicks: int
    pages: list[str]


class Click(BaseModel):
    user: str
    page: str


class Sessions(Streamlet):
    """A user-defined aggregate whose add and merge are methods; results to the only
    outlet without an on_close hook."""

    clicks = Inlet(Click)
    sessions = Outlet(
        {
            "type": "record",
            "name": "SessionResult",
            "fields": [
                {"name": "key", "type": "string"},
                {"name": "start", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "end", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "value", "type": "long"},
            ],
        }
    )
    per_session = Window(
        Session("30s", grace="30s"),
        Aggregate(Visits, initial=lambda: Visits(clicks=0, pages=[]), result=lambda a: a.clicks),
    )

    @per_session.add
    def click(self, acc: Visits, click: Click) -> Visits:
        acc.pages.append(click.page)  # changed in place: the window hands out a copy
        return Visits(clicks=acc.clicks + 1, pages=acc.pages)

    @per_session.merge
    def merge(self, a: Visits, b: Visits) -> Visits:
        return Visits(clicks=a.clicks + b.clicks, pages=a.pages + b.pages)


def click(user: str, second: int, page: str) -> Record:
    return Record(Click(user=user, page=page), key=user, timestamp=BASE + second * 1000)


def test_user_defined_aggregate_from_methods_merges_sessions() -> None:
    result = run_streamlet(
        Sessions,
        {
            "clicks": [
                click("u", 0, "home"),
                click("u", 50, "cart"),  # a second session: 50 s after the first
                click("u", 25, "search"),  # within 30 s of both (and the grace): merges them
                click("v", 10, "home"),
                click("u", 200, "home"),
            ]
        },
    )
    assert result.error is None
    got = sorted(
        (s["key"], to_epoch_ms(s["start"]) - BASE, s["value"]) for s in result.outputs["sessions"]
    )
    assert got == [("u", 0, 3), ("u", 200_000, 1), ("v", 10_000, 1)]


def test_a_keyless_record_goes_to_the_error_policy_with_stage_state() -> None:
    result = run_streamlet(
        SensorStats,
        {
            "readings": [
                Record(Reading(sensor_id="x", temperature=1, at=NOON)),
                reading("a", 1, 2),
            ]
        },
    )
    (dead,) = result.dead_letters
    assert dead.stage == "state" and "needs a key" in dead.error_message
    assert [s.sensor_id for s in result.outputs["stats"]] == ["a"]


class Fragile(Streamlet):
    readings = Inlet(Reading, timestamp="at")
    stats = Outlet(Stats)
    per_minute = Window(
        Tumbling("1m"), {"avg": Mean("temperature"), "hi": Max("temperature"), "n": Count()}
    )

    @per_minute.on_close
    def minute(self, window: Windowed[dict[str, Any]]) -> Stats:
        if window.key == "bad":
            raise ValueError("no stats for this one")
        return Stats(sensor_id=window.key, minute=window.start, **window.value)


def test_a_failing_on_close_dead_letters_that_window_and_the_others_go_on() -> None:
    result = run_streamlet(
        Fragile, {"readings": [reading("bad", 1, 1), reading("a", 2, 2), reading("a", 70, 3)]}
    )
    assert result.error is None
    assert [(s.sensor_id, s.minute.minute) for s in result.outputs["stats"]] == [("a", 0), ("a", 1)]
    (dead,) = result.dead_letters
    assert dead.stage == "window" and dead.error_class == "ValueError"
    assert dead.original.key == b"bad"
    assert b'"window": "per_minute"' in dead.original.value


def test_open_windows_close_when_the_input_ends_and_flow_downstream(tmp_path: Path) -> None:
    """A bounded run: the last windows (never passed by stream time) reach a streamlet
    downstream of the window before the run ends."""
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            from typing import Any
            from streamlets import Inlet, Outlet, Streamlet

            MILLIS = "timestamp-millis"

            class Keep(Streamlet):
                results = Inlet(
                    {"type": "record", "name": "WindowResult", "fields": [
                        {"name": "key", "type": "string"},
                        {"name": "start", "type": {"type": "long", "logicalType": MILLIS}},
                        {"name": "end", "type": {"type": "long", "logicalType": MILLIS}},
                        {"name": "n", "type": "long"}]}
                )
                out = Outlet({"type": "record", "name": "Seen", "fields": [
                    {"name": "key", "type": "string"}, {"name": "n", "type": "long"}]})

                def process(self, record: Any) -> Any:
                    return {"key": record["key"], "n": record["n"]}
            """
        )
    )
    (tmp_path / "blueprint.yaml").write_text(
        textwrap.dedent(
            f"""
            name: flush
            streamlets:
              agg:
                class: streamlets.library:WindowAggregate
                config:
                  input: {EVENT!r}
                  timestamp: t
                  window: {{type: tumbling, size: 1h}}
                  aggregates: {{n: {{count: {{}}}}}}
              keep: {{class: app:Keep}}
            topics:
              events: {{consumers: [agg.records]}}
              results: {{producers: [agg.results], consumers: [keep.results]}}
              seen: {{producers: [keep.out]}}
            """
        )
    )
    events = [Event("a", BASE, 1), Event("b", BASE + 1, 2), Event("a", BASE + 2, 3)]
    result = run_blueprint(
        tmp_path / "blueprint.yaml", inject={"events": records(events)}, collect=["seen"]
    )
    assert result.error is None
    assert sorted((s["key"], s["n"]) for s in result.topics["seen"]) == [("a", 2), ("b", 1)]


def test_state_of_a_run_shows_user_states_not_window_entries() -> None:
    result = run_streamlet(SensorStats, {"readings": [reading("a", 1, 1)]})
    assert result.state == {}
    assert Tally(s.sensor_id for s in result.outputs["stats"]) == {"a": 1}
