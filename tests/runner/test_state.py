"""Keyed state (DESIGN §8) on the in-process runner and the testkit: get/set/delete per
record key, failed records change nothing, keyless records go to stage ``state``, state
partitioned like the topics with replicas, ``--state-dir`` continuing a run, a source's
own state; checked against a brute-force computation over the same events."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from blueprint import verify
from runner.local import LocalRunner
from runner.testkit import Record, run_blueprint, run_streamlet
from streamlets import Inlet, Meta, Outlet, State, StateError, Streamlet


class Payment(BaseModel):
    customer: str
    amount: float


class Total(BaseModel):
    customer: str
    total: float
    count: int


class RunningTotal(Streamlet):
    """DESIGN §8's example, with a second state and a failure mode."""

    payments = Inlet(Payment)
    totals = Outlet(Total)
    spent = State(float, default=0.0)
    count = State(int, default=0)

    def process(self, payment: Payment, meta: Meta) -> Total:
        total = self.spent.get() + payment.amount
        count = self.count.get() + 1
        self.spent.set(total)
        self.count.set(count)
        if payment.amount < 0:
            raise ValueError("a negative amount")  # after set(): the changes must not stay
        return Total(customer=str(meta.key), total=total, count=count)


class AsyncRunningTotal(RunningTotal):
    """The same, as an async handler that waits in the middle (records of other keys run
    meanwhile)."""

    async def process(self, payment: Payment, meta: Meta) -> Total:  # type: ignore[override]
        total = self.spent.get() + payment.amount
        await asyncio.sleep(0)
        count = self.count.get() + 1
        self.spent.set(total)
        self.count.set(count)
        if payment.amount < 0:
            raise ValueError("a negative amount")
        return Total(customer=str(meta.key), total=total, count=count)


def payments(events: list[tuple[str, float]]) -> list[Record]:
    return [Record(Payment(customer=c, amount=a), key=c) for c, a in events]


def brute_force(
    events: list[tuple[str, float]], seed: dict[str, float] | None = None
) -> tuple[list[tuple[str, float, int]], dict[str, float], dict[str, int]]:
    """Outputs and final states computed directly: what the runner must give."""
    spent: dict[str, float] = dict(seed or {})
    count: dict[str, int] = {}
    out = []
    for customer, amount in events:
        if amount < 0:
            continue
        spent[customer] = spent.get(customer, 0.0) + amount
        count[customer] = count.get(customer, 0) + 1
        out.append((customer, spent[customer], count[customer]))
    return out, spent, count


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "carol", "dave", "eve"]),
        st.sampled_from([1.0, 2.5, 10.0, -1.0]),
    ),
    max_size=60,
)


@pytest.mark.parametrize("cls", [RunningTotal, AsyncRunningTotal])
@settings(max_examples=25, deadline=None)
@given(events=EVENTS)
def test_per_key_state_matches_a_brute_force_computation(
    cls: type[Streamlet], events: list[tuple[str, float]]
) -> None:
    result = run_streamlet(cls, {"payments": payments(events)}, state={"spent": {"bob": 5.0}})
    expected, spent, count = brute_force(events, {"bob": 5.0})
    got = [(t.customer, t.total, t.count) for t in result.outputs["totals"]]
    if cls is RunningTotal:
        assert got == expected
    else:  # per-key order holds; keys interleave as their awaits finish
        for key in {c for c, _ in events}:
            assert [g for g in got if g[0] == key] == [e for e in expected if e[0] == key]
        assert sorted(got) == sorted(expected)
    assert result.state == {"spent": spent, "count": count}
    assert len(result.dead_letters) == sum(1 for _, a in events if a < 0)
    assert {d.stage for d in result.dead_letters} <= {"process"}


def test_a_keyless_record_that_uses_state_is_dead_lettered_with_stage_state() -> None:
    result = run_streamlet(
        RunningTotal,
        {"payments": [Payment(customer="x", amount=1.0), *payments([("alice", 2.0)])]},
    )
    assert [t.customer for t in result.outputs["totals"]] == ["alice"]
    (dead,) = result.dead_letters
    assert dead.stage == "state"
    assert dead.error_class == "StateError"
    assert "needs the record's key" in dead.error_message
    assert "key='field'" in dead.error_message  # it names the fix


class Seen(Streamlet):
    """First time a key is seen: a model-valued state, delete, and a mutable default."""

    payments = Inlet(Payment)
    firsts = Outlet(Payment)
    first = State(Payment)
    history = State(list[float], default=[])

    def process(self, payment: Payment) -> Payment | None:
        history = self.history.get()
        history.append(payment.amount)
        self.history.set(history)
        if payment.amount == 0:
            self.first.delete()  # forget the key: it is new again
            return None
        first = self.first.get()
        if first is None:
            self.first.set(payment)
            payment.amount = -1.0  # changing a set value afterwards changes nothing stored
            return payment
        return None


def test_model_states_delete_and_defaults_that_are_not_shared() -> None:
    events = [("a", 1.0), ("b", 2.0), ("a", 3.0), ("a", 0.0), ("a", 4.0)]
    result = run_streamlet(Seen, {"payments": payments(events)})
    assert [(p.customer, p.amount) for p in result.outputs["firsts"]] == [
        ("a", -1.0),
        ("b", -1.0),
        ("a", -1.0),
    ]
    assert result.state["first"] == {
        "a": Payment(customer="a", amount=4.0),
        "b": Payment(customer="b", amount=2.0),
    }
    assert result.state["history"] == {"a": [1.0, 3.0, 0.0, 4.0], "b": [2.0]}


def test_state_outside_a_runner_says_how_to_test_it() -> None:
    with pytest.raises(StateError, match=r"outside a runner.*run_streamlet"):
        RunningTotal().process(Payment(customer="a", amount=1.0), None)  # type: ignore[arg-type]


def test_seeding_an_unknown_state_is_refused() -> None:
    with pytest.raises(Exception, match=r"no state.*spend"):
        run_streamlet(RunningTotal, {"payments": []}, state={"spend": {"a": 1.0}})


def test_a_value_that_does_not_fit_the_schema_fails_the_record_with_stage_state() -> None:
    class Wrong(Streamlet):
        payments = Inlet(Payment)
        out = Outlet(Payment)
        count = State(int, default=0)

        def process(self, payment: Payment) -> Payment:
            self.count.set("many")  # type: ignore[arg-type]
            return payment

    result = run_streamlet(Wrong, {"payments": payments([("a", 1.0)])})
    assert result.outputs["out"] == []
    (dead,) = result.dead_letters
    assert dead.stage == "state"
    assert "does not fit its schema" in dead.error_message


APP = """
from collections.abc import Iterator

from pydantic import BaseModel

from streamlets import Inlet, Meta, Outlet, State, Streamlet


class Payment(BaseModel):
    customer: str
    amount: float


class Total(BaseModel):
    customer: str
    total: float
    instance: str


class Payments(Streamlet):
    out = Outlet(Payment, key="customer")
    next_index = State(int, default=0)   # a source's position: where to go on

    class Config(BaseModel):
        count: int = 300

    def generate(self) -> Iterator[Payment]:
        start = self.next_index.get()
        for i in range(start, start + self.config.count):
            self.next_index.set(i + 1)
            yield Payment(customer=f"c{i % 7}", amount=float(i))


class Totals(Streamlet):
    payments = Inlet(Payment)
    out = Outlet(Total)
    spent = State(float, default=0.0)

    def process(self, payment: Payment, meta: Meta) -> Total:
        total = self.spent.get() + payment.amount
        self.spent.set(total)
        return Total(customer=payment.customer, total=total, instance=str(id(self)))
"""

BLUEPRINT = """
name: totals
streamlets:
  payments: {class: state_app:Payments}
  totals: {class: state_app:Totals, replicas: 2}
topics:
  payments: {producers: [payments.out], consumers: [totals.payments], partitions: 3}
  totals: {producers: [totals.out]}
"""


def write(tmp_path: Path) -> Path:
    (tmp_path / "state_app.py").write_text(APP)
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT).lstrip())
    return path


def expected_totals(first: int, last: int) -> dict[str, float]:
    spent: dict[str, float] = {}
    for i in range(first, last):
        spent[f"c{i % 7}"] = spent.get(f"c{i % 7}", 0.0) + float(i)
    return spent


def test_state_is_partitioned_like_the_topic_with_replicas(tmp_path: Path) -> None:
    result = run_blueprint(write(tmp_path), collect=["totals"])
    assert result.error is None
    assert result.state["totals"]["spent"] == expected_totals(0, 300)
    rows = result.topics["totals"]
    # Each key is one replica's: its running total grows record by record there.
    for key in {r.customer for r in rows}:
        mine = [r for r in rows if r.customer == key]
        assert len({r.instance for r in mine}) == 1
        assert [r.total for r in mine] == sorted(r.total for r in mine)
    assert len({r.instance for r in rows}) == 2
    assert result.state["payments"]["next_index"] == {"": 300}


def run_local(path: Path, state_dir: Path) -> Any:
    verified = verify(path).unwrap()
    runner = LocalRunner(verified, collect=["totals"], state_dir=state_dir)
    return asyncio.run(runner.run())


def test_a_state_dir_lets_a_second_run_continue_where_the_first_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    state_dir = tmp_path / "state"
    first = run_local(path, state_dir)
    assert first.error is None
    assert first.state["totals"]["spent"] == {
        k.encode(): v for k, v in expected_totals(0, 300).items()
    }
    assert sorted(p.name for p in (state_dir / "totals").iterdir()) == [
        "partition-0",
        "partition-1",
        "partition-2",
    ]
    second = run_local(path, state_dir)
    assert second.error is None
    # The source went on from record 300, and the totals kept counting.
    assert second.state["payments"]["next_index"] == {b"": 600}
    assert second.state["totals"]["spent"] == {
        k.encode(): v for k, v in expected_totals(0, 600).items()
    }


def test_the_run_local_command_takes_a_state_dir(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from runner.cli import cli

    path = write(tmp_path)
    state_dir = tmp_path / "state"
    args = ["run-local", str(path), "-q", "--state-dir", str(state_dir)]
    args += ["--run-dir", str(tmp_path / "run")]
    for _ in range(2):
        outcome = CliRunner().invoke(cli, args)
        assert outcome.exit_code == 0, outcome.output
    assert (state_dir / "payments" / "replica-0").is_dir()
    verified = verify(path).unwrap()
    again = LocalRunner(verified, state_dir=state_dir)
    manager_values = asyncio.run(again.run()).state
    assert manager_values["payments"]["next_index"] == {b"": 900}


def test_generated_records_and_state_iterators_are_plain(tmp_path: Path) -> None:
    """A source's state: one value, seeded and read back under the key ''."""

    class Counter(Streamlet):
        out = Outlet(Payment)
        n = State(int, default=0)

        def generate(self) -> Iterator[Payment]:
            for _ in range(3):
                self.n.set(self.n.get() + 1)
                yield Payment(customer="a", amount=float(self.n.get()))

    result = run_streamlet(Counter, state={"n": {"": 10}})
    assert [p.amount for p in result.outputs["out"]] == [11.0, 12.0, 13.0]
    assert result.state == {"n": {"": 13}}


class Ahead(Streamlet):
    """A source that keeps its position and is far quicker than its runner."""

    out = Outlet(Payment)
    position = State(int, default=0)

    def generate(self) -> Iterator[Payment]:
        for i in range(self.position.get(), 3000):
            self.position.set(i + 1)
            yield Payment(customer="a", amount=float(i))


class AsyncAhead(Ahead):
    async def generate(self) -> Any:  # type: ignore[override]
        for i in range(self.position.get(), 300):
            self.position.set(i + 1)
            yield Payment(customer="a", amount=float(i))


@pytest.mark.parametrize("source", [Ahead, AsyncAhead])
def test_a_source_position_is_applied_with_the_records_it_follows(
    source: type[Streamlet],
) -> None:
    """The pump hands a position over with the batch whose last record it follows, never
    earlier, though a sync source's thread encodes batches ahead of a slow runner."""
    from runner.runtime.executor import Executor
    from runner.runtime.sources import SourcePump
    from runner.testkit import streamlet_blueprint

    blueprint = streamlet_blueprint(source)
    executor = Executor(blueprint.streamlets["streamlet"], blueprint)
    manager = executor.state
    assert manager is not None
    published = 0
    seen: list[tuple[int, int]] = []

    async def publish(out: list[Any], dead: list[Any]) -> None:
        nonlocal published
        published += len(out)
        seen.append((published, dict(manager.values("position"))[b""]))
        manager.checkpoint()
        await asyncio.sleep(0.002)  # a slow transport: the source's thread runs ahead

    async def run() -> None:
        await SourcePump(executor, publish, asyncio.Event(), batch_size=50).run()

    asyncio.run(run())
    assert published == (3000 if source is Ahead else 300)
    assert all(position == count for count, position in seen), seen[:5]
    assert len(seen) > 1
