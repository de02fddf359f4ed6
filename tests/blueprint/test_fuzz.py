"""Fuzzed blueprints: whatever the file holds, verify answers with problems, never a traceback;
and what verify accepts, run-local runs to its end with the replicas it declares."""

from __future__ import annotations

import contextlib
import copy
import json
import random
import signal
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint import PROBLEM_CODES, Verification, verify
from blueprint.declarations import REPLICAS
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


# -- a seeded mutator: 1,000 hostile blueprints through verify and run-local ------------

FUZZ_MODULE = """
from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, Streamlet

#: One entry per streamlet instance a run set up: what "replicas" really started.
STARTED: list[str] = []


class Reading(BaseModel):
    sensor_id: str
    temperature: float


class Source(Streamlet):
    out = Outlet(Reading)

    class Config(BaseModel):
        count: int = Field(3, ge=0, le=50)  # bounded, so that every valid run ends soon

    def setup(self) -> None:
        STARTED.append(self.name)

    def generate(self) -> Iterator[Reading]:
        for i in range(self.config.count):
            yield Reading(sensor_id=f"s{i % 4}", temperature=20.0 + i)


class Pass(Streamlet):
    readings = Inlet(Reading)
    out = Outlet(Reading)

    class Config(BaseModel):
        limit: float = 30.0
        label: str = "x"

    def setup(self) -> None:
        STARTED.append(self.name)

    def process(self, reading: Reading) -> Reading | None:
        return reading if reading.temperature <= self.config.limit else None


class Sink(Streamlet):
    readings = Inlet(Reading)

    def setup(self) -> None:
        STARTED.append(self.name)

    def process(self, reading: Reading) -> None:
        return None


class Weird:
    pass


NOT_A_CLASS = 42
"""

FUZZ_VALID: dict[str, Any] = {
    "name": "fuzz",
    "streamlets": {
        "src": {"class": "fuzz_app:Source", "config": {"count": 5}},
        "mid": {"class": "fuzz_app:Pass", "config": {"limit": 22.5}, "replicas": 2},
        "sink": {"class": "fuzz_app:Sink"},
        "tap": {"class": "fuzz_app:Sink", "on_error": "skip"},
    },
    "topics": {
        "raw": {
            "producers": ["src.out"],
            "consumers": ["mid.readings", "tap.readings"],
            "partitions": 3,
            "replication_factor": 1,
        },
        "clean": {"producers": ["mid.out"], "consumers": ["sink.readings"], "codec": "json"},
    },
}

HOSTILE_NUMBERS: list[Any] = [
    0, 1, 2, 3, 1000, 1001, -1, 1.5, 3.0, 1e22, 10**22, 2**63, "3", "1e22", True, None,
    float("inf"), float("nan"), [], {},
]  # fmt: skip
CLASSES: list[Any] = [
    "fuzz_app:Source", "fuzz_app:Pass", "fuzz_app:Sink", "fuzz_app:Weird",
    "fuzz_app:NOT_A_CLASS", "fuzz_app:Nope", "fuzz_app.Sink", "no_such_module:X", ":", "",
    None, 42, ["fuzz_app:Sink"], {"class": "fuzz_app:Sink"},
]  # fmt: skip
PORTS = [
    f"{s}.{p}" for s in ("src", "mid", "sink", "tap", "ghost") for p in ("out", "readings", "nope")
] + ["src", "src.out.x", "", 7, None]
KEYS = [
    "class", "config", "replicas", "on_error", "processing", "resources", "partitions",
    "replication_factor", "codec", "producers", "consumers", "name", "description", "colour",
]  # fmt: skip
SCALARS: list[Any] = [
    None, "", "x", "é漢🙂", "a" * 5000, -(2**70), 2**70, 0.1, True, "~", "null", "yes",
    "dead-letter", "exactly-once", "json", "xml", "100m", "1Gi", {"limits": {"cpu": "1e9"}},
]  # fmt: skip
BOMB = (
    "[&b0 [x, x, x, x, x, x, x, x, x, x], &b1 [*b0, *b0, *b0, *b0, *b0, *b0, *b0, *b0],"
    " &b2 [*b1, *b1, *b1, *b1, *b1, *b1, *b1, *b1], &b3 [*b2, *b2, *b2, *b2, *b2, *b2, *b2],"
    " &b4 [*b3, *b3, *b3, *b3, *b3, *b3, *b3, *b3], &b5 [*b4, *b4, *b4, *b4, *b4, *b4, *b4],"
    " &b6 [*b5, *b5, *b5, *b5, *b5, *b5, *b5, *b5], &b7 [*b6, *b6, *b6, *b6, *b6, *b6, *b6]]"
)


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) of ``doc``: the places a mutation can change."""
    found: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node))
        for key in keys:
            found.append((node, key))
            if isinstance(node[key], (dict, list)):
                stack.append(node[key])
    return found


def _value(rng: random.Random) -> Any:
    pool = rng.choice([HOSTILE_NUMBERS, CLASSES, PORTS, SCALARS])
    return copy.deepcopy(rng.choice(pool))


def _mutate_data(rng: random.Random, doc: Any) -> None:
    def bodies_of(section: str) -> list[dict[str, Any]]:
        found = doc.get(section)
        return [v for v in found.values() if isinstance(v, dict)] if isinstance(found, dict) else []

    bodies, topics = bodies_of("streamlets"), bodies_of("topics")
    kind = rng.randrange(8)
    if kind == 0 and bodies:  # the numbers the issue found unbounded
        rng.choice(bodies)["replicas"] = rng.choice(HOSTILE_NUMBERS)
    elif kind == 1 and topics:
        rng.choice(topics)[rng.choice(["partitions", "replication_factor"])] = rng.choice(
            HOSTILE_NUMBERS
        )
    elif kind == 2 and bodies:
        rng.choice(bodies)["class"] = copy.deepcopy(rng.choice(CLASSES))
    elif kind == 3 and topics:
        topic = rng.choice(topics)
        side = rng.choice(["producers", "consumers"])
        refs = topic.get(side) if isinstance(topic.get(side), list) else []
        refs.append(rng.choice(PORTS))
        if len(refs) > 1 and rng.random() < 0.5:
            refs.pop(rng.randrange(len(refs)))
        topic[side] = refs
    elif kind == 4 and bodies:
        config = rng.choice(bodies).setdefault("config", {})
        if isinstance(config, dict):
            config[rng.choice(["count", "limit", "label", "lable"])] = rng.choice(
                [*HOSTILE_NUMBERS, 51, 50, 2.5, "hot"]
            )
    else:
        slots = _slots(doc)
        if not slots:
            return
        container, key = rng.choice(slots)
        action = rng.randrange(3)
        if action == 0:
            container[key] = _value(rng)
        elif action == 1 and isinstance(container, dict):
            del container[key]
        elif isinstance(container, dict):
            container[rng.choice(KEYS)] = _value(rng)


def _vary_data(rng: random.Random, doc: Any) -> None:
    """A change that keeps the blueprint valid (or nearly): so that many of them run."""
    streamlets, topics = doc["streamlets"], doc["topics"]
    kind = rng.randrange(6)
    if kind == 0:
        streamlets[rng.choice(list(streamlets))]["replicas"] = rng.choice([1, 2, 3, 7, 1000])
    elif kind == 1:
        topic = topics[rng.choice(list(topics))]
        topic["partitions"] = rng.choice([1, 2, 3, 8, 100_000])
        topic["replication_factor"] = rng.choice([1, 3, 32_767])
    elif kind == 2:
        streamlets["src"].setdefault("config", {})["count"] = rng.randint(0, 50)
    elif kind == 3:
        name = f"extra{rng.randrange(100)}"
        streamlets[name] = {"class": "fuzz_app:Sink", "replicas": rng.randint(1, 3)}
        topics[rng.choice(list(topics))]["consumers"].append(f"{name}.readings")
    elif kind == 4:
        body = streamlets[rng.choice(list(streamlets))]
        body["on_error"] = rng.choice(["dead-letter", "skip", "fail"])
        body["processing"] = rng.choice(["at-least-once", "exactly-once"])
    else:
        topics[rng.choice(list(topics))]["codec"] = rng.choice(["avro", "json"])


def _mutate_text(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    kind = rng.randrange(6)
    if kind == 0 and lines:  # an alias bomb as some value
        i = rng.randrange(len(lines))
        head = lines[i].split(":", 1)[0]
        lines[i] = f"{head}: {BOMB}" if ":" in lines[i] else lines[i]
    elif kind == 1 and lines:  # an alias that contains itself
        i = rng.randrange(len(lines))
        if lines[i].rstrip().endswith(":"):
            lines[i] += " &me"
            lines.insert(i + 1, " " * (len(lines[i]) - len(lines[i].lstrip()) + 2) + "x: *me")
    elif kind == 2 and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])  # a duplicate key, most of the time
    elif kind == 3 and lines:
        del lines[rng.randrange(len(lines))]
    elif kind == 4:
        cut = rng.randrange(len(text) + 1)
        return text[:cut]
    elif lines:
        i = rng.randrange(len(lines))
        if lines[i]:
            j = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + rng.choice(":-[]{}#&*!|>'\"%@` \t") + lines[i][j + 1 :]
    return "\n".join(lines) + "\n"


def mutated_blueprint(rng: random.Random) -> str:
    """A valid blueprint varied, then with up to 4 hostile changes to its data and maybe one
    to its text."""
    doc = copy.deepcopy(FUZZ_VALID)
    for _ in range(rng.randint(1, 3)):
        _vary_data(rng, doc)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 4])):
        _mutate_data(rng, doc)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if rng.random() < 0.2:
        text = _mutate_text(rng, text)
    return text


class RunTimedOut(Exception):
    """A run-local of the fuzz test did not end within its time."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise RunTimedOut(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _no_traceback(result: Any, what: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what,
        repr(result.exception),
    )
    assert "Traceback" not in result.output, (what, result.output)


FUZZ_COUNT = 1000
SUBPROCESS_SAMPLE = 6


@pytest.mark.slow
def test_a_thousand_mutated_blueprints_through_verify_and_run_local(tmp_path: Path) -> None:
    (tmp_path / "fuzz_app.py").write_text(FUZZ_MODULE)
    path = tmp_path / "blueprint.yaml"
    rng = random.Random(20240612)
    runner = CliRunner()
    seen: dict[str, int] = {"valid": 0, "invalid": 0, "cycle": 0}
    sample: list[str] = []
    for n in range(FUZZ_COUNT):
        text = mutated_blueprint(rng)
        path.write_text(text, encoding="utf-8")
        what = f"blueprint #{n}:\n{text[:2000]}"
        with time_limit(10):
            result = runner.invoke(cli, ["verify", str(path), "--format", "json"])
        _no_traceback(result, what)
        assert result.exit_code in (0, 1), (what, result.output)
        problems = json.loads(result.stdout)
        assert all(p["code"] in PROBLEM_CODES and p["message"] for p in problems), what
        if len(sample) < SUBPROCESS_SAMPLE and n % 5 == 0:
            sample.append(text)
        if result.exit_code == 1:
            seen["invalid"] += 1
            continue
        seen["valid"] += 1
        blueprint = verify(path).unwrap()
        if any(p.code == "cycle" for p in blueprint.problems):
            # Verify warns that records may circulate forever: such a run need not end. (A
            # cycle that no record enters ends: tests/runner/test_lifecycle.py.)
            seen["cycle"] += 1
            continue
        replicas = {name: spec.replicas for name, spec in blueprint.streamlets.items()}
        assert all(1 <= count <= REPLICAS.maximum for count in replicas.values()), what
        app = sys.modules["fuzz_app"]
        app.STARTED.clear()
        with time_limit(30):
            run = runner.invoke(
                cli, ["run-local", str(path), "--quiet", "--run-dir", str(tmp_path / "run")]
            )
        _no_traceback(run, what)
        assert run.exit_code == 0, (what, run.output)
        # Exactly the replicas the blueprint declares were started, no more.
        assert sorted(app.STARTED) == sorted(
            name for name, count in replicas.items() for _ in range(count)
        ), what
    # The mutator is worth its time only if both kinds of answer are common.
    assert seen["valid"] >= 200 and seen["invalid"] >= 500, seen
    flow = Path(sys.executable).with_name("flow")
    for text in sample if flow.exists() else []:
        path.write_text(text, encoding="utf-8")
        for command in (["verify"], ["run-local", "--quiet", "--run-dir", str(tmp_path / "r")]):
            proc = subprocess.run(
                [str(flow), command[0], str(path), *command[1:]],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=tmp_path,
            )
            assert proc.returncode in (0, 1), (text, proc.stderr)
            assert "Traceback" not in proc.stdout + proc.stderr, (text, proc.stderr)
            if proc.returncode == 1:
                break  # run-local only for what verify accepts
