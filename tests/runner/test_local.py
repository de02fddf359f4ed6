"""The in-process runner, through the testkit and through `flow run-local` as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.testkit import Raw, run_blueprint, run_streamlet
from tests.runner.pipeline_app import AsyncDouble, Double, Doubled, Number, Numbers

HERE = Path(__file__).resolve().parent
FLOW = Path(sys.executable).parent / "flow"

Write = Callable[[str], Path]


@pytest.fixture
def app(tmp_path: Path) -> Write:
    """Write a blueprint next to a copy of pipeline_app.py; return its path."""
    shutil.copy(HERE / "pipeline_app.py", tmp_path / "pipeline_app.py")

    def write(text: str) -> Path:
        path = tmp_path / "blueprint.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


def lines(path: Path) -> list[dict[str, int]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def flow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FLOW), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# -- testkit: one streamlet ---------------------------------------------------------------


def test_run_streamlet_processes_in_order() -> None:
    result = run_streamlet(Double, {"numbers": [Number(value=i) for i in range(5)]})
    assert result.outputs["out"] == [Doubled(value=i, doubled=2 * i) for i in range(5)]
    assert result.dead_letters == [] and result.error is None
    assert result.stats.records_in == 5 and result.stats.records_out == 5


def test_async_process_keeps_input_order() -> None:
    result = run_streamlet(AsyncDouble, {"numbers": [Number(value=i) for i in range(50)]})
    assert [r.value for r in result.outputs["out"]] == list(range(50))


def test_raising_records_are_dead_lettered_and_the_rest_delivered() -> None:
    numbers = [Number(value=i) for i in range(10)]
    result = run_streamlet(Double, {"numbers": numbers}, config={"fail_every": 3})
    assert [r.value for r in result.outputs["out"]] == [0, 1, 2, 4, 5, 7, 8]
    assert [d.error_message for d in result.dead_letters] == [
        "refusing 3",
        "refusing 6",
        "refusing 9",
    ]
    assert {d.stage for d in result.dead_letters} == {"process"}
    assert result.stats.dead_lettered == 3


def test_skip_and_fail_policies() -> None:
    numbers = [Number(value=i) for i in range(7)]
    skipped = run_streamlet(Double, {"numbers": numbers}, config={"fail_every": 3}, on_error="skip")
    assert len(skipped.outputs["out"]) == 5 and skipped.dead_letters == []
    assert skipped.stats.skipped == 2
    failed = run_streamlet(Double, {"numbers": numbers}, config={"fail_every": 3}, on_error="fail")
    assert failed.error is not None and "refusing 3" in str(failed.error)


def test_a_record_that_does_not_match_the_schema_is_dead_lettered() -> None:
    good = Number(value=1)
    result = run_streamlet(Double, {"numbers": [good, Raw(b"\xff\xfe not avro"), good]})
    assert len(result.outputs["out"]) == 2
    (dead,) = result.dead_letters
    assert dead.stage == "decode" and dead.original.value == b"\xff\xfe not avro"


def test_a_source_runs_to_its_end() -> None:
    result = run_streamlet(Numbers, config={"count": 4, "label": "x"})
    assert result.outputs["out"] == [Number(value=i, source="x") for i in range(4)]


# -- testkit: whole blueprints ------------------------------------------------------------


def test_fan_out_fan_in_and_replicas(app: Write) -> None:
    path = app(
        """
        name: shapes
        streamlets:
          a: {class: pipeline_app:Numbers, config: {count: 20, label: a}}
          b: {class: pipeline_app:Numbers, config: {count: 30, label: b}}
          double: {class: pipeline_app:Double, replicas: 3}
          twin: {class: pipeline_app:AsyncDouble}
        topics:
          numbers:
            producers: [a.out, b.out]
            consumers: [double.numbers, twin.numbers]
          doubled: {producers: [double.out]}
          twins: {producers: [twin.out]}
        """
    )
    result = run_blueprint(path, collect=["numbers", "doubled", "twins"])
    assert result.error is None
    assert sorted((n.source, n.value) for n in result.topics["numbers"]) == sorted(
        [("a", i) for i in range(20)] + [("b", i) for i in range(30)]
    )
    # fan-out: each consumer streamlet saw every record; replicas shared theirs
    assert len(result.topics["doubled"]) == 50
    assert len(result.topics["twins"]) == 50
    assert result.stats["double"].records_in == 50


def test_injected_records_and_config_overrides(app: Write) -> None:
    path = app(
        """
        name: inject
        streamlets:
          double: {class: pipeline_app:Double}
        topics:
          numbers: {consumers: [double.numbers]}
          doubled: {producers: [double.out]}
        """
    )
    numbers = [Number(value=i) for i in range(6)]
    result = run_blueprint(
        path, inject={"numbers": numbers}, collect=["doubled"], sets=["double.fail_every=2"]
    )
    assert [r.value for r in result.topics["doubled"]] == [0, 1, 3, 5]
    assert len(result.dead_letters) == 2


def test_replicas_share_the_records_of_a_topic(app: Write, tmp_path: Path) -> None:
    path = app(
        """
        name: share
        streamlets:
          src: {class: pipeline_app:Numbers, config: {count: 3000}}
          double: {class: pipeline_app:TracedDouble, replicas: 3, config: {log: trace.log}}
        topics:
          numbers: {producers: [src.out], consumers: [double.numbers], partitions: 3}
          out: {producers: [double.out]}
        """
    )
    result = run_blueprint(path, collect=["out"])
    assert sorted(r.value for r in result.topics["out"]) == list(range(3000))
    handled: dict[str, int] = {}
    for line in (tmp_path / "trace.log").read_text().splitlines():
        instance, source, _ = line.split()
        if source != "setup":
            handled[instance] = handled.get(instance, 0) + 1
    # Each replica took its partition (as consumers of one group would).
    assert len(handled) == 3 and sum(handled.values()) == 3000, handled


def test_every_replica_reads_all_of_a_replay_inlet(app: Write, tmp_path: Path) -> None:
    path = app(
        """
        name: replay
        streamlets:
          settings: {class: pipeline_app:Settings}
          scaler: {class: pipeline_app:Scaler, replicas: 3, config: {log: control.log}}
        topics:
          control: {producers: [settings.out], consumers: [scaler.control]}
          numbers: {consumers: [scaler.numbers]}
          out: {producers: [scaler.out]}
        """
    )
    result = run_blueprint(path, inject={"numbers": [Number(value=1)]}, collect=["out"])
    assert result.error is None
    seen = (tmp_path / "control.log").read_text().split("\n")
    instances = {line.split()[0] for line in seen if line}
    assert len(instances) == 3  # not shared out like data: each replica got the record


# -- flow run-local, as a user runs it -------------------------------------------------------


PIPELINE = """
name: numbers
streamlets:
  src: {class: pipeline_app:Numbers, config: {count: 200}}
  double: {class: pipeline_app:Double, config: {fail_every: 50}, replicas: 2}
  sink: {class: pipeline_app:Collect, config: {path: out/doubled.jsonl}}
topics:
  numbers: {producers: [src.out], consumers: [double.numbers]}
  doubled: {producers: [double.out], consumers: [sink.records]}
"""


def test_flow_run_local_end_to_end(app: Write, tmp_path: Path) -> None:
    app(PIPELINE)
    proc = flow("run-local", "blueprint.yaml", "--run-dir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    values = sorted(r["value"] for r in lines(tmp_path / "out" / "doubled.jsonl"))
    assert values == [i for i in range(200) if i == 0 or i % 50]
    dead = lines(tmp_path / "run" / "dead-letters.jsonl")
    assert sorted(d["error_message"] for d in dead) == [  # type: ignore[type-var]
        "refusing 100",
        "refusing 150",
        "refusing 50",
    ]
    assert "dead letters" in proc.stderr and "run/dead-letters.jsonl" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_flow_run_local_config_file_and_set(app: Write, tmp_path: Path) -> None:
    app(PIPELINE)
    (tmp_path / "local.yaml").write_text("src:\n  count: 30\n")
    proc = flow(
        "run-local",
        "blueprint.yaml",
        "--config",
        "local.yaml",
        "--set",
        "double.fail_every=10",
        "--quiet",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(lines(tmp_path / "out" / "doubled.jsonl")) == 28  # 10 and 20 fail
    bad = flow("run-local", "blueprint.yaml", "--set", "double.fail_every=often", cwd=tmp_path)
    assert bad.returncode == 1
    assert "fail_every" in bad.stderr and "Traceback" not in bad.stderr


def test_flow_run_local_fan_out_fan_in_async_and_a_bad_input_line(
    app: Write, tmp_path: Path
) -> None:
    (tmp_path / "extra.jsonl").write_text('{"value": 100}\n{"value": "many"}\n{"value": 101}\n')
    app(
        """
        name: shapes
        streamlets:
          a: {class: pipeline_app:Numbers, config: {count: 40, label: a}}
          b: {class: pipeline_app:Numbers, config: {count: 60, label: b}}
          file:
            class: streamlets.library:FileSource
            config: {path: extra.jsonl, schema: "pipeline_app:Number"}
          sync: {class: pipeline_app:Double, replicas: 2}
          async: {class: pipeline_app:AsyncDouble}
          sink: {class: pipeline_app:Collect, config: {path: out/all.jsonl}}
        topics:
          numbers:
            producers: [a.out, b.out, file.out]
            consumers: [sync.numbers, async.numbers]
          doubled:
            producers: [sync.out, async.out]
            consumers: [sink.records]
        """
    )
    proc = flow("run-local", "blueprint.yaml", "--run-dir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    values = sorted(r["value"] for r in lines(tmp_path / "out" / "all.jsonl"))
    # every number (40 + 60 + 2 good lines) through both branches of the fan-out
    expected = sorted([*range(40), *range(60), 100, 101] * 2)
    assert values == expected
    (dead,) = lines(tmp_path / "run" / "dead-letters.jsonl")
    assert dead["streamlet"] == "file" and dead["value"] == '{"value": "many"}'  # type: ignore[comparison-overlap]
    assert "extra.jsonl:2" in str(dead["error_message"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_drains_and_loses_nothing(
    app: Write, tmp_path: Path, signum: signal.Signals
) -> None:
    app(PIPELINE.replace("{count: 200}", "{count: null, delay_s: 0.002}"))
    proc = subprocess.Popen(
        [str(FLOW), "run-local", "blueprint.yaml", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "out" / "doubled.jsonl"
    deadline = time.monotonic() + 60
    while len(lines(out)) < 100 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    values = sorted(r["value"] for r in lines(out))
    # Every number the source emitted before it stopped went through: no gaps.
    produced = max(values) + 1
    expected = [i for i in range(produced) if i == 0 or i % 50]
    assert values == expected[: len(values)] and len(values) >= len(expected) - 1
    assert "Traceback" not in stderr


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_stays_flat_with_an_unbounded_source_and_a_slow_sink(
    app: Write, tmp_path: Path
) -> None:
    app(
        """
        name: flat
        streamlets:
          src: {class: pipeline_app:Numbers, config: {count: null}}
          double: {class: pipeline_app:Double}
          sink: {class: pipeline_app:Collect, config: {path: out/d.jsonl, delay_s: 0.0005}}
        topics:
          numbers: {producers: [src.out], consumers: [double.numbers]}
          doubled: {producers: [double.out], consumers: [sink.records]}
        """
    )
    proc = subprocess.Popen(
        [str(FLOW), "run-local", "blueprint.yaml", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = tmp_path / "out" / "d.jsonl"
        deadline = time.monotonic() + 60
        while len(lines(out)) < 500 and time.monotonic() < deadline:
            time.sleep(0.2)
        first = _rss_kib(proc.pid)
        seen_first = len(lines(out))
        time.sleep(6)
        second = _rss_kib(proc.pid)
        # The sink went on (the source was held back, not the pipeline) ...
        assert len(lines(out)) > seen_first + 1000
        # ... and memory did not grow with the stream: an unbounded queue would add
        # hundreds of MiB in these seconds (the source makes ~100k records/s).
        assert second - first < 50 * 1024, (first, second)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr


def test_unexpected_error_exits_1_with_a_readable_message(app: Write, tmp_path: Path) -> None:
    app(PIPELINE.replace("{path: out/doubled.jsonl}", "{path: /proc/forbidden/x.jsonl}"))
    proc = flow("run-local", "blueprint.yaml", "--quiet", cwd=tmp_path)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
    assert os.path.exists(tmp_path / "blueprint.yaml")


# -- user code imports its sibling modules while it runs -----------------------------------

LAZY_APP = """
from collections.abc import Iterator

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet


class Item(BaseModel):
    value: int


class Items(Streamlet):
    out = Outlet(Item)

    def generate(self) -> Iterator[Item]:
        from {helper} import COUNT  # a sibling module, imported only once the run starts

        return iter([Item(value=i) for i in range(COUNT)])


class Tag(Streamlet):
    items = Inlet(Item)
    out = Outlet(Item)

    def process(self, item: Item) -> Item:
        from {helper} import OFFSET

        return Item(value=item.value + OFFSET)
"""

LAZY_BLUEPRINT = """
name: lazy
streamlets:
  src: {{class: "{module}:Items"}}
  tag: {{class: "{module}:Tag", on_error: fail}}
topics:
  items: {{producers: [src.out], consumers: [tag.items]}}
  tagged: {{producers: [tag.out]}}
"""


def lazy_app(directory: Path, name: str) -> Path:
    directory.mkdir()
    (directory / f"{name}_app.py").write_text(LAZY_APP.format(helper=f"{name}_helper"))
    (directory / f"{name}_helper.py").write_text("COUNT = 3\nOFFSET = 100\n")
    path = directory / "blueprint.yaml"
    path.write_text(LAZY_BLUEPRINT.format(module=f"{name}_app"))
    return path


def test_the_testkit_runs_streamlets_that_import_siblings_lazily(tmp_path: Path) -> None:
    path = lazy_app(tmp_path / "app", "testkit_lazy")
    before = list(sys.path)
    result = run_blueprint(path, collect=["tagged"])
    assert result.error is None, result.error
    assert sorted(r.value for r in result.topics["tagged"]) == [100, 101, 102]
    assert sys.path == before


def test_flow_run_local_runs_streamlets_that_import_siblings_lazily(tmp_path: Path) -> None:
    lazy_app(tmp_path / "app", "cli_lazy")
    proc = flow("run-local", "app/blueprint.yaml", "--quiet", "--run-dir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
