"""The Kafka streamlet process in this process, on librdkafka's mock cluster (a fast extra).

The real-broker tests are in tests/integration; this one checks the consume -> core ->
produce -> commit loop end to end in well under a second of broker time.
"""

from __future__ import annotations

import logging
import re
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from blueprint import verify
from runner.kafka import KafkaSettings, ProcessOptions, StreamletProcess, read_dead_letter_headers

MODULE = """
from pydantic import BaseModel
from streamlets import Inlet, Outlet, Streamlet


class Item(BaseModel):
    id: int


class Source(Streamlet):
    out = Outlet(Item)

    def generate(self):
        for i in range(300):
            yield Item(id=i)


class Double(Streamlet):
    inp = Inlet(Item)
    out = Outlet(Item)

    async def process(self, item):
        if item.id == 13:
            raise RuntimeError("unlucky")
        return [item, Item(id=item.id + 1000)]
"""

BLUEPRINT = """
name: mock
streamlets:
  src: {class: kafka_mock_app:Source}
  double: {class: kafka_mock_app:Double}
topics:
  items: {producers: [src.out], consumers: [double.inp]}
  doubled: {producers: [double.out]}
"""


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def mock_bootstrap() -> Iterator[str]:
    """Start a librdkafka mock cluster and return its bootstrap address."""
    capture = _Capture()
    logger = logging.getLogger("tests.mock-cluster")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    owner = Producer(
        {"bootstrap.servers": "unused:1", "test.mock.num.brokers": 1, "logger": logger}
    )
    deadline = time.monotonic() + 10
    found = None
    while found is None and time.monotonic() < deadline:
        owner.poll(0.05)
        for line in capture.lines:
            match = re.search(r"replaced with (\S+)", line)
            if match:
                found = match.group(1)
    assert found, capture.lines
    yield found
    del owner


def _read(bootstrap: str, topic: str, count: int, timeout: float = 20) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}"})
    deadline = time.monotonic() + timeout
    partitions: list[int] = []
    while not partitions and time.monotonic() < deadline:  # until the process created it
        metadata = consumer.list_topics(topic, timeout=5)
        partitions = list(metadata.topics[topic].partitions)
        time.sleep(0.05)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[Any] = []
    while len(found) < count and time.monotonic() < deadline:
        found += [m for m in consumer.consume(500, 0.1) if m.error() is None]
    consumer.close()
    return found


def test_process_loop_on_the_mock_cluster(tmp_path: Path, mock_bootstrap: str) -> None:
    (tmp_path / "kafka_mock_app.py").write_text(MODULE)
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT))
    blueprint = verify(str(path)).unwrap()
    settings = KafkaSettings.load(
        {"consumer": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}},
        bootstrap=mock_bootstrap,
        environ={},
    )
    options = ProcessOptions(create_topics=False, status_file=tmp_path / "status.json")
    # The mock cluster cannot create topics through the admin API; producing creates them.
    assert StreamletProcess(blueprint, "src", settings, options).run() == 0

    process = StreamletProcess(blueprint, "double", settings, options)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(process.run()))
    thread.start()
    try:
        out = _read(mock_bootstrap, "doubled", 598)
        dead = _read(mock_bootstrap, "mock.double.dead-letters", 1)
    finally:
        process.stop()
        thread.join(30)
    assert codes == [0]
    assert len(out) == 598, process.status
    assert process.status.state == "done"
    assert process.status.committed == {"items": 300}
    assert process.status.produced == {"doubled": 598}
    headers = read_dead_letter_headers(dead[0].headers())
    assert headers["__connect.errors.exception.class.name"] == "RuntimeError"
    assert headers["__connect.errors.exception.message"] == "unlucky"
