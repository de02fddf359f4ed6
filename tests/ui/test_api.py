"""The live view's JSON API and layout, without a browser: over a real in-process run,
served by the real server (and by `flow run-local --ui`)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from blueprint import VerifiedBlueprint, user_code_path, verify
from runner.local import LocalRunner
from runner.ui import LiveView, LocalSource, UiServer, is_loopback
from runner.ui.layout import layout
from runner.ui.view import overall_health
from tests.ui.runs import view_run, write_app

BOUNDED = """
name: ui-bounded
streamlets:
  gen: {class: streamlets.library:GeneratorSource, config: {count: 50}}
  check: {class: ui_app:Check, config: {every: 5, token: hunter2-long-secret}}
  drop: {class: ui_app:Drop}
topics:
  counters: {producers: [gen.out], consumers: [check.counters], partitions: 2}
  checked: {producers: [check.out], consumers: [drop.checked]}
"""

ENDLESS = BOUNDED.replace("count: 50", "count: null, rate: 40").replace("ui-bounded", "ui-endless")


def _verified(path: Path) -> VerifiedBlueprint:
    result = verify(path)
    assert result.ok, [p.message for p in result.problems]
    assert result.blueprint is not None
    return result.blueprint


def _finished_run(tmp_path: Path) -> tuple[VerifiedBlueprint, LocalSource]:
    blueprint = _verified(write_app(tmp_path / "app", BOUNDED))
    runner = LocalRunner(blueprint, run_dir=tmp_path / "run", keep_dead_letters=False)
    with user_code_path(blueprint.directory):
        result = asyncio.run(runner.run())
    assert result.ok
    source = LocalSource(runner)
    source.finished("finished")
    return blueprint, source


def test_the_layout_puts_every_edge_left_to_right_without_overlaps(tmp_path: Path) -> None:
    blueprint = _verified(write_app(tmp_path, BOUNDED))
    placed = layout(blueprint.graph)
    assert set(placed.boxes) == set(blueprint.graph.nodes)
    for src, dst in blueprint.graph.edges:
        assert placed.boxes[src].x + placed.boxes[src].w < placed.boxes[dst].x
    boxes = list(placed.boxes.values())
    for i, a in enumerate(boxes):
        assert a.x + a.w <= placed.width and a.y + a.h <= placed.height
        for b in boxes[i + 1 :]:
            apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
            assert apart, (a, b)


def test_a_cycle_is_laid_out_too(tmp_path: Path) -> None:
    import networkx as nx

    graph: nx.DiGraph[tuple[str, str]] = nx.DiGraph()
    graph.add_edges_from(
        [(("streamlet", "a"), ("topic", "x")), (("topic", "x"), ("streamlet", "b"))]
    )
    graph.add_edges_from(
        [(("streamlet", "b"), ("topic", "y")), (("topic", "y"), ("streamlet", "a"))]
    )
    placed = layout(graph)
    assert len({(b.x, b.y) for b in placed.boxes.values()}) == 4


def test_health_of_a_streamlet_is_its_most_telling_replica() -> None:
    assert overall_health(["running", "failed"]) == "failed"
    assert overall_health(["done", "restarting"]) == "restarting"
    assert overall_health(["done", "running"]) == "running"
    assert overall_health(["done", "done"]) == "done"
    assert overall_health(["done", "stopped"]) == "stopped"


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("example.org")


def test_the_api_serves_a_finished_run(tmp_path: Path) -> None:
    blueprint, source = _finished_run(tmp_path)
    server = UiServer(LiveView(blueprint, source), interval=0.1).start()
    try:
        base = server.url.rstrip("/")
        assert server.url.startswith("http://127.0.0.1:")
        graph = httpx.get(base + "/api/blueprint").json()
        assert [s["name"] for s in graph["streamlets"]] == ["gen", "check", "drop"]
        assert [t["key"] for t in graph["topics"]] == ["counters", "checked"]
        assert {"port": "counters", "from": {"kind": "topic", "name": "counters"}}.items() <= (
            next(e for e in graph["edges"] if e["to"]["name"] == "check").items()
        )
        status = httpx.get(base + "/api/status").json()
        assert status["run"] == "finished" and status["mode"] == "local"
        check = status["streamlets"]["check"]
        assert check["health"] == "done"
        assert (check["records_in"], check["records_out"], check["dead_letters"]) == (50, 40, 10)
        assert isinstance(status["streamlets"]["gen"]["state_entries"], int)  # it has state
        assert status["streamlets"]["check"]["state_entries"] is None  # it has none
        assert status["topics"]["counters"] == {"records": 50, "per_second": 0.0, "partitions": 2}
        assert status["topics"]["checked"]["records"] == 40

        detail = httpx.get(base + "/api/streamlets/check").json()
        assert detail["config"] == {"every": 5, "token": "**********"}
        assert "hunter2" not in json.dumps(detail)
        assert len(detail["dead_letters"]) == 10
        newest = detail["dead_letters"][0]
        assert newest["stage"] == "process" and newest["error_class"] == "ValueError"
        assert newest["record"]["index"] == 45  # decoded with the topic's codec
        assert "ui_app.py:32, in process" in newest["where"]  # the raise in Check.process
        assert [e["message"] for e in detail["errors"]][:2] == [
            "counter 45 is a multiple of 5",
            "counter 40 is a multiple of 5",
        ]
        missing = httpx.get(base + "/api/streamlets/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        page = httpx.get(server.url)
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "EventSource" in httpx.get(base + "/static/app.js").text
    finally:
        server.stop()


def test_the_event_stream_pushes_a_status_per_reading(tmp_path: Path) -> None:
    blueprint, source = _finished_run(tmp_path)
    server = UiServer(LiveView(blueprint, source), interval=0.1).start()
    try:
        seqs: list[int] = []
        with httpx.stream("GET", server.url + "api/events", timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    assert data["streamlets"]["drop"]["records_in"] == 40
                    seqs.append(data["seq"])
                    if len(seqs) == 3:
                        break
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
    finally:
        server.stop()


def test_run_local_ui_serves_rising_counters_while_it_runs(tmp_path: Path) -> None:
    path = write_app(tmp_path, ENDLESS)
    with view_run(["run-local", str(path), "--ui", "-q"], tmp_path) as run:
        assert run.url.startswith("http://127.0.0.1:")
        first = run.wait_status(lambda s: s["streamlets"]["drop"]["records_in"] > 0)
        later = run.wait_status(
            lambda s: (
                s["streamlets"]["drop"]["records_in"] > first["streamlets"]["drop"]["records_in"]
            )
        )
        assert later["run"] == "running"
        assert later["streamlets"]["gen"]["health"] == "running"
        assert run.wait_status(lambda s: (s["streamlets"]["check"]["in_per_second"] or 0) > 0)
        run.interrupt()  # drains, and the view goes with the run
        assert run.process.wait(30) == 0
        assert "the live view stays at" not in run.text()


def test_the_view_stays_after_a_run_that_finished(tmp_path: Path) -> None:
    path = write_app(tmp_path, BOUNDED)
    with view_run(["run-local", str(path), "--ui", "-q"], tmp_path) as run:
        done = run.wait_status(lambda s: s["run"] == "finished")
        assert {s["health"] for s in done["streamlets"].values()} == {"done"}
        assert done["streamlets"]["drop"]["records_in"] == 40
        wait = 30
        while "the live view stays at" not in run.text() and wait:
            time.sleep(0.1)
            wait -= 1
        assert f"the live view stays at {run.url} until Ctrl-C" in run.text()
        assert run.process.poll() is None  # still serving
        assert run.stop() == 0


def test_ui_port_without_ui_is_a_usage_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write_app(tmp_path, BOUNDED)
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli", "run-local", str(path), "--ui-port", "8080"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert done.returncode == 2 and "--ui-host and --ui-port need --ui" in done.stderr


@pytest.mark.parametrize("taken", [True])
def test_a_taken_port_says_so(tmp_path: Path, taken: bool) -> None:
    blueprint, source = _finished_run(tmp_path)
    server = UiServer(LiveView(blueprint, source)).start()
    try:
        with pytest.raises(OSError):
            UiServer(LiveView(blueprint, source), port=server.port)
    finally:
        server.stop()


def test_the_page_is_package_data_so_a_wheel_carries_it() -> None:
    import fnmatch
    import tomllib

    root = Path(__file__).parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["runner.ui"]
    static = root / "runner" / "ui"
    files = [p.relative_to(static).as_posix() for p in (static / "static").iterdir()]
    assert {"static/index.html", "static/app.js", "static/app.css"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


WINDOWED = """
name: ui-windows
streamlets:
  gen: {class: streamlets.library:GeneratorSource, config: {count: null, rate: 40}}
  agg:
    class: streamlets.library:WindowAggregate
    config:
      input: streamlets.library.generator:Counter
      key: index
      window: {type: tumbling, size: 1h}
      aggregates: {n: {count: {}}}
topics:
  counters: {producers: [gen.out], consumers: [agg.records]}
  results: {producers: [agg.results]}
"""


def test_open_windows_and_state_entries_are_shown(tmp_path: Path) -> None:
    path = write_app(tmp_path, WINDOWED)
    with view_run(["run-local", str(path), "--ui", "-q"], tmp_path) as run:
        first = run.wait_status(lambda s: (s["streamlets"]["agg"]["open_windows"] or 0) > 0)
        agg = first["streamlets"]["agg"]
        assert agg["state_entries"] is not None
        run.wait_status(  # one window per key (index), open for an hour: they add up
            lambda s: s["streamlets"]["agg"]["open_windows"] > agg["open_windows"]
        )
        graph = run.get("/api/blueprint").json()
        assert next(s for s in graph["streamlets"] if s["name"] == "agg")["windows"]


@pytest.mark.slow
def test_a_crashed_process_on_kafka_shows_restarting(tmp_path: Path) -> None:
    import os
    import signal

    path = write_app(tmp_path, ENDLESS)
    run_dir = tmp_path / "run"
    args = ["run-local", str(path), "--kafka", "--ui", "-q", "--run-dir", str(run_dir)]
    with view_run(args, tmp_path, 120) as run:
        run.wait_status(lambda s: s["streamlets"]["drop"]["records_in"] > 0, 120)
        (status_file,) = (run_dir / "status").glob("drop-0.1.json")
        os.kill(json.loads(status_file.read_text())["pid"], signal.SIGKILL)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = run.status()["streamlets"]["drop"]["health"]
            seen.append(health)
            if health == "restarting":
                break
            time.sleep(0.1)
        assert "restarting" in seen, seen
        before = run.status()["streamlets"]["drop"]["records_in"]
        back = run.wait_status(
            lambda s: (
                s["streamlets"]["drop"]["health"] == "running"
                and s["streamlets"]["drop"]["records_in"] > before
            ),
            120,
        )
        assert back["streamlets"]["drop"]["replicas"] == ["running"]


def test_a_failed_setup_is_shown_with_its_line(tmp_path: Path) -> None:
    blueprint_text = BOUNDED.replace("ui_app:Drop", "ui_app:BadSetup")
    blueprint = _verified(write_app(tmp_path / "app", blueprint_text))
    runner = LocalRunner(blueprint, run_dir=tmp_path / "run", keep_dead_letters=False)
    with user_code_path(blueprint.directory):
        result = asyncio.run(runner.run())
    assert result.error is not None
    source = LocalSource(runner)
    source.finished("failed", str(result.error))
    view = LiveView(blueprint, source)
    status = view.tick()
    assert status["streamlets"]["drop"]["health"] == "failed"
    assert status["streamlets"]["gen"]["health"] in ("stopped", "done")
    assert status["run"] == "failed" and "setup() failed" in status["error"]
    detail = view.streamlet("drop")
    assert detail is not None
    (error,) = detail["errors"]
    assert error["stage"] == "setup" and error["error_class"] == "ConnectionError"
    assert error["message"] == "the database is not there"
    assert error["where"].endswith("ui_app.py:78")
