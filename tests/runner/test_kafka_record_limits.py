"""Records too large for Kafka: librdkafka's size count, dead letters cut to fit, outputs
refused by the execution core (stage ``encode``) and by the broker."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from blueprint import VerifiedBlueprint, verify
from runner.kafka.dead_letters import (
    HEADERS_DROPPED_HEADER,
    TRUNCATED_HEADER,
    VALUE_SIZE_HEADER,
    fit_dead_letter,
)
from runner.kafka.logs import client_log
from runner.kafka.producing import OutputProducer
from runner.kafka.sizes import record_limit, record_overhead
from runner.runtime.executor import Executor
from runner.runtime.limits import RecordTooLarge
from runner.runtime.messages import Message

#: A port nothing listens on: produce() checks sizes before it needs a broker.
NOWHERE = "127.0.0.1:9"


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        (None, []),
        (b"k" * 1000, [("h", b"x" * 2000)]),
        (b"kk", [("a", b"1"), ("bb", b"22")]),
        (None, [("n" * 64, b"v" * 63), ("m" * 8192, b"w" * 8191), ("\u00e9", b"")]),
    ],
)
def test_record_overhead_is_what_librdkafka_counts(
    key: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    limit = 100_000
    producer = Producer(
        {"bootstrap.servers": NOWHERE, "message.max.bytes": limit, "logger": client_log}
    )
    room = limit - record_overhead(key, headers)
    try:
        producer.produce("t", b"v" * room, key, headers=headers or None)  # fits exactly
        with pytest.raises(KafkaException) as refused:
            producer.produce("t", b"v" * (room + 1), key, headers=headers or None)
        assert refused.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    finally:
        producer.purge()
        producer.flush(0)


def test_a_dead_letter_that_fits_is_left_alone_and_one_that_does_not_is_cut() -> None:
    headers = [("__connect.errors.stage", b"process")]
    value = b"v" * 500
    same_value, same_headers = fit_dead_letter(
        value, None, headers, max_bytes=1000, overhead=record_overhead
    )
    assert same_value is value and same_headers is headers

    cut, marked = fit_dead_letter(
        b"v" * 5000, b"key", headers, max_bytes=1000, overhead=record_overhead
    )
    found = dict(marked)
    assert found[VALUE_SIZE_HEADER] == b"5000"
    assert int(found[TRUNCATED_HEADER]) == len(cut) and cut == b"v" * len(cut)
    assert record_overhead(b"key", marked) + len(cut) <= 1000  # fits, with little to spare
    assert record_overhead(b"key", marked) + len(cut) >= 990

    # The original record's own headers are what does not fit: they are left out.
    original = [("trace", b"t" * 5000)]
    error = [("__connect.errors.exception.stacktrace", b"s" * 5000)]
    cut, marked = fit_dead_letter(
        b"v" * 100,
        None,
        original + error,
        max_bytes=3000,
        overhead=record_overhead,
        original_headers=1,
    )
    found = dict(marked)
    assert "trace" not in found and found[HEADERS_DROPPED_HEADER] == b"1"
    assert len(found["__connect.errors.exception.stacktrace"]) == 1000
    assert cut == b"v" * 100 and found[TRUNCATED_HEADER] == b"100"
    assert record_overhead(None, marked) + len(cut) <= 3000


MODULE = """
from pydantic import BaseModel
from streamlets import Inlet, Outlet, Streamlet


class Item(BaseModel):
    id: int
    payload: str = ""


class Source(Streamlet):
    out = Outlet(Item)

    def generate(self):
        yield Item(id=1)


class Grow(Streamlet):
    '''Makes the payload `size` characters long.'''

    inp = Inlet(Item)
    out = Outlet(Item)

    class Config(BaseModel):
        size: int = 0

    def process(self, item):
        return Item(id=item.id, payload="x" * (self.config.size or len(item.payload)))


class Many(Streamlet):
    inp = Inlet(Item)
    out = Outlet(Item)

    def process(self, item):
        return [item, item]
"""

BLUEPRINT = """
name: limits
streamlets:
  src: {class: limits_app:Source}
  grow: {class: limits_app:Grow}
  many: {class: limits_app:Many}
topics:
  items: {producers: [src.out], consumers: [grow.inp, many.inp]}
  grown: {producers: [grow.out]}
  copies: {producers: [many.out]}
  more-copies: {producers: [many.out], codec: json}
"""


@pytest.fixture
def limits_blueprint(tmp_path: Path) -> VerifiedBlueprint:
    (tmp_path / "limits_app.py").write_text(MODULE)
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT))
    return verify(str(path)).unwrap()


def _item(executor: Executor, payload: str, id: int = 1) -> Message:
    codec = executor.decoders["inp"].default
    return Message(codec.encode({"id": id, "payload": payload}), None, (), "items", 0, id)


def test_an_output_larger_than_the_producer_takes_follows_the_error_policy(
    limits_blueprint: VerifiedBlueprint,
) -> None:
    limit = record_limit({"message.max.bytes": "2000"})
    for name in ("grow", "many"):  # the one-topic fast path, and several topics
        spec = limits_blueprint.streamlets[name]
        executor = Executor(spec, limits_blueprint, record_limit=limit)
        batch = [_item(executor, "a", 1), _item(executor, "b" * 3000, 2), _item(executor, "c", 3)]
        out, dead = asyncio.run(executor.process_batch("inp", batch))
        assert [d.original.offset for d in dead] == [2], name
        assert dead[0].stage == "encode" and dead[0].error_class == "RecordTooLarge"
        assert "message.max.bytes" in dead[0].error_message and "2,000" in dead[0].error_message
        assert len(out) == (2 if name == "grow" else 8)  # all outputs of a record, or none
        # Without a limit (the in-process runner) the same batch passes.
        unlimited = Executor(spec, limits_blueprint)
        out, dead = asyncio.run(unlimited.process_batch("inp", batch))
        assert not dead


def test_a_source_record_too_large_is_dead_lettered_at_the_source(
    limits_blueprint: VerifiedBlueprint,
) -> None:
    spec = limits_blueprint.streamlets["src"]
    executor = Executor(
        spec, limits_blueprint, record_limit=record_limit({"message.max.bytes": 500})
    )
    out: list[Any] = []
    dead: list[Any] = []
    executor.encode_generated({"id": 1, "payload": "p" * 1000}, out, dead)
    executor.encode_generated({"id": 2, "payload": "ok"}, out, dead)
    assert len(out) == 1 and len(dead) == 1 and dead[0].stage == "encode"


def test_a_record_the_broker_refuses_as_too_large_names_the_setting() -> None:
    producer = OutputProducer(
        {"bootstrap.servers": NOWHERE, "message.max.bytes": 2_000_000, "logger": client_log},
        topic_names={},
        dead_letter_topic="dlq",
        app="limits",
        replica=0,
    )

    class Refused:
        def topic(self) -> str:
            return "big-topic"

        def value(self) -> bytes:
            return b"v" * 1_500_000

        def key(self) -> None:
            return None

        def headers(self) -> None:
            return None

    producer._on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), Refused())
    with pytest.raises(RecordTooLarge) as raised:
        producer.flush(0)
    message = str(raised.value)
    assert "refused a record of 1,500,036 bytes on topic 'big-topic'" in message
    assert "max.message.bytes" in message and "2,000,000" in message
    producer.close()
