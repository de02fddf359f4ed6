"""Timers (DESIGN §9) on the in-process runner: a decorated method called every N seconds
of wall-clock time, whose records go out as a handler's; on processors and sources, sync
and async, with the error policy for one that raises."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runner.testkit import run_blueprint
from streamlets import Streamlet, timer
from streamlets.errors import StreamletDefinitionError
from tests.runner.timers_app import Counting

BLUEPRINT = """\
name: timers
streamlets:
  source: {{class: tests.runner.timers_app:SlowSource}}
  count: {{class: tests.runner.timers_app:Counting, config: {{fail: {fail}}}}}
topics:
  ticks: {{producers: [source.out], consumers: [count.ticks]}}
  seen: {{producers: [count.seen]}}
"""


def test_a_timer_reports_while_records_flow(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT.format(fail="false"))
    result = run_blueprint(path, collect=["seen"])
    assert result.error is None
    reports = result.topics["seen"]
    # The source takes about 0.3 s; a report every 0.05 s: a few of them, at least one.
    assert reports, "the timer was never called"
    assert [r.calls for r in reports] == list(range(1, len(reports) + 1))
    counts = [r.seen for r in reports]
    assert counts == sorted(counts) and counts[-1] <= 15
    assert all(r.key is None for r in result.records["seen"])  # no input to inherit from


def test_a_failing_timer_follows_the_error_policy_with_stage_timer(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT.format(fail="true"))
    result = run_blueprint(path, collect=["seen"])
    assert result.error is None
    (dead,) = result.dead_letters
    assert dead.stage == "timer" and dead.error_class == "RuntimeError"
    assert dead.original.value == b"timer report"
    assert [r.calls for r in result.topics["seen"]][:1] in ([], [2])  # the next one goes on


def test_an_async_timer_of_a_source_emits_to_its_outlet(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: source-timer
            streamlets:
              source: {class: tests.runner.timers_app:TickingSource}
            topics:
              ticks: {producers: [source.out]}
              reports: {producers: [source.reports]}
            """
        )
    )
    result = run_blueprint(path, collect=["ticks", "reports"])
    assert result.error is None
    assert len(result.topics["ticks"]) == 20
    reports = result.topics["reports"]
    assert reports and [r.calls for r in reports] == list(range(1, len(reports) + 1))
    assert [r.seen for r in reports] == sorted(r.seen for r in reports)


def test_timers_are_declared_with_a_period_above_zero() -> None:
    assert Counting.timers() == {"report": 0.05}
    with pytest.raises(StreamletDefinitionError, match="above 0"):
        timer(seconds=0)
    with pytest.raises(StreamletDefinitionError, match="above 0"):
        timer(seconds="5s")  # type: ignore[arg-type]

    class Quiet(Counting):
        def report(self) -> None:  # overridden by a plain method: no timer any more
            return None

    assert Quiet.timers() == {}
    assert issubclass(Quiet, Streamlet)
