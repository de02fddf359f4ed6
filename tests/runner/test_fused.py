"""Fused hops (``flow run-local --fuse``): the same outputs and dead letters as Avro hops,
and only hops where both sides have the same model and one streamlet reads the topic."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from blueprint import user_code_path, verify
from runner.runtime.fused import FusedCodec, FusedValue, fusable_topics, materialized
from runner.runtime.messages import Message
from runner.testkit import run_blueprint
from streamlets.codecs import codec_for
from streamlets.errors import EncodeError
from streamlets.schema import Schema
from tests.runner.pipeline_app import Number

HERE = Path(__file__).resolve().parent
FLOW = Path(sys.executable).parent / "flow"

BLUEPRINT = """
name: fused
streamlets:
  numbers: {class: pipeline_app:Numbers, config: {count: 300}}
  double: {class: pipeline_app:Double, replicas: 2, config: {fail_every: 7}}
  store: {class: pipeline_app:Collect, config: {path: out/doubled.jsonl}}
topics:
  numbers:
    producers: [numbers.out]
    consumers: [double.numbers]
    partitions: 2
  doubled:
    producers: [double.out]
    consumers: [store.records]
"""


def _write(tmp_path: Path, text: str = BLUEPRINT) -> Path:
    shutil.copy(HERE / "pipeline_app.py", tmp_path / "pipeline_app.py")
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _values(path: Path) -> list[int]:
    return sorted(json.loads(line)["value"] for line in path.read_text().splitlines())


def test_a_fused_run_gives_the_outputs_and_dead_letters_of_an_avro_run(tmp_path: Path) -> None:
    path = _write(tmp_path)
    out = tmp_path / "out" / "doubled.jsonl"
    results = {}
    for fuse in (False, True):
        if out.exists():
            out.unlink()
        result = run_blueprint(path, fuse=fuse)
        assert result.error is None
        results[fuse] = (_values(out), result.dead_letters)
    (plain, plain_dead), (fused, fused_dead) = results[False], results[True]
    assert fused == plain and len(plain) == 300 - 42
    # A dead letter of a fused hop holds the record's Avro bytes, as on an Avro hop.
    assert len(fused_dead) == len(plain_dead) == 42
    key = lambda d: d.original.value  # noqa: E731
    for a, b in zip(sorted(plain_dead, key=key), sorted(fused_dead, key=key), strict=True):
        assert type(b.original.value) is bytes
        assert (a.original.value, a.original.headers, a.stage) == (
            b.original.value,
            b.original.headers,
            b.stage,
        )
        assert codec_for("avro", Schema.of(Number)).decode(b.original.value).value % 7 == 0


def test_only_hops_with_one_reader_of_the_writers_model_are_fused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        name: which
        streamlets:
          numbers: {class: pipeline_app:Numbers}
          double: {class: pipeline_app:Double}
          store: {class: pipeline_app:Collect, config: {path: out/a.jsonl}}
          keep: {class: pipeline_app:CollectNumbers, config: {path: out/b.jsonl}}
        topics:
          numbers:                       # two readers: not fused
            producers: [numbers.out]
            consumers: [double.numbers, keep.numbers]
          doubled:                       # Doubled -> Doubled, one reader: fused
            producers: [double.out]
            consumers: [store.records]
        """,
    )
    verified = verify(path).unwrap()
    with user_code_path(verified.directory):
        assert fusable_topics(verified, lambda t: t.codec, set()) == {"doubled"}
        assert fusable_topics(verified, lambda t: t.codec, {"doubled"}) == set()
        assert fusable_topics(verified, lambda _: "avro-confluent", set()) == set()


def test_the_fused_codec_converts_dicts_refuses_misfits_and_reads_real_bytes() -> None:
    schema = Schema.of(Number)
    avro = codec_for("avro", schema)
    fused = FusedCodec(avro, schema)
    value = fused.encode({"value": 3})
    assert isinstance(value, FusedValue) and value.record == Number(value=3)
    assert fused.decode(value) == Number(value=3) and value.codec is avro
    with pytest.raises(EncodeError, match="value"):
        fused.encode({"value": "three"})
    assert fused.decode(avro.encode(Number(value=4))) == Number(value=4)
    message = materialized(Message(value, b"k", (("h", b"1"),)))
    assert avro.decode(message.value or b"") == Number(value=3) and message.key == b"k"
    plain = Message(b"abc")
    assert materialized(plain) is plain


def test_flow_run_local_fuse_and_its_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path)
    done = subprocess.run(
        [str(FLOW), "run-local", str(path), "--fuse", "-q", "--run-dir", str(tmp_path / "run")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(_values(tmp_path / "out" / "doubled.jsonl")) == 300 - 42
    refused = subprocess.run(
        [str(FLOW), "run-local", str(path), "--fuse", "--kafka"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2 and "--fuse is for the in-process runner" in refused.stderr
