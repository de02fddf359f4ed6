"""Pure parts of the Kafka runner: settings, naming, topic plans, dead-letter headers, CLI."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from blueprint import VerifiedBlueprint, verify
from runner.cli import cli
from runner.kafka import (
    KafkaSettings,
    KafkaSettingsError,
    dead_letter_headers,
    dead_letter_topic,
    group_id,
    kafka_topic,
    plan_topics,
    read_dead_letter_headers,
    redact,
)
from runner.kafka.logs import ConnectionFailures
from runner.kafka.options import (
    ProcessOptions,
    RunnerSettingsError,
    runner_section,
    sets_from_environ,
)
from runner.kafka.status import ProcessStatus, merge_status, read_status, write_status
from runner.runtime.messages import DeadLetter, Message
from runner.runtime.stats import StreamletStats

MODULE = """
from pydantic import BaseModel
from streamlets import Inlet, Outlet, Streamlet


class Item(BaseModel):
    id: int


class Source(Streamlet):
    out = Outlet(Item)

    def generate(self):
        yield Item(id=1)


class Pass(Streamlet):
    inp = Inlet(Item)
    out = Outlet(Item)

    def process(self, item):
        return item
"""

BLUEPRINT = """
name: units
streamlets:
  src: {class: kafka_units_app:Source}
  pass: {class: kafka_units_app:Pass, on_error: skip}
topics:
  items:
    producers: [src.out]
    consumers: [pass.inp]
    partitions: 4
    replication_factor: 1
    config: {retention.ms: 60000}
  passed:
    name: units-passed-v2
    producers: [pass.out]
"""


@pytest.fixture
def blueprint(tmp_path: Path) -> VerifiedBlueprint:
    (tmp_path / "kafka_units_app.py").write_text(MODULE)
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT))
    return verify(str(path)).unwrap()


def test_names_follow_the_blueprint(blueprint: VerifiedBlueprint) -> None:
    assert kafka_topic(blueprint.topics["items"]) == "items"
    assert kafka_topic(blueprint.topics["passed"]) == "units-passed-v2"
    assert group_id(blueprint, "pass") == "units.pass"
    assert dead_letter_topic(blueprint, "pass") == "units.pass.dead-letters"
    assert dead_letter_topic(blueprint, "pass", "dlq-{app}-{streamlet}") == "dlq-units-pass"


def test_topic_plans_carry_blueprint_settings(blueprint: VerifiedBlueprint) -> None:
    plans = {p.name: p for p in plan_topics(blueprint)}
    items = plans["items"]
    assert (items.partitions, items.replication_factor) == (4, 1)
    assert items.config == {"retention.ms": "60000"}
    assert "units-passed-v2" in plans
    # Dead-letter topics only for streamlets whose policy writes dead letters.
    assert "units.src.dead-letters" in plans
    assert "units.pass.dead-letters" not in plans
    only_pass = {p.name for p in plan_topics(blueprint, ["pass"])}
    assert only_pass == {"items", "units-passed-v2"}


def test_settings_merge_file_environment_and_bootstrap() -> None:
    section = {
        "bootstrap.servers": "file:9092",
        "security.protocol": "SASL_SSL",
        "enable.ssl.certificate.verification": False,
        "consumer": {"fetch.min.bytes": 1024},
        "producer": {"linger.ms": 20},
    }
    environ = {
        "STREAMLETS_KAFKA_SASL_PASSWORD": "hunter2",
        "STREAMLETS_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "STREAMLETS_KAFKA_SSL_ENGINE__ID": "x",
        "OTHER": "ignored",
    }
    settings = KafkaSettings.load(section, environ=environ)
    assert settings.bootstrap == "file:9092"
    consumer = settings.for_consumer(**{"group.id": "g", "session.timeout.ms": 10000})
    assert consumer["session.timeout.ms"] == "6000"  # the user's setting wins
    assert consumer["fetch.min.bytes"] == "1024" and consumer["group.id"] == "g"
    assert "linger.ms" not in consumer
    assert settings.for_producer()["linger.ms"] == "20"
    assert settings.common["enable.ssl.certificate.verification"] == "false"
    assert settings.common["sasl.password"] == "hunter2"
    assert settings.common["ssl.engine_id"] == "x"
    assert KafkaSettings.load(section, bootstrap="cli:1", environ={}).bootstrap == "cli:1"
    embedded = settings.with_bootstrap("127.0.0.1:1")  # as for the embedded broker
    assert embedded.bootstrap == "127.0.0.1:1"
    assert embedded.for_consumer()["fetch.min.bytes"] == "1024"
    assert settings.bootstrap == "file:9092"  # a copy: the original is unchanged


def test_secrets_are_redacted() -> None:
    shown = redact(
        {
            "sasl.password": "p",
            "ssl.key.password": "p",
            "sasl.oauthbearer.client.secret": "s",
            "sasl.jaas.config": "j",
            "ssl.key.location": "/etc/key.pem",
            "sasl.username": "me",
        }
    )
    assert shown["sasl.password"] == shown["ssl.key.password"] == "***"
    assert shown["sasl.oauthbearer.client.secret"] == shown["sasl.jaas.config"] == "***"
    assert shown["ssl.key.location"] == "/etc/key.pem"
    assert shown["sasl.username"] == "me"


def test_bad_settings_say_what_to_do() -> None:
    with pytest.raises(KafkaSettingsError, match="--bootstrap HOST:PORT"):
        KafkaSettings.load(None, environ={}).require_bootstrap()
    with pytest.raises(KafkaSettingsError, match="must be a mapping"):
        KafkaSettings.load(["a"], environ={})
    with pytest.raises(KafkaSettingsError, match="scalar value"):
        KafkaSettings.load({"sasl": {"mechanism": "PLAIN"}}, environ={})


def test_runner_section_is_validated() -> None:
    assert runner_section({"grace_period": "5", "batch_size": 10}) == {
        "grace_period": 5.0,
        "batch_size": 10,
    }
    with pytest.raises(RunnerSettingsError, match="unknown key 'grace'"):
        runner_section({"grace": 1})
    with pytest.raises(RunnerSettingsError, match="must be a int"):
        runner_section({"batch_size": "many"})


def test_process_options_layer_the_command_line_over_the_runner_section() -> None:
    section = {"batch_size": 10, "grace_period": 5.0, "dead_letter_topic": "{app}.dlq"}
    options = ProcessOptions.layered(section, batch_size=20, grace_period=None, replica=2)
    assert options.batch_size == 20  # the command line wins
    assert options.grace_period == 5.0  # then the section
    assert options.commit_interval == ProcessOptions().commit_interval  # then the default
    assert options.dead_letter_template == "{app}.dlq"
    assert options.replica == 2
    assert options.metrics_port == 9090
    assert ProcessOptions.layered({"metrics_port": 1234}, metrics=False).metrics_port is None
    assert ProcessOptions.layered({"metrics_port": 1234}, metrics_port=0).metrics_port == 0


def test_dead_letter_headers_follow_kafka_connect() -> None:
    original = Message(b"\x00bad", b"k", (("trace", b"1"),), "items", 2, 41)
    dead = DeadLetter("pass", "decode", "ValueError", "bad byte", "Traceback ...", original, "inp")
    headers = dead_letter_headers(dead, app="units", replica=3)
    assert headers[0] == ("trace", b"1")  # the original headers come first, unchanged
    found = read_dead_letter_headers(headers)
    assert found == {
        "__connect.errors.topic": "items",
        "__connect.errors.partition": "2",
        "__connect.errors.offset": "41",
        "__connect.errors.connector.name": "units.pass",
        "__connect.errors.task.id": "3",
        "__connect.errors.stage": "decode",
        "__connect.errors.class.name": "pass",
        "__connect.errors.exception.class.name": "ValueError",
        "__connect.errors.exception.message": "bad byte",
        "__connect.errors.exception.stacktrace": "Traceback ...",
        "__streamlets.errors.streamlet": "pass",
        "__streamlets.errors.inlet": "inp",
    }


def test_status_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    assert read_status(path) is None
    stats = StreamletStats(records_in=5, records_out=4, errors=1, by_stage={"decode": 1})
    write_status(
        path, ProcessStatus("pass", 1, stats=stats, produced={"items": 3}, committed={"x": 2})
    )
    status = read_status(path)
    assert status is not None and status.produced == {"items": 3} and status.replica == 1
    assert status.stats == stats


def test_statuses_of_incarnations_merge_counters_and_progress() -> None:
    first = ProcessStatus("pass", 0, stats=StreamletStats(records_in=3, by_stage={"process": 1}))
    first.produced = {"out": 3}
    second = ProcessStatus("pass", 0, stats=StreamletStats(records_in=2, by_stage={"process": 2}))
    second.produced, second.committed = {"out": 1}, {"items": 2}
    total = merge_status(merge_status(None, first), second)
    assert total.stats.records_in == 5 and total.stats.by_stage == {"process": 3}
    assert total.produced == {"out": 4} and total.committed == {"items": 2}
    assert first.stats.records_in == 3  # the parts are not changed


def test_run_streamlet_usage_errors(
    blueprint: VerifiedBlueprint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMLETS_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["run-streamlet", blueprint.path, "pass"])
    assert result.exit_code == 2
    assert "no Kafka broker given" in result.output
    result = runner.invoke(cli, ["run-streamlet", blueprint.path, "nope", "--bootstrap", "x:1"])
    assert result.exit_code == 2
    assert "has no streamlet 'nope'" in result.output and "pass, src" in result.output
    result = runner.invoke(cli, ["run-local", blueprint.path, "--bootstrap", "x:1"])
    assert result.exit_code == 2 and "--bootstrap needs --kafka" in result.output
    config = Path(blueprint.directory) / "registry.yaml"
    config.write_text("schema_registry: {url: 'http://r:8081', auto_register: maybe}\n")
    for command in (["run-streamlet", blueprint.path, "pass"], ["run-local", blueprint.path]):
        args = [*command, "--kafka"] if command[0] == "run-local" else command
        result = runner.invoke(cli, [*args, "--bootstrap", "x:1", "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert "schema_registry.auto_register must be true or false" in result.output
    assert "run-streamlet" in runner.invoke(cli, ["--help"]).output
    monkeypatch.setenv("STREAMLETS_SETS", "store.path=x")  # not a JSON list
    result = runner.invoke(cli, ["run-streamlet", blueprint.path, "pass", "--bootstrap", "x:1"])
    assert result.exit_code == 2 and "$STREAMLETS_SETS must be a JSON list" in result.output


def test_set_values_in_the_environment_are_a_json_list() -> None:
    assert sets_from_environ({}) == [] and sets_from_environ({"STREAMLETS_SETS": ""}) == []
    assert sets_from_environ({"STREAMLETS_SETS": '["a.b=1", "a.c=x y"]'}) == ["a.b=1", "a.c=x y"]
    for bad in ('{"a.b": 1}', "[1]", "not json"):
        with pytest.raises(RunnerSettingsError, match="JSON list"):
            sets_from_environ({"STREAMLETS_SETS": bad})


def test_consumer_errors_are_skipped_logged_or_raised(caplog: pytest.LogCaptureFixture) -> None:
    from confluent_kafka import KafkaError, KafkaException

    from runner.kafka.consumed import skip_consumer_error

    logger = logging.getLogger("test.consumed")
    with caplog.at_level(logging.WARNING, logger="test.consumed"):
        skip_consumer_error(KafkaError(KafkaError._PARTITION_EOF), logger, "c")
        assert caplog.records == []
        skip_consumer_error(KafkaError(KafkaError._TRANSPORT, "down"), logger, "pass-0: consumer")
        (record,) = caplog.records
        assert record.getMessage().startswith("pass-0: consumer: ")
    with pytest.raises(KafkaException):
        skip_consumer_error(KafkaError(KafkaError._FATAL, "bad", fatal=True), logger, "c")


def test_connection_failures_are_logged_once_per_interval() -> None:
    now = [0.0]
    failures = ConnectionFailures(interval=10, clock=lambda: now[0])

    def line(facility: str, text: str = "Connect to ipv4#127.0.0.1:1 failed") -> logging.LogRecord:
        return logging.LogRecord(
            "client",
            logging.ERROR,
            __file__,
            1,
            "%s [%s] %s",
            (facility, "c#consumer-1", text),
            None,
        )

    first = line("FAIL")
    assert failures.filter(first)
    assert first.levelno == logging.WARNING  # the client goes on by itself
    assert first.getMessage() == (
        "connection to a Kafka broker failed (client c#consumer-1): Connect to ipv4#127.0.0.1:1 "
        "failed; retrying (such failures are logged once every 10 s)"
    )
    for t in range(1, 10):  # a few attempts a second: held back
        now[0] = t
        assert not failures.filter(line("FAIL"))
    assert failures.filter(line("COMMIT", "other news"))  # other lines pass as they are
    now[0] = 10.5
    again = line("FAIL")
    assert failures.filter(again)
    assert "(9 more failure(s) since the last such line)" in again.getMessage()
