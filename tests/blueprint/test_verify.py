"""Every problem code, triggered by a blueprint that has exactly that mistake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from blueprint import PROBLEM_CODES, Problem, Severity, verify
from blueprint.declarations import PARTITIONS, REPLICAS, REPLICATION_FACTOR
from blueprint.overrides import load_overrides
from blueprint.yamlsource import ALIAS_EXPANSION_LIMIT
from tests.conftest import SAMPLE_MODULE

Write = Callable[..., Path]

VALID = """
name: app
streamlets:
  src:
    class: sample_app:Source
  mid:
    class: sample_app:Pass
    config: {limit: 25}
    replicas: 2
  sink:
    class: sample_app:Sink
topics:
  raw:
    producers: [src.out]
    consumers: [mid.readings]
    partitions: 3
  clean:
    producers: [mid.out]
    consumers: [sink.readings]
"""


def codes(problems: tuple[Problem, ...]) -> list[str]:
    return [p.code for p in problems]


def only(problems: tuple[Problem, ...], code: str) -> list[Problem]:
    return [p for p in problems if p.code == code]


def test_valid_blueprint_verifies_to_a_frozen_model(write_blueprint: Write) -> None:
    result = verify(write_blueprint(VALID)).unwrap()
    assert result.name == "app"
    assert list(result.streamlets) == ["src", "mid", "sink"]
    assert result.streamlets["mid"].replicas == 2
    assert result.streamlets["mid"].config.limit == 25  # type: ignore[attr-defined]
    assert result.streamlets["mid"].on_error == "dead-letter"
    assert result.topics["raw"].partitions == 3
    assert result.topics["raw"].codec == "avro"
    assert result.inlet_topic("mid", "readings") is result.topics["raw"]
    assert result.outlet_topics("mid", "out") == (result.topics["clean"],)
    assert result.graph.number_of_nodes() == 5
    assert result.graph.has_edge(("streamlet", "src"), ("topic", "raw"))
    assert result.problems == ()
    with pytest.raises(AttributeError):
        result.name = "other"  # type: ignore[misc]
    instance = result.streamlets["mid"].create()
    assert instance.name == "mid"


def test_yaml_syntax(write_blueprint: Write) -> None:
    problems = verify(write_blueprint("name: app\nstreamlets: [a,\n")).problems
    assert codes(problems) == ["yaml-syntax"]
    assert problems[0].location is not None and problems[0].location.line >= 2


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_bytes(b"name: app\nstreamlets: \xff\xfe\n")
    problems = verify(path).problems
    assert codes(problems) == ["yaml-syntax"]
    assert problems[0].location is not None and problems[0].location.line == 2


def test_duplicate_key(write_blueprint: Write) -> None:
    text = VALID.replace(
        "  sink:\n    class: sample_app:Sink\n",
        "  sink:\n    class: sample_app:Sink\n  sink:\n    class: sample_app:Sink\n",
    )
    problems = verify(write_blueprint(text)).problems
    dup = only(problems, "duplicate-key")
    assert len(dup) == 1 and "'sink'" in dup[0].message
    assert dup[0].location is not None and dup[0].location.line == 11


def test_unknown_key_with_did_you_mean(write_blueprint: Write) -> None:
    problems = verify(
        write_blueprint(VALID.replace("    partitions: 3", "    partitons: 3"))
    ).problems
    (problem,) = only(problems, "unknown-key")
    assert "partitons" in problem.message
    assert problem.hint == "did you mean 'partitions'?"
    assert problem.location is not None and (problem.location.line, problem.location.column) == (
        15,
        5,
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("streamlets: {}\n", "no 'name'"),
        ("name: app\n", "no 'streamlets'"),
        ("name: app\nstreamlets:\n  a: {config: {}}\n", "has no 'class'"),
        ("", "empty"),
    ],
)
def test_missing_key(write_blueprint: Write, text: str, needle: str) -> None:
    problems = verify(write_blueprint(text)).problems
    assert any(p.code == "missing-key" and needle in p.message for p in problems), problems


def test_invalid_type(write_blueprint: Write) -> None:
    problems = verify(write_blueprint("name: app\nstreamlets: [a, b]\n")).problems
    (problem,) = problems
    assert problem.code == "invalid-type"
    assert "mapping" in problem.message and "a list" in problem.message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("name: app", "name: My_App"),
        ("  mid:\n", "  Mid_Stage:\n"),
        ("  clean:\n", "  'clean topic!':\n"),
    ],
)
def test_invalid_name(write_blueprint: Write, old: str, new: str) -> None:
    problems = verify(write_blueprint(VALID.replace(old, new, 1))).problems
    assert "invalid-name" in codes(problems)
    problem = only(problems, "invalid-name")[0]
    assert problem.location is not None and problem.location.line > 0


def test_duplicate_name(write_blueprint: Write) -> None:
    text = VALID.replace("  clean:\n", "  clean:\n    name: raw\n")
    problems = verify(write_blueprint(text)).problems
    (problem,) = only(problems, "duplicate-name")
    assert "Kafka topic 'raw'" in problem.message


def test_port_listed_twice(write_blueprint: Write) -> None:
    problems = verify(
        write_blueprint(VALID.replace("[sink.readings]", "[sink.readings, sink.readings]"))
    ).problems
    assert codes(problems) == ["duplicate-name"]


@pytest.mark.parametrize("value", ["sample_app.Sink", "~", "", '""', "42", "[a, b]", "'x:'"])
def test_invalid_class_path(write_blueprint: Write, value: str) -> None:
    text = VALID.replace("class: sample_app:Sink", f"class: {value}")
    problems = verify(write_blueprint(text)).problems
    (problem,) = only(problems, "invalid-class-path")
    assert problem.location is not None and problem.location.line == 10
    assert "'sink'" in problem.message and "module:Class" in problem.message
    assert problem.hint and "sensors.streamlets:Threshold" in problem.hint


def test_class_not_found(write_blueprint: Write) -> None:
    problems = verify(write_blueprint(VALID.replace("sample_app:Sink", "sample_app:Sinc"))).problems
    (problem,) = only(problems, "class-not-found")
    assert problem.hint == "did you mean 'Sink'?"
    problems = verify(
        write_blueprint(VALID.replace("sample_app:Sink", "no_such_module:Sink"))
    ).problems
    assert "class-not-found" in codes(problems)


def test_import_error_shows_the_error(write_blueprint: Write, tmp_path: Path) -> None:
    (tmp_path / "broken_mod.py").write_text("import os\nx = 1 / 0\n")
    problems = verify(write_blueprint(VALID.replace("sample_app:Sink", "broken_mod:Sink"))).problems
    (problem,) = only(problems, "import-error")
    assert "ZeroDivisionError" in problem.message
    assert "broken_mod.py:2" in problem.message


def test_import_error_missing_dependency(write_blueprint: Write, tmp_path: Path) -> None:
    (tmp_path / "needs_dep.py").write_text("import surely_not_installed_pkg\n")
    problems = verify(write_blueprint(VALID.replace("sample_app:Sink", "needs_dep:Sink"))).problems
    (problem,) = only(problems, "import-error")
    assert "surely_not_installed_pkg" in problem.message


@pytest.mark.parametrize(
    "target", ["sample_app:Weird", "sample_app:NOT_A_CLASS", "sample_app:Reading"]
)
def test_not_a_streamlet(write_blueprint: Write, target: str) -> None:
    problems = verify(write_blueprint(VALID.replace("sample_app:Sink", target))).problems
    assert "not-a-streamlet" in codes(problems)


@pytest.mark.parametrize(
    ("target", "needle"), [("NoProcess", "process()"), ("NoGenerate", "generate()")]
)
def test_invalid_streamlet(write_blueprint: Write, target: str, needle: str) -> None:
    old = "sample_app:Sink" if target == "NoProcess" else "sample_app:Source"
    problems = verify(write_blueprint(VALID.replace(old, f"sample_app:{target}"))).problems
    (problem,) = only(problems, "invalid-streamlet")
    assert needle in problem.message


def test_invalid_schema(write_blueprint: Write) -> None:
    text = VALID.replace("sample_app:Source", "sample_app:BadSchema")
    problems = verify(write_blueprint(text)).problems
    assert "invalid-schema" in codes(problems)


def test_invalid_port_ref(write_blueprint: Write) -> None:
    problems = verify(write_blueprint(VALID.replace("[src.out]", "[src]"))).problems
    (problem,) = only(problems, "invalid-port-ref")
    assert problem.location is not None and problem.location.line == 13


def test_unknown_streamlet(write_blueprint: Write) -> None:
    problems = verify(write_blueprint(VALID.replace("[sink.readings]", "[snk.readings]"))).problems
    (problem,) = only(problems, "unknown-streamlet")
    assert problem.hint == "did you mean 'sink'?"


def test_unknown_port(write_blueprint: Write) -> None:
    problems = verify(write_blueprint(VALID.replace("[mid.out]", "[mid.outt]"))).problems
    (problem,) = only(problems, "unknown-port")
    assert "has no outlet 'outt'" in problem.message
    assert problem.hint == "did you mean 'out'?"


def test_wrong_direction(write_blueprint: Write) -> None:
    problems = verify(write_blueprint(VALID.replace("[mid.out]", "[mid.readings]"))).problems
    (problem,) = only(problems, "wrong-direction")
    assert "is an inlet" in problem.message


def test_unconnected_inlet(write_blueprint: Write) -> None:
    text = VALID.replace("    consumers: [sink.readings]\n", "")
    problems = verify(write_blueprint(text)).problems
    (problem,) = only(problems, "unconnected-inlet")
    assert "sink.readings" in problem.message
    assert problem.location is not None and problem.location.line == 9


def test_inlet_on_several_topics(write_blueprint: Write) -> None:
    text = VALID.replace("[mid.readings]", "[mid.readings, sink.readings]")
    problems = verify(write_blueprint(text)).problems
    (problem,) = only(problems, "inlet-on-several-topics")
    assert problem.location is not None and problem.location.line == 18


def test_empty_topic(write_blueprint: Write) -> None:
    problems = verify(write_blueprint(VALID + "  spare: {}\n")).problems
    assert codes(problems) == ["empty-topic"]


def test_external_topic_and_unconnected_outlet_are_notes(write_blueprint: Write) -> None:
    text = VALID + "  audit:\n    producers: [mid.out]\n"
    result = verify(write_blueprint(text)).unwrap()
    assert codes(result.problems) == ["external-topic"]
    assert result.problems[0].severity is Severity.NOTE
    text = VALID.replace("  clean:\n    producers: [mid.out]\n", "  clean:\n")
    problems = verify(write_blueprint(text)).problems
    assert "unconnected-outlet" in codes(problems)


def test_incompatible_schema_names_the_path(write_blueprint: Write) -> None:
    problems = verify(
        write_blueprint(VALID.replace("sample_app:Sink", "sample_app:IntSink"))
    ).problems
    (problem,) = only(problems, "incompatible-schema")
    assert problem.message.startswith(
        "topic 'clean': sink.readings cannot read what mid.out writes:"
    )
    assert "temperature" in problem.message and "double" in problem.message
    assert problem.location is not None and problem.location.line == 18


def test_incompatible_reader_field_without_default(write_blueprint: Write) -> None:
    problems = verify(
        write_blueprint(VALID.replace("sample_app:Sink", "sample_app:NewSink"))
    ).problems
    (problem,) = only(problems, "incompatible-schema")
    assert "unit" in problem.message
    assert problem.hint


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("{limit: hot}", "limit"),
        ("{limt: 3}", "unknown config key 'limt'"),
    ],
)
def test_invalid_config(write_blueprint: Write, config: str, needle: str) -> None:
    problems = verify(write_blueprint(VALID.replace("{limit: 25}", config))).problems
    (problem,) = only(problems, "invalid-config")
    assert needle in problem.message
    assert problem.location is not None and problem.location.line == 7


def test_invalid_config_missing_required(write_blueprint: Write) -> None:
    problems = verify(
        write_blueprint(VALID.replace("sample_app:Sink", "sample_app:Needs"))
    ).problems
    (problem,) = only(problems, "invalid-config")
    assert "'url'" in problem.message and "Field required" in problem.message


def test_config_given_to_a_streamlet_without_config(write_blueprint: Write) -> None:
    text = VALID.replace(
        "    class: sample_app:Sink\n", "    class: sample_app:Sink\n    config: {x: 1}\n"
    )
    problems = verify(write_blueprint(text)).problems
    (problem,) = only(problems, "invalid-config")
    assert "unknown config key 'x'" in problem.message


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("0", "found 0"),
        ("-1", "found -1"),
        ("two", "found the string 'two'"),
        ("1.5", "found the number 1.5"),
        ("true", "found a boolean (true)"),
        ("1e22", "found the string '1e22'"),
        ("1.0e+22", "found the number 1e+22"),
        ('"3"', "found the string '3'"),
        ("~", "found nothing (null)"),
        ("1001", "is 1,001, above the limit of 1,000"),
        ("10000000000000000000000", "is a number of about 23 digits, above the limit of 1,000"),
    ],
)
def test_invalid_replicas(write_blueprint: Write, value: str, found: str) -> None:
    problems = verify(write_blueprint(VALID.replace("replicas: 2", f"replicas: {value}"))).problems
    (problem,) = problems
    assert problem.code == "invalid-replicas"
    assert problem.location is not None and problem.location.line == 8
    assert problem.message.startswith("streamlet 'mid': 'replicas' ")
    assert found in problem.message
    if "limit" in found:
        assert "a pod on Kubernetes" in problem.message
    else:
        assert "from 1 to 1,000" in problem.message


def test_replicas_hints_say_what_to_write(write_blueprint: Write) -> None:
    def hint(value: str) -> str | None:
        text = VALID.replace("replicas: 2", f"replicas: {value}")
        return verify(write_blueprint(text)).problems[0].hint

    assert hint('"3"') == "write the number without quotes: 'replicas: 3'"
    assert hint("3.0") == "write it as a whole number: 'replicas: 3'"
    assert hint("5000") == "use at most 1,000"


def test_replicas_at_the_limit_verify(write_blueprint: Write) -> None:
    result = verify(write_blueprint(VALID.replace("replicas: 2", "replicas: 1000"))).unwrap()
    assert result.streamlets["mid"].replicas == 1000


@pytest.mark.parametrize(
    ("key", "value", "found"),
    [
        ("partitions", "0", "must be a whole number from 1 to 100,000, found 0"),
        ("partitions", "100001", "is 100,001, above the limit of 100,000"),
        ("partitions", "3.0", "found the number 3.0"),
        ("partitions", "'3'", "found the string '3'"),
        ("replication_factor", "0", "must be a whole number from 1 to 32,767, found 0"),
        ("replication_factor", "32768", "is 32,768, above the limit of 32,767: Kafka"),
        ("replication_factor", "yes", "found a boolean (true)"),
    ],
)
def test_invalid_partitions(write_blueprint: Write, key: str, value: str, found: str) -> None:
    # A bad partition count is one problem: not also idle replicas for want of partitions.
    setting = f"{key}: {value}" if key == "partitions" else f"{key}: {value}\n    partitions: 3"
    problems = verify(write_blueprint(VALID.replace("partitions: 3", setting))).problems
    (problem,) = problems
    assert problem.code == "invalid-partitions"
    assert problem.location is not None and problem.location.line == 15
    assert problem.message.startswith(f"topic 'raw': '{key}' ")
    assert found in problem.message


def test_partitions_at_the_limits_verify(write_blueprint: Write) -> None:
    text = VALID.replace("partitions: 3", "partitions: 100000\n    replication_factor: 32767")
    topic = verify(write_blueprint(text)).unwrap().topics["raw"]
    assert (topic.partitions, topic.replication_factor) == (100_000, 32_767)


def test_alias_expansion(write_blueprint: Write) -> None:
    # Ten levels of ten aliases each: 10**10 copies of "lol" once written out.
    levels = ["l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    for i in range(1, 10):
        levels.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    bomb = "\n".join(f"      {line}" for line in levels)
    text = VALID.replace("config: {limit: 25}", "config:\n      limit: 25\n" + bomb)
    (problem,) = verify(write_blueprint(text)).problems
    assert problem.code == "alias-expansion"
    assert "more than 1,000,000 characters" in problem.message
    # At the alias that first crosses the limit, on its own line.
    assert problem.location is not None
    line = write_blueprint(text).read_text().splitlines()[problem.location.line - 1]
    assert line[problem.location.column - 1 :].startswith("*l")
    assert problem.message.startswith(f"with the alias {line[problem.location.column - 1 :][:3]}")


def test_alias_that_contains_itself(write_blueprint: Write) -> None:
    text = VALID.replace("config: {limit: 25}", "config: &c {limit: 25, again: *c}")
    (problem,) = verify(write_blueprint(text)).problems
    assert problem.code == "alias-expansion"
    assert "*c refers to a value that contains it" in problem.message
    assert problem.location is not None and problem.location.line == 7


def test_aliases_within_the_bound_verify(write_blueprint: Write) -> None:
    text = VALID.replace("config: {limit: 25}", "config: &cfg {limit: 25}").replace(
        "replicas: 2", "replicas: 2\n  other:\n    class: sample_app:Pass\n    config: *cfg"
    )
    text = text.replace("consumers: [mid.readings]", "consumers: [mid.readings, other.readings]")
    result = verify(write_blueprint(text)).unwrap()
    assert result.streamlets["other"].config.limit == 25  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["lots", "-1", "128m", "[1]"])
def test_invalid_resources(write_blueprint: Write, value: str) -> None:
    text = VALID.replace("replicas: 2", f"resources: {{requests: {{memory: {value}}}}}")
    (problem,) = verify(write_blueprint(text)).problems
    assert problem.code == "invalid-resources"
    assert problem.location is not None and problem.location.line == 8
    assert problem.message.startswith("streamlet 'mid': resources.requests.memory:")
    assert problem.hint


def test_unknown_codec(write_blueprint: Write) -> None:
    text = VALID.replace("partitions: 3", "codec: jsn\n    partitions: 3")
    problems = verify(write_blueprint(text)).problems
    (problem,) = problems
    assert problem.code == "unknown-codec"
    assert problem.hint == "did you mean 'json'?"


def test_json_codec_is_accepted(write_blueprint: Write) -> None:
    result = verify(write_blueprint(VALID.replace("partitions: 3", "codec: json"))).unwrap()
    assert result.topics["raw"].codec == "json"


def test_invalid_value_on_error(write_blueprint: Write) -> None:
    problems = verify(write_blueprint(VALID.replace("replicas: 2", "on_error: ignore"))).problems
    assert codes(problems) == ["invalid-value"]


def test_on_error_override(write_blueprint: Write) -> None:
    result = verify(write_blueprint(VALID.replace("replicas: 2", "on_error: skip"))).unwrap()
    assert result.streamlets["mid"].on_error == "skip"


def test_cycle_is_a_warning(write_blueprint: Write) -> None:
    text = """
    name: loop
    streamlets:
      a:
        class: sample_app:Pass
      b:
        class: sample_app:Pass
    topics:
      ab:
        producers: [a.out]
        consumers: [b.readings]
      ba:
        producers: [b.out]
        consumers: [a.readings]
    """
    result = verify(write_blueprint(text)).unwrap()
    assert codes(result.problems) == ["cycle"]
    assert result.problems[0].severity is Severity.WARNING


def test_several_inlets_with_handlers(write_blueprint: Write) -> None:
    text = """
    name: join
    streamlets:
      a: {class: sample_app:Source}
      b: {class: sample_app:Source}
      j: {class: sample_app:TwoIn}
      s: {class: sample_app:Sink}
    topics:
      l: {producers: [a.out], consumers: [j.left]}
      r: {producers: [b.out], consumers: [j.right]}
      o: {producers: [j.out], consumers: [s.readings]}
    """
    assert verify(write_blueprint(text)).ok


def test_fan_in_checks_every_producer(write_blueprint: Write) -> None:
    text = """
    name: fan-in
    streamlets:
      a: {class: sample_app:Source}
      b: {class: sample_app:Source}
      s: {class: sample_app:IntSink}
    topics:
      t: {producers: [a.out, b.out], consumers: [s.readings]}
    """
    problems = verify(write_blueprint(text)).problems
    assert [p.message.split(":")[1].strip() for p in only(problems, "incompatible-schema")] == [
        "s.readings cannot read what a.out writes",
        "s.readings cannot read what b.out writes",
    ]


def test_overrides_are_validated_with_their_location(
    write_blueprint: Write, tmp_path: Path
) -> None:
    path = write_blueprint(VALID)
    config = tmp_path / "local.yaml"
    config.write_text("mid:\n  label: y\n  limit: cold\nkafka:\n  bootstrap.servers: x\n")
    problems = verify(path, load_overrides(str(config), ["mid.label=z"])).problems
    (problem,) = problems
    assert problem.code == "invalid-config"
    assert problem.location is not None and str(problem.location) == f"{config}:3:10"
    result = verify(path, load_overrides(None, ["mid.limit=12.5"])).unwrap()
    assert result.streamlets["mid"].config.limit == 12.5  # type: ignore[attr-defined]
    problems = verify(path, load_overrides(None, ["mdi.limit=1"])).problems
    assert codes(problems) == ["unknown-streamlet"]


def test_relative_paths_in_config_resolve_against_the_blueprint(
    write_blueprint: Write, tmp_path: Path
) -> None:
    module = (
        Path(__file__).parents[2] / "examples" / "sensors" / "sensors" / "streamlets.py"
    ).read_text()
    text = """
    name: files
    streamlets:
      src: {class: sample_app:ReadingSource, config: {path: data/in.jsonl}}
      thr: {class: sample_app:Threshold}
      out: {class: sample_app:AlertFile, config: {path: /tmp/abs.jsonl}}
    topics:
      r: {producers: [src.out], consumers: [thr.readings]}
      a: {producers: [thr.alerts], consumers: [out.alerts]}
    """
    result = verify(write_blueprint(text, module=module)).unwrap()
    assert result.streamlets["src"].config.path == tmp_path / "data" / "in.jsonl"  # type: ignore[attr-defined]
    assert str(result.streamlets["out"].config.path) == "/tmp/abs.jsonl"  # type: ignore[attr-defined]


def test_every_documented_code_is_tested() -> None:
    # Codes that need a registry or a broker are tested under tests/runner or tests/integration.
    tests = Path(__file__).parent.parent
    source = "".join(path.read_text() for path in sorted(tests.rglob("test_*.py")))
    untested = [code for code in PROBLEM_CODES if f'"{code}"' not in source]
    assert untested == []


def test_the_documented_limits_are_the_enforced_ones() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    replicas = f"`replicas` is a whole number from 1 to {REPLICAS.maximum:,}"
    partitions = f"`partitions` is a whole number from 1\n  to {PARTITIONS.maximum:,}"
    factor = f"`replication_factor` one from 1 to {REPLICATION_FACTOR.maximum:,}"
    for text in (replicas, partitions, factor, f"at most {ALIAS_EXPANSION_LIMIT:,} characters"):
        assert text in readme
    assert f"1 to {REPLICAS.maximum:,}" in PROBLEM_CODES["invalid-replicas"][1]
    assert f"1 to {PARTITIONS.maximum:,}" in PROBLEM_CODES["invalid-partitions"][1]
    assert f"1 to {REPLICATION_FACTOR.maximum:,}" in PROBLEM_CODES["invalid-partitions"][1]
    assert f"{ALIAS_EXPANSION_LIMIT:,} characters" in PROBLEM_CODES["alias-expansion"][1]


def test_many_mistakes_reported_together_with_lines(write_blueprint: Write) -> None:
    text = """
    name: Bad_App
    streamlets:
      src:
        class: sample_app:Source
        config: {count: -1}
      mid:
        class: sample_app:Pass
        replicas: 0
        colour: red
      sink:
        class: sample_app:Nope
    topics:
      raw:
        producers: [src.out]
        consumers: [mid.readings, mid.out]
        codec: xml
      clean:
        producers: [mid.outlet]
    """
    problems = verify(write_blueprint(text)).problems
    found = [
        (p.code, p.location.line if p.location else 0)
        for p in problems
        if p.severity is Severity.ERROR
    ]
    assert found == [
        ("invalid-name", 1),
        ("invalid-config", 5),
        ("invalid-replicas", 8),
        ("unknown-key", 9),
        ("class-not-found", 11),
        ("wrong-direction", 15),
        ("unknown-codec", 16),
        ("unknown-port", 18),
    ]


# -- record metadata: key and timestamp fields, optional inlets, compacted topics --------

METADATA_MODULE = (
    SAMPLE_MODULE
    + """

from datetime import datetime as _datetime

from pydantic import ImportString

from streamlets import FromConfig


class Event(BaseModel):
    sensor_id: str
    code: int = 0
    raw: bytes = b""
    owner: str | None = None
    temperature: float = 0.0
    at: _datetime | None = None
    at_ms: int = 0
    label: str = ""


AVRO_EVENT = {
    "type": "record",
    "name": "AvroEvent",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        {"name": "where", "type": {"type": "record", "name": "Where", "fields": []}},
    ],
}


def make(key=None, timestamp=None, avro=False):
    class Emit(Streamlet):
        out = Outlet(AVRO_EVENT if avro else Event, key=key, timestamp=timestamp)

        def generate(self):
            return iter(())

    return Emit


def reading(key=None, timestamp=None, avro=False):
    class Read(Streamlet):
        readings = Inlet(AVRO_EVENT if avro else Event, timestamp=timestamp)

        def process(self, record):
            return None

    return Read


ByField = make(key="sensor_id")
ByCode = make(key="code")
ByBytes = make(key="raw")
ByOptional = make(key="owner", timestamp="at")
ByEpochMs = make(key="sensor_id", timestamp="at_ms")
ByFunction = make(key=lambda e: e.sensor_id)
Misspelt = make(key="sensor")
ByFloat = make(key="temperature")
TimeFromText = make(timestamp="label")
AvroById = make(key="id", timestamp="at", avro=True)
AvroByRecord = make(key="where", avro=True)
AvroTimeFromDate = make(timestamp="day", avro=True)
ReadAt = reading(timestamp="at")
ReadAtMs = reading(timestamp="at_ms")
ReadMissing = reading(timestamp="when")
NoKey = make()


class SchemaConfig(BaseModel):
    record_schema: ImportString[type[BaseModel]] | dict | None = None


class ConfiguredEmit(Streamlet):
    out = Outlet(FromConfig("record_schema"), key="id")
    Config = SchemaConfig

    def generate(self):
        return iter(())


class Control(BaseModel):
    url: str


class Served(Streamlet):
    records = Inlet(Event)
    control = Inlet(Control, optional=True)

    @records.handler
    def on_record(self, record):
        return None

    @control.handler
    def on_control(self, record):
        return None
"""
)


def one_streamlet(class_name: str, port: str = "out", config: str = "") -> str:
    topic = "producers" if port == "out" else "consumers"
    lines = [
        "name: app",
        "streamlets:",
        "  only:",
        f"    class: sample_app:{class_name}",
    ]
    if config:
        lines.append(f"    config: {config}")
    lines += ["topics:", "  t:", f"    {topic}: [only.{port}]"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("class_name", "port"),
    [
        ("ByField", "out"),
        ("ByCode", "out"),
        ("ByBytes", "out"),
        ("ByOptional", "out"),
        ("ByEpochMs", "out"),
        ("ByFunction", "out"),
        ("AvroById", "out"),
        ("ReadAt", "readings"),
        ("ReadAtMs", "readings"),
    ],
)
def test_key_and_timestamp_fields_that_fit(
    write_blueprint: Write, class_name: str, port: str
) -> None:
    result = verify(write_blueprint(one_streamlet(class_name, port), module=METADATA_MODULE))
    assert "unknown-key-field" not in codes(result.problems)
    assert result.ok


def test_a_key_naming_no_field_is_reported_at_the_streamlet_with_its_fields(
    write_blueprint: Write,
) -> None:
    path = write_blueprint(one_streamlet("Misspelt"), module=METADATA_MODULE)
    (problem,) = only(verify(path).problems, "unknown-key-field")
    assert problem.severity is Severity.ERROR
    assert problem.location is not None
    assert (problem.location.file, problem.location.line) == (str(path), 4)  # the class line
    assert "streamlet 'only'" in problem.message
    assert "key='sensor'" in problem.message and "names no field" in problem.message
    assert "sensor_id, code, raw" in problem.message  # the fields of the schema
    assert problem.hint is not None
    assert problem.hint.startswith("did you mean 'sensor_id'?")
    # the fields that would do, with their types
    assert (
        "sensor_id (string), code (long), raw (bytes), owner (null | string), at_ms (long), "
        "label (string);" in problem.hint
    )
    assert "key=lambda record" in problem.hint


@pytest.mark.parametrize(
    ("class_name", "port", "needle"),
    [
        ("ByFloat", "out", "key='temperature', a field of type double"),
        ("TimeFromText", "out", "timestamp='label', a field of type string"),
        ("AvroByRecord", "out", "key='where', a field of type record Where"),
        ("AvroTimeFromDate", "out", "timestamp='day', a field of type date"),
        ("ReadMissing", "readings", "timestamp='when', which names no field"),
    ],
)
def test_a_key_or_timestamp_field_of_the_wrong_type(
    write_blueprint: Write, class_name: str, port: str, needle: str
) -> None:
    path = write_blueprint(one_streamlet(class_name, port), module=METADATA_MODULE)
    (problem,) = only(verify(path).problems, "unknown-key-field")
    assert needle in problem.message
    assert problem.location is not None and problem.location.line == 4
    assert problem.hint is not None and "that can be the" in problem.hint


def test_an_avro_schema_lists_its_fitting_fields(write_blueprint: Write) -> None:
    path = write_blueprint(one_streamlet("AvroTimeFromDate"), module=METADATA_MODULE)
    (problem,) = only(verify(path).problems, "unknown-key-field")
    assert problem.hint is not None
    assert (
        "fields of AvroEvent that can be the timestamp: id (long), at (null | timestamp-millis)"
        in problem.hint
    )


def test_a_key_field_of_a_schema_from_config_is_checked_with_that_config(
    write_blueprint: Write,
) -> None:
    with_id = "{record_schema: {type: record, name: R, fields: [{name: id, type: string}]}}"
    ok = verify(
        write_blueprint(one_streamlet("ConfiguredEmit", config=with_id), module=METADATA_MODULE)
    )
    assert ok.ok and "unknown-key-field" not in codes(ok.problems)
    path = write_blueprint(
        one_streamlet("ConfiguredEmit", config="{record_schema: sample_app:Event}"),
        module=METADATA_MODULE,
    )
    (problem,) = only(verify(path).problems, "unknown-key-field")
    assert "key='id'" in problem.message and "Event" in problem.message
    assert problem.location is not None and problem.location.line == 4


def test_an_unconnected_optional_inlet_is_a_note(write_blueprint: Write) -> None:
    text = """
    name: app
    streamlets:
      src: {class: sample_app:ByField}
      served: {class: sample_app:Served}
    topics:
      events: {producers: [src.out], consumers: [served.records]}
    """
    result = verify(write_blueprint(text, module=METADATA_MODULE))
    assert result.ok
    (problem,) = only(result.problems, "optional-inlet-unconnected")
    assert problem.severity is Severity.NOTE
    assert "served.control" in problem.message
    assert problem.location is not None and problem.location.line == 4
    assert "unconnected-inlet" not in codes(result.problems)
    # a required inlet left unconnected is still an error
    text = text.replace("consumers: [served.records]", "consumers: []")
    assert "unconnected-inlet" in codes(
        verify(write_blueprint(text, module=METADATA_MODULE)).problems
    )


@pytest.mark.parametrize("policy", ["compact", "compact,delete", "delete, compact"])
def test_a_keyless_producer_of_a_compacted_topic_is_warned_about(
    write_blueprint: Write, policy: str
) -> None:
    text = f"""
    name: app
    streamlets:
      keyless: {{class: sample_app:NoKey}}
      keyed: {{class: sample_app:ByField}}
      function: {{class: sample_app:ByFunction}}
    topics:
      latest:
        producers: [keyless.out, keyed.out, function.out]
        config: {{cleanup.policy: "{policy}"}}
    """
    result = verify(write_blueprint(text, module=METADATA_MODULE))
    assert result.ok  # a warning
    (problem,) = only(result.problems, "keyless-compacted-producer")
    assert problem.severity is Severity.WARNING
    assert "keyless.out" in problem.message and "compacted" in problem.message
    assert "refuses a record without a key" in problem.message
    assert problem.location is not None and problem.location.line == 8  # the producers entry
    assert problem.hint is not None and 'Outlet(..., key="field")' in problem.hint


def test_a_keyless_producer_of_a_topic_that_is_not_compacted_is_fine(
    write_blueprint: Write,
) -> None:
    text = """
    name: app
    streamlets:
      keyless: {class: sample_app:NoKey}
    topics:
      all: {producers: [keyless.out], config: {cleanup.policy: delete}}
    """
    result = verify(write_blueprint(text, module=METADATA_MODULE))
    assert "keyless-compacted-producer" not in codes(result.problems)


JOIN_MODULE = """
from pydantic import BaseModel
from streamlets import Inlet, Outlet, State, Streamlet


class Order(BaseModel):
    id: int


class Customer(BaseModel):
    name: str


class Count(Streamlet):
    orders = Inlet(Order)
    more = Inlet(Order)
    n = State(int, default=0)

    def process(self, order):
        return None
"""


def write_join(write_blueprint: Write, text: str) -> Path:
    """The blueprint, with the join tests' records in shop_app.py next to it (a module name
    of its own: a config's module:Class import finds a cached sample_app first)."""
    path = write_blueprint(text)
    (path.parent / "shop_app.py").write_text(JOIN_MODULE)
    return path


JOIN = """
name: shop
streamlets:
  enrich:
    class: {cls}
    config: {{stream: "shop_app:Order", table: "shop_app:Customer"}}
topics:
  orders: {{consumers: [enrich.stream], partitions: 3}}
  customers: {{consumers: [enrich.table]{table_partitions}}}
  joined: {{producers: [enrich.joined]}}
"""


def test_not_copartitioned_for_a_join_whose_table_has_other_partitions(
    write_blueprint: Write,
) -> None:
    text = JOIN.format(cls="streamlets.library:Join", table_partitions=", partitions: 2")
    problems = verify(write_join(write_blueprint, text)).problems
    assert [p.code for p in problems if p.is_error] == ["not-copartitioned"]
    (problem,) = only(problems, "not-copartitioned")
    assert problem.location is not None and problem.location.line == 3
    assert "'customers' (2 partitions, inlet 'table')" in problem.message
    assert "'orders' (3 partitions, inlet 'stream')" in problem.message
    assert "table 'table'" in problem.message
    assert problem.hint is not None
    assert "3 for 'customers'" in problem.hint and "GlobalJoin" in problem.hint
    # No partitions: the runners make one, which differs from 3 too.
    text = JOIN.format(cls="streamlets.library:Join", table_partitions="")
    assert "not-copartitioned" in codes(verify(write_join(write_blueprint, text)).problems)


def test_copartitioned_joins_and_global_tables_verify(write_blueprint: Write) -> None:
    same = JOIN.format(cls="streamlets.library:Join", table_partitions=", partitions: 3")
    found = verify(write_join(write_blueprint, same))
    assert found.ok, found.problems
    other = JOIN.format(cls="streamlets.library:GlobalJoin", table_partitions=", partitions: 1")
    # Every replica reads all of a global table: its partitions are its own business.
    assert verify(write_join(write_blueprint, other)).ok


def test_not_copartitioned_for_a_stateful_streamlet_reading_two_topics(
    write_blueprint: Write,
) -> None:
    text = """
    name: app
    streamlets:
      count: {class: shop_app:Count}
    topics:
      a: {consumers: [count.orders], partitions: 4}
      b: {consumers: [count.more], partitions: 2}
    """
    (problem,) = only(verify(write_join(write_blueprint, text)).problems, "not-copartitioned")
    assert "keeps state (n) per input partition" in problem.message
    assert problem.hint is not None and "4 for 'b'" in problem.hint
