"""Fuzzed blueprints: whatever the file holds, verify answers with problems, never a traceback."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint import Verification, verify
from runner.cli import cli
from tests.conftest import SAMPLE_MODULE

VALID = {
    "name": "app",
    "streamlets": {
        "src": {"class": "sample_app:Source", "config": {"count": 2}},
        "mid": {"class": "sample_app:Pass", "replicas": 2},
        "sink": {"class": "sample_app:Sink"},
    },
    "topics": {
        "raw": {"producers": ["src.out"], "consumers": ["mid.readings"], "partitions": 3},
        "clean": {"producers": ["mid.out"], "consumers": ["sink.readings"]},
    },
}

names = st.one_of(
    st.sampled_from(["app", "src", "mid", "sink", "raw", "clean", "out", "readings", "class"]),
    st.text(min_size=0, max_size=12),
    st.text(alphabet="äöü€漢字🙂-_.:", min_size=1, max_size=8),
    st.text(alphabet=string.ascii_lowercase, min_size=60, max_size=300),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    names,
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(names, st.integers(), st.booleans()), children, max_size=4),
    ),
    max_leaves=20,
)


@st.composite
def mutated_blueprints(draw: st.DrawFn) -> Any:
    """A valid blueprint with a few random parts replaced by random values."""
    doc: Any = yaml.safe_load(yaml.safe_dump(VALID))
    for _ in range(draw(st.integers(1, 4))):
        node = doc
        path: list[Any] = []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(
                st.sampled_from(
                    list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
                )
            )
            path.append(key)
            node = node[key]
        if not path:
            if isinstance(doc, dict):
                doc[draw(names)] = draw(values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(values)
        elif isinstance(parent, dict):
            del parent[path[-1]]
    return doc


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


texts = st.one_of(
    mutated_blueprints().map(dump),
    values.map(dump),
    st.tuples(mutated_blueprints().map(dump), st.floats(0, 1)).map(
        lambda t: t[0][: int(len(t[0]) * t[1])]
    ),
    st.text(max_size=200),
    st.text(alphabet=":-[]{}#&*!|>'\"%@` \n\t", max_size=80),
)


def _assert_sound(result: Verification) -> None:
    if result.blueprint is not None:
        assert result.ok and not result.errors
        assert result.problems == result.blueprint.problems
    else:
        assert not result.ok and result.errors
    for problem in result.problems:
        assert problem.code and problem.message


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=texts)
def test_verify_never_raises(tmp_path_factory: Any, text: str) -> None:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    (directory / "sample_app.py").write_text(SAMPLE_MODULE)
    path = directory / "blueprint.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _assert_sound(verify(path))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(st.binary(max_size=200), texts.map(lambda t: t.encode("utf-8", "surrogatepass")))
)
def test_cli_answers_with_problems_or_usage_error(tmp_path_factory: Any, data: bytes) -> None:
    directory: Path = tmp_path_factory.mktemp("fuzzcli")
    (directory / "sample_app.py").write_text(SAMPLE_MODULE)
    path = directory / "blueprint.yaml"
    path.write_bytes(data)
    for fmt in ("text", "json"):
        result = CliRunner().invoke(cli, ["verify", str(path), "--format", fmt])
        assert result.exit_code in (0, 1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        assert "Traceback" not in result.output
