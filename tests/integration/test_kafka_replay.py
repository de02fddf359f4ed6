"""Replay inlets on Kafka: every replica reads the whole control topic, from its beginning."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

from pydantic import BaseModel

from runner.kafka.status import read_status
from streamlets.codecs import codec_for
from streamlets.schema import Schema
from tests.integration.conftest import KafkaApp, KafkaTools, stop

REPLAY_APP = '''
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet


class Controls:
    """A streamlet's own Prometheus collector: how many control records it applied."""

    def __init__(self) -> None:
        self.applied = 0

    def collect(self):
        family = CounterMetricFamily("replayapp_controls", "Control records applied.")
        family.add_metric([], self.applied)
        yield family


class Number(BaseModel):
    value: int


class Scaled(BaseModel):
    value: int
    scaled: int


class Setting(BaseModel):
    factor: int


class Numbers(Streamlet):
    out = Outlet(Number)

    class Config(BaseModel):
        count: int = 60

    def generate(self) -> Iterator[Number]:
        for i in range(self.config.count):
            yield Number(value=i)


class Settings(Streamlet):
    out = Outlet(Setting)

    class Config(BaseModel):
        factor: int = 3

    def generate(self) -> Iterator[Any]:
        # The control topic is compacted: its records need a key.
        yield self.out.emit(Setting(factor=self.config.factor), key="factor")


class Scaler(Streamlet):
    """Scales numbers by the latest factor of its control inlet."""

    numbers = Inlet(Number)
    control = Inlet(Setting)
    out = Outlet(Scaled)
    replay_inlets = ("control",)

    def __init__(self, config=None, *, name=""):
        super().__init__(config, name=name)
        self.metrics = Controls()

    def setup(self) -> None:
        self.factor = 1

    @control.handler
    def on_control(self, setting: Setting) -> None:
        self.factor = setting.factor
        self.metrics.applied += 1

    @numbers.handler
    def on_number(self, n: Number) -> Scaled:
        return Scaled(value=n.value, scaled=n.value * self.factor)
'''

BLUEPRINT = """
streamlets:
  settings: {class: replayapp:Settings}
  numbers: {class: replayapp:Numbers}
  scaler: {class: replayapp:Scaler, replicas: 2}
topics:
  control:
    name: "{app}-control"
    producers: [settings.out]
    consumers: [scaler.control]
    partitions: 1
    config: {cleanup.policy: compact}
  numbers:
    name: "{app}-numbers"
    producers: [numbers.out]
    consumers: [scaler.numbers]
    partitions: 2
  scaled:
    name: "{app}-scaled"
    producers: [scaler.out]
"""


class Scaled(BaseModel):
    value: int
    scaled: int


def test_every_replica_replays_the_control_topic_written_before_it_started(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    app = kafka_app(BLUEPRINT)
    (app.directory / "replayapp.py").write_text(REPLAY_APP, encoding="utf-8")
    # The control record and the data are written by processes that have ended since.
    for source in ("settings", "numbers"):
        assert app.streamlet(source).wait(60) == 0, app.log(source)
    status = app.directory / "scaler-0.json"
    replicas = [
        app.streamlet("scaler", "--metrics-port", "0", replica=0, status=status),
        app.streamlet("scaler", replica=1),
    ]
    try:
        out = kafka.read(f"{app.name}-scaled", 60, timeout=90, settle=1.0)
        port = read_status(status).metrics_port  # type: ignore[union-attr]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    finally:
        # one at a time: Tansu can wedge a group when members leave at the same moment
        codes = [stop(p) for p in reversed(replicas)]
    assert codes == [0, 0], app.log("scaler", 0) + app.log("scaler", 1)
    codec = codec_for("avro", Schema.of(Scaled), Schema.of(Scaled))
    records = [codec.decode(m.value()) for m in out]
    assert sorted(r.value for r in records) == list(range(60))
    # Every record was scaled by the replayed factor, on both replicas (each got its
    # partition of 'numbers' but all of 'control').
    assert {r.scaled - 3 * r.value for r in records} == {0}
    for i in range(2):
        assert "replayed 1 record(s)" in app.log("scaler", i), app.log("scaler", i)
    # The streamlet's own collector is exported next to the runner's series.
    assert "replayapp_controls_total 1.0" in metrics, metrics
