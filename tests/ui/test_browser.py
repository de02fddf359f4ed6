"""The live view in a real headless browser (Chromium through selenium): the graph, the
counters rising, a failing streamlet's colour, a dead letter in the streamlet's panel, and
the page's update time with 50 streamlets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.browser import BrowserUnavailable, chrome
from tests.ui.runs import ViewRun, view_run, write_app

FAILED_COLOUR = "rgb(214, 69, 69)"  # --failed in static/app.css

ENDLESS = """
name: ui-browser
streamlets:
  gen: {class: streamlets.library:GeneratorSource, config: {count: null, rate: 30}}
  check: {class: ui_app:Check, config: {every: 7, token: hunter2-long-secret}}
  drop: {class: ui_app:Drop}
topics:
  counters: {producers: [gen.out], consumers: [check.counters], partitions: 3}
  checked: {producers: [check.out], consumers: [drop.checked]}
"""

FAILING = """
name: ui-failing
streamlets:
  gen: {class: streamlets.library:GeneratorSource, config: {count: null, rate: 20}}
  fail: {class: ui_app:FailAt, config: {index: 30}, on_error: fail}
  drop: {class: ui_app:Drop}
topics:
  counters: {producers: [gen.out], consumers: [fail.counters]}
  checked: {producers: [fail.out], consumers: [drop.checked]}
"""


def fifty_streamlets() -> str:
    """One source, seven chains of seven streamlets reading it: 50 streamlets, 50 topics."""
    streamlets = [
        "  gen: {class: streamlets.library:GeneratorSource, config: {count: null, rate: 50}}"
    ]
    topics = ["  t-gen: {producers: [gen.out], consumers: [%s]}"]
    firsts = []
    for chain in range(7):
        previous = "t-gen"
        for step in range(7):
            name = f"p{chain}-{step}"
            streamlets.append(f"  {name}: {{class: ui_app:Pass}}")
            if step == 0:
                firsts.append(f"{name}.counters")
            else:
                topics.append(
                    f"  {previous}: {{producers: [p{chain}-{step - 1}.out], "
                    f"consumers: [{name}.counters]}}"
                )
            previous = f"t{chain}-{step}"
        topics.append(f"  {previous}: {{producers: [p{chain}-6.out], consumers: []}}")
    topics[0] = topics[0] % ", ".join(firsts)
    return (
        "name: fifty\nstreamlets:\n"
        + "\n".join(streamlets)
        + "\ntopics:\n"
        + "\n".join(topics)
        + "\n"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        driver = chrome()
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or check}")


def _open(browser: Any, run: ViewRun) -> None:
    """Load the view and wait for its first update; a page that did not get its script
    (the browser's error page of a server still starting, under load) is loaded again."""

    def loaded() -> bool:
        browser.get(run.url)
        return bool(browser.execute_script("return window.liveView !== undefined"))

    try:
        wait_for(loaded, timeout=60, what="the page and its script")
        wait_for(
            lambda: browser.execute_script("return window.liveView.updates > 0"),
            what="updates",
        )
    except AssertionError as exc:
        page = browser.execute_script("return document.body ? document.body.innerText : ''")
        shown = f"{exc}; the page shows:\n{page[:2000]}\n--- the run:\n{run.text()}"
        raise AssertionError(shown) from None


def _attr(browser: Any, element_id: str, name: str) -> str:
    return browser.find_element("id", element_id).get_attribute(name) or ""


def test_the_graph_counters_and_a_dead_letter_in_the_panel(browser: Any, tmp_path: Path) -> None:
    path = write_app(tmp_path, ENDLESS)
    with view_run(["run-local", str(path), "--ui", "-q"], tmp_path) as run:
        _open(browser, run)
        for name in ("gen", "check", "drop"):
            assert browser.find_element("id", f"streamlet-{name}").is_displayed()
            assert name in browser.find_element("id", f"streamlet-{name}").text
        for key in ("counters", "checked"):
            assert key in browser.find_element("id", f"topic-{key}").text
        assert "3 partitions" in browser.find_element("id", "topic-counters").text
        assert len(browser.find_elements("css selector", "path.edge")) == 4

        first = wait_for(lambda: int(_attr(browser, "streamlet-drop", "data-records-in") or 0))
        wait_for(
            lambda: int(_attr(browser, "streamlet-drop", "data-records-in")) > first,
            what="drop's records in to rise",
        )
        assert _attr(browser, "streamlet-gen", "data-health") == "running"
        wait_for(lambda: "/s" in browser.find_element("id", "topic-counters").text)

        wait_for(lambda: int(_attr(browser, "streamlet-check", "data-dead-letters")) > 0)
        browser.find_element("id", "streamlet-check").click()
        # The panel is drawn again as dead letters come: read it in one go.
        text, record = wait_for(
            lambda: browser.execute_script(
                "const d = document.querySelector('#panel-dead-letters li.dead-letter');"
                "return d && [d.innerText, d.querySelector('pre.record').innerText];"
            ),
            what="a dead letter in the panel",
        )
        assert "process: ValueError: counter" in text and "is a multiple of 7" in text
        assert "ui_app.py:32, in process" in text  # the user's file:line
        assert '"index":' in record  # the original record, pretty-printed
        config = browser.find_element("id", "panel-config").text
        assert '"every": 7' in config and "**********" in config and "hunter2" not in config
        error = browser.execute_script(
            "const e = document.querySelector('#panel-errors li.error'); return e && e.innerText;"
        )
        assert error and "ui_app.py:32" in error


def test_a_failing_streamlet_turns_to_the_failed_colour(browser: Any, tmp_path: Path) -> None:
    path = write_app(tmp_path, FAILING)
    with view_run(["run-local", str(path), "--ui", "-q"], tmp_path) as run:
        _open(browser, run)
        wait_for(lambda: _attr(browser, "streamlet-fail", "data-health") == "failed", 60, "failed")
        band = browser.find_element("css selector", "#streamlet-fail rect.band")
        assert band.value_of_css_property("fill") == FAILED_COLOUR
        other = browser.find_element("css selector", "#streamlet-drop rect.band")
        assert other.value_of_css_property("fill") != FAILED_COLOUR
        wait_for(lambda: browser.find_element("id", "run-state").text == "failed")
        browser.find_element("id", "streamlet-fail").click()
        error = wait_for(
            lambda: browser.execute_script(
                "const e = document.querySelector('#panel-errors li.error');"
                "return e && e.innerText;"
            ),
            what="the error in the panel",
        )
        assert "RuntimeError: counter 30 reached the failing index" in error
        assert "ui_app.py:49, in process" in error
        assert run.stop() == 1


def test_fifty_streamlets_update_time(browser: Any, tmp_path: Path) -> None:
    path = write_app(tmp_path, fifty_streamlets())
    with view_run(["run-local", str(path), "--ui", "-q"], tmp_path) as run:
        _open(browser, run)
        assert len(browser.find_elements("css selector", "g.streamlet")) == 50
        assert len(browser.find_elements("css selector", "g.topic")) == 50
        start = browser.execute_script("return window.liveView.updates")
        began = time.monotonic()
        wait_for(
            lambda: browser.execute_script("return window.liveView.updates") >= start + 10,
            60,
            "ten more updates",
        )
        seconds = time.monotonic() - began
        view = browser.execute_script("return window.liveView")
        mean = view["totalApplyMs"] / view["updates"]
        print(
            f"\n50 streamlets: {view['updates']} updates, applying one took {mean:.2f} ms on "
            f"average, {view['maxApplyMs']:.2f} ms at most; 10 updates arrived in "
            f"{seconds:.2f} s"
        )
        assert int(_attr(browser, "streamlet-p6-6", "data-records-in")) > 0


@pytest.mark.slow
def test_run_local_kafka_ui(browser: Any, tmp_path: Path) -> None:
    path = write_app(
        tmp_path,
        ENDLESS.replace("drop: {class: ui_app:Drop}", "drop: {class: ui_app:Drop, replicas: 2}"),
    )
    with view_run(["run-local", str(path), "--kafka", "--ui", "-q"], tmp_path, 120) as run:
        _open(browser, run)
        assert "Kafka" in browser.find_element("id", "mode").text
        for name in ("gen", "check", "drop"):
            assert browser.find_element("id", f"streamlet-{name}").is_displayed()
        assert "\u00d72" in browser.find_element("id", "streamlet-drop").text  # x2
        for key in ("counters", "checked"):
            assert key in browser.find_element("id", f"topic-{key}").text
        first = wait_for(
            lambda: int(_attr(browser, "streamlet-drop", "data-records-in") or 0), 120, "records"
        )
        wait_for(
            lambda: int(_attr(browser, "streamlet-drop", "data-records-in")) > first,
            60,
            "drop's records in to rise",
        )
        assert _attr(browser, "streamlet-check", "data-health") == "running"
        wait_for(lambda: "lag" in browser.find_element("id", "streamlet-check").text, 30, "lag")
        status = run.status()
        assert status["streamlets"]["drop"]["replicas"] == ["running", "running"]
        assert status["topics"]["counters"]["records"] > 0
        browser.find_element("id", "streamlet-check").click()
        text, record = wait_for(
            lambda: browser.execute_script(
                "const d = document.querySelector('#panel-dead-letters li.dead-letter');"
                "return d && [d.innerText, d.querySelector('pre.record').innerText];"
            ),
            60,
            "a dead letter read back from the dead-letter topic",
        )
        assert "is a multiple of 7" in text and "ui_app.py:32, in process" in text
        assert '"index":' in record
        run.interrupt()  # the processes stop, and the view with them
        assert run.process.wait(90) == 0


def _metrics_ports(status_dir: Path, expected: int) -> list[int]:
    """The metrics ports of the running processes, from their status files."""

    def ports() -> list[int]:
        found = {}
        for path in status_dir.glob("*.json"):
            data = json.loads(path.read_text())
            if data.get("metrics_port") and data.get("state") == "running":
                found[(data["streamlet"], data["replica"])] = data["metrics_port"]
        return sorted(found.values()) if len(found) == expected else []

    return wait_for(ports, 120, "every process to serve its metrics")


@pytest.mark.slow
def test_flow_ui_over_the_metrics_of_running_processes(browser: Any, tmp_path: Path) -> None:
    path = write_app(tmp_path, ENDLESS)
    run_dir = tmp_path / "run"
    kafka = ["run-local", str(path), "--kafka", "-q", "--run-dir", str(run_dir)]
    with view_run([*kafka, "--ui"], tmp_path, 120):
        ports = _metrics_ports(run_dir / "status", 3)
        urls = [arg for port in ports for arg in ("--metrics", f"127.0.0.1:{port}")]
        watch_dir = tmp_path / "watch"
        watch_dir.mkdir()
        with view_run(["ui", str(path), *urls], watch_dir) as view:
            status = view.wait_status(
                lambda s: all(v["health"] == "running" for v in s["streamlets"].values())
            )
            assert status["mode"] == "metrics"
            first = status["streamlets"]["drop"]["records_in"]
            view.wait_status(lambda s: s["streamlets"]["drop"]["records_in"] > first)
            view.wait_status(lambda s: s["streamlets"]["check"]["dead_letters"] > 0)
            _open(browser, view)
            assert "/metrics" in browser.find_element("id", "mode").text
            for name in ("gen", "check", "drop"):
                wait_for(
                    lambda n=name: _attr(browser, f"streamlet-{n}", "data-health") == "running"
                )
            seen = int(_attr(browser, "streamlet-drop", "data-records-in"))
            wait_for(lambda: int(_attr(browser, "streamlet-drop", "data-records-in")) > seen)


@pytest.mark.slow
def test_a_failing_process_on_kafka_turns_to_the_failed_colour(
    browser: Any, tmp_path: Path
) -> None:
    path = write_app(tmp_path, FAILING)
    with view_run(["run-local", str(path), "--kafka", "--ui", "-q"], tmp_path, 120) as run:
        _open(browser, run)
        wait_for(lambda: _attr(browser, "streamlet-fail", "data-health") == "failed", 120, "fail")
        band = browser.find_element("css selector", "#streamlet-fail rect.band")
        assert band.value_of_css_property("fill") == FAILED_COLOUR
        wait_for(lambda: browser.find_element("id", "run-state").text == "failed", 60, "run")
        # The others were stopped because of it.
        wait_for(lambda: _attr(browser, "streamlet-gen", "data-health") == "stopped", 60, "gen")
        browser.find_element("id", "streamlet-fail").click()
        errors = wait_for(
            lambda: browser.execute_script(
                "return [...document.querySelectorAll('#panel-errors li.error')]"
                ".map((e) => e.innerText).join('\\n');"
            ),
            what="the errors in the panel",
        )
        assert "RuntimeError: counter 30 reached the failing index" in errors
        assert "ui_app.py:49, in process" in errors  # from the process's status file
        assert run.stop() == 1
