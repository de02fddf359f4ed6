"""Streamlets with ``process_many(records)``: each result keeps its record's key, timestamp
and user headers, a failure stays with its record, and the runner's direct path for one
outlet gives what the routed path gives (the same streamlet with two outlets)."""

from __future__ import annotations

from typing import Any

from runner.testkit import Record, run_streamlet
from streamlets import Inlet, Outlet, Streamlet
from tests.runner.pipeline_app import Doubled, Number


class ManyDoubles(Streamlet):
    """Doubles a batch at once; refuses multiples of 5, emits nothing for multiples of 7."""

    numbers = Inlet(Number)
    out = Outlet(Doubled)

    async def process(self, n: Number) -> Any:
        return (await self.process_many([n]))[0]

    async def process_many(self, records: list[Number]) -> list[Any]:
        return [self.one(n) for n in records]

    def one(self, n: Number) -> Any:
        if n.value % 5 == 0 and n.value:
            return ValueError(f"refusing {n.value}")
        if n.value % 7 == 0 and n.value:
            return None
        if n.value % 3 == 0:
            return {"value": n.value, "doubled": 2 * n.value}  # a dict of the fields
        return Doubled(value=n.value, doubled=2 * n.value)


class ManyDoublesTwoOutlets(ManyDoubles):
    """The same with a second (unused) outlet: every result goes through routing."""

    spare = Outlet(Doubled)

    def one(self, n: Number) -> Any:
        result = super().one(n)
        if isinstance(result, dict):
            result = Doubled(**result)
        return self.out.emit(result) if isinstance(result, Doubled) else result


def inputs() -> list[Record]:
    return [
        Record(
            Number(value=i),
            key=f"k{i % 4}",
            timestamp=1_700_000_000_000 + i,
            headers={"traceparent": f"t{i}"} if i % 2 else None,
        )
        for i in range(40)
    ]


def test_results_keep_their_records_metadata_and_failures_stay_with_theirs() -> None:
    direct = run_streamlet(ManyDoubles, {"numbers": inputs()})
    routed = run_streamlet(ManyDoublesTwoOutlets, {"numbers": inputs()})
    assert direct.error is None and routed.error is None
    expected = [i for i in range(40) if not (i and (i % 5 == 0 or i % 7 == 0))]
    got = direct.records["out"]
    assert [r.value for r in got] == [Doubled(value=i, doubled=2 * i) for i in expected]
    assert [(r.key, r.headers) for r in got] == [
        (f"k{i % 4}", {"traceparent": f"t{i}".encode()} if i % 2 else {}) for i in expected
    ]
    assert [int(r.timestamp.timestamp() * 1000) for r in got] == [
        1_700_000_000_000 + i for i in expected
    ]
    assert [(r.value, r.key, r.timestamp, r.headers) for r in got] == [
        (r.value, r.key, r.timestamp, r.headers) for r in routed.records["out"]
    ]
    assert sorted(d.original.key for d in direct.dead_letters) == sorted(
        d.original.key for d in routed.dead_letters
    )
    assert [d.stage for d in direct.dead_letters] == ["process"] * 7
