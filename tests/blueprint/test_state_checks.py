"""verify's state checks (DESIGN §8): ``invalid-state``, ``not-copartitioned``,
``idle-replicas`` and ``state: {storage: ...}`` with ``unused-state-storage``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from blueprint import Problem, Severity, verify
from blueprint.stateful import changelog_topic
from runner.runtime.state import changelog_topic as runtime_changelog_topic
from tests.conftest import SAMPLE_MODULE

Write = Callable[..., Path]

STATE_MODULE = (
    SAMPLE_MODULE
    + """

from streamlets import State


class Count(Streamlet):
    readings = Inlet(Reading)
    out = Outlet(Reading)
    seen = State(int, default=0)

    def process(self, reading: Reading) -> Reading:
        self.seen.set(self.seen.get() + 1)
        return reading


class CountTwo(Streamlet):
    left = Inlet(Reading)
    right = Inlet(Reading)
    out = Outlet(Reading)
    seen = State(int, default=0)

    @left.handler
    def on_left(self, r: Reading) -> Reading:
        return r

    @right.handler
    def on_right(self, r: Reading) -> Reading:
        return r


class CountWithControl(CountTwo):
    replay_inlets = ("right",)


class NoAvro(Streamlet):
    readings = Inlet(Reading)
    bad = State(complex)

    def process(self, reading: Reading) -> None:
        return None


class BadDefault(Streamlet):
    readings = Inlet(Reading)
    count = State(int, default="many")

    def process(self, reading: Reading) -> None:
        return None


class Umlaut(Streamlet):
    readings = Inlet(Reading)
    zähler = State(int, default=0)

    def process(self, reading: Reading) -> None:
        return None


class Position(Streamlet):
    out = Outlet(Reading)
    offset = State(int, default=0)

    def generate(self) -> Iterator[Reading]:
        return iter(())
"""
)

ONE = """
name: app
streamlets:
  src: {class: sample_app:Source}
  count:
    class: sample_app:{cls}
{extra}
topics:
  raw:
    producers: [src.out]
    consumers: [count.readings]
    partitions: 3
"""


def found(problems: tuple[Problem, ...]) -> tuple[Problem, ...]:
    """The errors and warnings (the notes say the outlets of these blueprints are unread)."""
    return tuple(p for p in problems if p.severity is not Severity.NOTE)


def one(write_blueprint: Write, cls: str, extra: str = "") -> tuple[Problem, ...]:
    text = ONE.replace("{cls}", cls).replace("{extra}", extra)
    return found(verify(write_blueprint(text, module=STATE_MODULE)).problems)


def test_a_state_whose_schema_has_no_avro_form(write_blueprint: Write) -> None:
    (problem,) = one(write_blueprint, "NoAvro")
    assert problem.code == "invalid-state"
    assert problem.severity is Severity.ERROR
    assert problem.location is not None and problem.location.line == 5  # the class: line
    assert problem.message.startswith("streamlet 'count': state 'bad' of NoAvro: ")
    assert "no Avro form" in problem.message and "complex" in problem.message
    assert problem.hint is not None and "pydantic model" in problem.hint


def test_a_state_whose_default_does_not_fit(write_blueprint: Write) -> None:
    (problem,) = one(write_blueprint, "BadDefault")
    assert problem.code == "invalid-state"
    assert problem.location is not None and problem.location.line == 5
    assert "its default 'many' does not fit its schema" in problem.message
    assert problem.hint is not None and "default that the schema accepts" in problem.hint


def test_a_state_whose_changelog_topic_name_kafka_refuses(write_blueprint: Write) -> None:
    (problem,) = one(write_blueprint, "Umlaut")
    assert problem.code == "invalid-state"
    assert "'app.count.zähler.changelog', which is not a valid Kafka topic name" in (
        problem.message
    )
    assert problem.hint is not None and "rename the state" in problem.hint


def test_a_valid_state_and_its_storage_reach_the_model(write_blueprint: Write) -> None:
    text = ONE.replace("{cls}", "Count").replace("{extra}", "    state: {storage: 2Gi}")
    result = verify(write_blueprint(text, module=STATE_MODULE)).unwrap()
    assert found(result.problems) == ()
    spec = result.streamlets["count"]
    assert spec.stateful and spec.state_storage == "2Gi"
    assert not result.streamlets["src"].stateful
    assert result.streamlets["src"].state_storage is None


@pytest.mark.parametrize(
    ("value", "found", "hint"),
    [
        ("1m", "is a fraction of a byte", "did you mean '1Mi'?"),
        ("lots", "is not a Kubernetes quantity", "e.g. 1Gi or 20Gi"),
        ("0", "is no space at all", "storage: 1Gi"),
        ("1", "'1' is 1 byte, too small for a state store", "did you mean '1Gi'?"),
        ("512Ki", "524,288 bytes, too small", "storage: 1Gi"),
        ("true", "must be a quantity, found a boolean", "storage: 1Gi"),
        ("[1Gi]", "must be a quantity, found a list", "storage: 1Gi"),
    ],
)
def test_a_bad_storage_size(write_blueprint: Write, value: str, found: str, hint: str) -> None:
    (problem,) = one(write_blueprint, "Count", f"    state:\n      storage: {value}")
    assert problem.code == "invalid-state"
    assert problem.location is not None and problem.location.line == 7  # the storage: line
    assert problem.message.startswith("streamlet 'count': state.storage: ")
    assert found in problem.message
    assert problem.hint is not None and hint in problem.hint


def test_the_state_section_is_checked_like_the_others(write_blueprint: Write) -> None:
    (problem,) = one(write_blueprint, "Count", "    state: {storag: 1Gi}")
    assert (problem.code, problem.hint) == ("unknown-key", "did you mean 'storage'?")
    (problem,) = one(write_blueprint, "Count", "    state: 1Gi")
    assert problem.code == "invalid-type"
    assert one(write_blueprint, "Count", "    state: {}") == ()


def test_storage_for_a_streamlet_without_state_is_a_warning(write_blueprint: Write) -> None:
    (problem,) = one(write_blueprint, "Pass", "    state: {storage: 1Gi}")
    assert problem.code == "unused-state-storage"
    assert problem.severity is Severity.WARNING
    assert problem.location is not None and problem.location.line == 6  # the state: key
    assert "Pass declares no State" in problem.message
    assert "no state volume" in problem.message
    assert problem.hint is not None and "remove 'state:'" in problem.hint


TWO = """
name: app
streamlets:
  a: {class: sample_app:Source}
  b: {class: sample_app:Source}
  join:
    class: sample_app:{cls}
    replicas: {replicas}
topics:
  left:
    producers: [a.out]
    consumers: [join.left]
    partitions: {left}
  right:
    producers: [b.out]
    consumers: [join.right]
{right}
"""


def two(
    write_blueprint: Write, cls: str, left: int, right: int | None, replicas: int = 1
) -> tuple[Problem, ...]:
    text = (
        TWO.replace("{cls}", cls)
        .replace("{left}", str(left))
        .replace("{right}", "" if right is None else f"    partitions: {right}")
        .replace("{replicas}", str(replicas))
    )
    return found(verify(write_blueprint(text, module=STATE_MODULE)).problems)


def test_a_stateful_streamlet_reading_topics_of_different_partition_counts(
    write_blueprint: Write,
) -> None:
    (problem,) = two(write_blueprint, "CountTwo", 3, None)
    assert problem.code == "not-copartitioned"
    assert problem.severity is Severity.ERROR
    assert problem.location is not None and problem.location.line == 5  # the streamlet
    assert problem.message == (
        "streamlet 'join': it keeps state (seen) per input partition, but reads topics with "
        "different partition counts: 'left' (3 partitions), 'right' (1 partition, as it sets "
        "no 'partitions:'); a key's records then arrive on partitions with different "
        "numbers, and its state would be split between stores (and replicas)"
    )
    assert problem.hint is not None
    assert problem.hint.startswith("give every topic it reads the same 'partitions:' (e.g. 3 ")
    assert "for 'right'" in problem.hint
    (problem,) = two(write_blueprint, "CountTwo", 2, 6)
    assert problem.code == "not-copartitioned"
    assert "(e.g. 6 for 'left')" in (problem.hint or "")


def test_co_partitioned_topics_replayed_inlets_and_stateless_streamlets_pass(
    write_blueprint: Write,
) -> None:
    assert two(write_blueprint, "CountTwo", 4, 4) == ()
    # every replica reads all of a replayed inlet: its partitions do not matter
    assert two(write_blueprint, "CountWithControl", 4, 1) == ()
    # without state, records of one key need not meet on one replica
    assert two(write_blueprint, "TwoIn", 4, 1) == ()


def test_replicas_beyond_the_input_partitions_are_idle(write_blueprint: Write) -> None:
    (problem,) = one(write_blueprint, "Pass", "    replicas: 4")
    assert problem.code == "idle-replicas"
    assert problem.severity is Severity.WARNING
    assert problem.location is not None
    assert (problem.location.line, problem.location.column) == (6, 15)  # the replicas value
    assert problem.message == (
        "streamlet 'count': it has 4 replicas, but its input topic 'raw' (3 partitions): "
        "1 replica gets no records (a consumer group gives each partition to one replica)"
    )
    assert problem.hint == (
        "lower 'replicas:' to 3, or give 'raw' 'partitions: 4'; partitions bound how far a "
        "streamlet scales"
    )
    assert one(write_blueprint, "Pass", "    replicas: 3") == ()
    assert one(write_blueprint, "Count", "    replicas: 3") == ()


def test_idle_replicas_of_a_stateful_streamlet_count_one_topic(write_blueprint: Write) -> None:
    # stateless: a consumer group spreads the partitions of both topics, 2 + 2
    assert two(write_blueprint, "TwoIn", 2, 2, replicas=4) == ()
    (problem,) = two(write_blueprint, "TwoIn", 2, 2, replicas=5)
    assert problem.code == "idle-replicas"
    assert "its input topics have 4 partitions together" in problem.message
    assert "1 more partition between them" in (problem.hint or "")
    # stateful: the state of partition p of both topics is one replica's
    (problem,) = two(write_blueprint, "CountTwo", 2, 2, replicas=4)
    assert problem.code == "idle-replicas"
    assert "its state is partitioned like its input, 'left' (2 partitions): 2 replicas get" in (
        problem.message
    )
    assert (problem.hint or "").startswith("lower 'replicas:' to 2, or give 'left' and 'right'")


def test_idle_replicas_without_partitions_say_the_default(write_blueprint: Write) -> None:
    text = ONE.replace("{cls}", "Pass").replace("{extra}", "    replicas: 2")
    text = text.replace("    partitions: 3\n", "")
    (problem,) = found(verify(write_blueprint(text, module=STATE_MODULE)).problems)
    assert problem.code == "idle-replicas"
    assert "'raw' (1 partition, as it sets no 'partitions:')" in problem.message


def test_sources_have_no_input_to_idle_on(write_blueprint: Write) -> None:
    text = """
    name: app
    streamlets:
      src: {class: sample_app:Position, replicas: 3}
      sink: {class: sample_app:Sink}
    topics:
      raw: {producers: [src.out], consumers: [sink.readings]}
    """
    result = verify(write_blueprint(text, module=STATE_MODULE)).unwrap()
    assert result.problems == ()
    assert result.streamlets["src"].stateful


def test_the_changelog_name_verify_checks_is_the_runners() -> None:
    assert changelog_topic("app", "count", "seen") == "app.count.seen.changelog"
    assert changelog_topic("a", "b", "c") == runtime_changelog_topic("a", "b", "c")
