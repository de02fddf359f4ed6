"""The avro-confluent codec and the registry adapter, without a broker: the wire bytes
checked against the format's specification independently of any registry library, and
interoperation with confluent-kafka's own AvroSerializer / AvroDeserializer on its
in-process (mock://) registry."""

from __future__ import annotations

import io
import itertools
import json
import struct
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from runner.runtime.registry import (
    RegistryConfig,
    RegistryError,
    SchemaRegistryAdapter,
    registry_client,
    registry_config,
)
from streamlets.codecs import codec_for
from streamlets.codecs.confluent import unframe
from streamlets.errors import CodecError, DecodeError
from streamlets.schema import Schema

_urls = itertools.count()


class Reading(BaseModel):
    sensor_id: str
    value: float


class ReadingV2(BaseModel):
    __avro_aliases__ = ("Reading",)
    sensor_id: str
    value: float
    unit: str = "C"


def _registry() -> SchemaRegistryAdapter:
    return SchemaRegistryAdapter(RegistryConfig({"url": f"mock://test-{next(_urls)}"}))


def test_the_wire_bytes_follow_the_specification() -> None:
    """Magic byte 0, the schema id as 4 bytes big-endian, then the Avro binary body."""
    registry = _registry()
    codec = codec_for("avro-confluent", Schema.of(Reading), topic="readings", registry=registry)
    data = codec.encode(Reading(sensor_id="s-1", value=21.5))
    assert data[0] == 0
    (schema_id,) = struct.unpack(">I", data[1:5])
    registered = registry.client.get_latest_version("readings-value")
    assert registered.schema_id == schema_id and registered.subject == "readings-value"
    writer = fastavro.parse_schema(json.loads(registered.schema.schema_str))
    assert fastavro.schemaless_reader(io.BytesIO(data[5:]), writer) == {
        "sensor_id": "s-1",
        "value": 21.5,
    }
    # The body alone is what the plain avro codec writes.
    assert data[5:] == codec_for("avro", Schema.of(Reading)).encode(
        Reading(sensor_id="s-1", value=21.5)
    )


def test_a_reader_resolves_each_records_writer_schema_by_id() -> None:
    registry = _registry()
    old = codec_for("avro-confluent", Schema.of(Reading), topic="t", registry=registry)
    new = codec_for("avro-confluent", Schema.of(ReadingV2), topic="t", registry=registry)
    both = [
        old.encode(Reading(sensor_id="a", value=1)),
        new.encode(ReadingV2(sensor_id="b", value=2, unit="K")),
    ]
    assert unframe(both[0])[0] != unframe(both[1])[0]  # two versions, two ids
    reader = codec_for(
        "avro-confluent", Schema.of(ReadingV2), Schema.of(ReadingV2), topic="t", registry=registry
    )
    assert [reader.decode(d) for d in both] == [
        ReadingV2(sensor_id="a", value=1, unit="C"),  # the reader's default fills the gap
        ReadingV2(sensor_id="b", value=2, unit="K"),
    ]


def test_bytes_not_in_the_wire_format_and_unknown_ids_are_decode_errors() -> None:
    registry = _registry()
    codec = codec_for("avro-confluent", Schema.of(Reading), topic="t", registry=registry)
    with pytest.raises(DecodeError, match="not a record in the Confluent Schema Registry wire"):
        codec.decode(codec_for("avro", Schema.of(Reading)).encode(Reading(sensor_id="x", value=1)))
    with pytest.raises(DecodeError, match="schema id 4242, which the schema registry"):
        codec.decode(b"\x00" + (4242).to_bytes(4, "big") + b"\x02x")
    with pytest.raises(CodecError, match="no schema registry is configured"):
        codec_for("avro-confluent", Schema.of(Reading), topic="t")


def test_confluent_kafkas_avro_serializer_and_deserializer_interoperate() -> None:
    registry = _registry()
    client = registry_client(registry.config.client)
    ctx = SerializationContext("readings", MessageField.VALUE)
    schema = json.dumps(Schema.of(Reading).avro)
    ours = codec_for("avro-confluent", Schema.of(Reading), topic="readings", registry=registry)
    # Theirs reads ours ...
    deserialize = AvroDeserializer(client)
    assert deserialize(ours.encode(Reading(sensor_id="s", value=3.5)), ctx) == {
        "sensor_id": "s",
        "value": 3.5,
    }
    # ... and ours reads theirs.
    serialize = AvroSerializer(client, schema)
    assert ours.decode(serialize({"sensor_id": "t", "value": 4.0}, ctx)) == Reading(
        sensor_id="t", value=4.0
    )


def test_without_auto_register_an_unknown_schema_is_an_error() -> None:
    config = RegistryConfig({"url": f"mock://test-{next(_urls)}"}, auto_register=False)
    codec = codec_for(
        "avro-confluent", Schema.of(Reading), topic="t", registry=SchemaRegistryAdapter(config)
    )
    with pytest.raises(RegistryError, match=r"did not find \(auto_register: false\)"):
        codec.encode(Reading(sensor_id="s", value=1))


def test_the_config_section_is_checked() -> None:
    assert registry_config(None) is None
    found = registry_config({"url": "http://r:8081", "basic.auth.user.info": "u:p"})
    assert found is not None and found.client["basic.auth.user.info"] == "u:p"
    for bad in ({"basic.auth.user.info": "u:p"}, {"url": "x", "auto_register": "yes"}, []):
        with pytest.raises(RegistryError):
            registry_config(bad)


# -- flow verify --registry ----------------------------------------------------------------


def test_compatibility_levels() -> None:
    from runner.runtime.registry_check import compatibility_problems

    v1 = Schema.of(Reading).avro
    v2 = {**Schema.of(ReadingV2).avro, "name": "Reading"}  # adds `unit` with a default
    v2.pop("aliases", None)
    required = {**v2, "fields": [*v2["fields"][:2], {"name": "unit", "type": "string"}]}
    assert compatibility_problems("BACKWARD", v2, [v1]) == []
    assert compatibility_problems("FORWARD", v2, [v1]) == []
    assert compatibility_problems("NONE", required, [v1]) == []
    (reason,) = compatibility_problems("BACKWARD", required, [v1])
    assert reason.startswith("it cannot read what version 1 wrote") and "unit" in reason
    assert compatibility_problems("FORWARD", required, [v1]) == []  # old readers ignore it
    assert len(compatibility_problems("FULL", required, [v1])) == 1
    # Transitive levels check every version, the others the latest only.
    assert compatibility_problems("BACKWARD", required, [v1, required]) == []
    assert len(compatibility_problems("BACKWARD_TRANSITIVE", required, [v1, required])) == 1


def test_flow_verify_registry_reports_a_schema_the_subject_would_refuse(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from runner.cli import cli

    url = f"mock://verify-{next(_urls)}"
    client = registry_client({"url": url})
    example = "examples/sensors/blueprint.yaml"
    runner = CliRunner()
    fresh = runner.invoke(cli, ["verify", example, "--registry", url])
    assert fresh.exit_code == 0, fresh.output  # no versions yet: anything may be the first

    from confluent_kafka.schema_registry import Schema as RegistrySchema

    old = {
        "type": "record",
        "name": "Reading",
        "fields": [{"name": "sensor_id", "type": "string"}],  # no temperature, no taken_at
    }
    client.register_schema("readings-value", RegistrySchema(json.dumps(old), "AVRO"))
    result = runner.invoke(cli, ["verify", example, "--registry", url, "--format", "json"])
    assert result.exit_code == 1, result.output
    (problem,) = json.loads(result.output)
    assert problem["code"] == "registry-incompatible"
    assert "topic 'readings': ingest.out" in problem["message"]
    assert "subject 'readings-value' (compatibility BACKWARD, 1 version(s))" in problem["message"]
    assert "temperature" in problem["message"]


def test_the_in_process_runner_uses_a_registry_of_its_own_for_avro_confluent_topics(
    tmp_path: Any,
) -> None:
    from runner.testkit import run_blueprint

    (tmp_path / "regapp.py").write_text(
        "from pydantic import BaseModel\n"
        "from streamlets import Inlet, Outlet, Streamlet\n\n\n"
        "class Item(BaseModel):\n    id: int\n\n\n"
        "class Items(Streamlet):\n    out = Outlet(Item)\n\n"
        "    def generate(self):\n        yield from (Item(id=i) for i in range(20))\n\n\n"
        "class Pass(Streamlet):\n    inp = Inlet(Item)\n    out = Outlet(Item)\n\n"
        "    def process(self, item):\n        return item\n"
    )
    path = tmp_path / "blueprint.yaml"
    path.write_text(
        "name: reg\nstreamlets:\n  src: {class: regapp:Items}\n  pass: {class: regapp:Pass}\n"
        "topics:\n  framed: {producers: [src.out], consumers: [pass.inp], codec: avro-confluent}\n"
        "  out: {producers: [pass.out]}\n"
    )
    result = run_blueprint(path, collect=["out"])
    assert result.error is None and not result.dead_letters
    assert [r.id for r in result.topics["out"]] == list(range(20))


def test_the_testkit_injects_and_collects_records_of_avro_confluent_topics(
    tmp_path: Any,
) -> None:
    from runner.testkit import Record, run_blueprint, run_streamlet

    (tmp_path / "regapp2.py").write_text(
        "from pydantic import BaseModel\n"
        "from streamlets import Inlet, Outlet, Streamlet\n\n\n"
        "class Item(BaseModel):\n    id: int\n\n\n"
        "class Double(Streamlet):\n    inp = Inlet(Item)\n    out = Outlet(Item)\n\n"
        "    def process(self, item):\n        return Item(id=item.id * 2)\n"
    )
    path = tmp_path / "blueprint.yaml"
    path.write_text(
        "name: reg2\nstreamlets:\n  double: {class: regapp2:Double}\n"
        "topics:\n  items: {consumers: [double.inp], codec: avro-confluent}\n"
        "  doubled: {producers: [double.out], codec: avro-confluent}\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        from regapp2 import Double, Item  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    result = run_blueprint(
        path, inject={"items": [Item(id=1), Record(Item(id=2), key="k")]}, collect=["doubled"]
    )
    assert result.error is None and not result.dead_letters
    assert [r.id for r in result.topics["doubled"]] == [2, 4]
    assert [r.key for r in result.records["doubled"]] == [None, "k"]
    alone = run_streamlet(Double, {"inp": [Item(id=3)]}, codec="avro-confluent")
    assert not alone.dead_letters
    assert [r.id for r in alone.outputs["out"]] == [6]


def test_flow_verify_registry_out_of_reach_is_one_clear_problem() -> None:
    import socket

    from click.testing import CliRunner

    from runner.cli import cli

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    example = "examples/sensors/blueprint.yaml"
    result = CliRunner().invoke(cli, ["verify", example, "--registry", url, "--format", "json"])
    assert result.exit_code == 1, result.output
    (problem,) = json.loads(result.output)
    assert problem["code"] == "registry-unreachable"
    assert url in problem["message"]
    assert "schema_registry" in problem["hint"]
