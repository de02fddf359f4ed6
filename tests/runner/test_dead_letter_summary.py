"""A run whose records all fail does not look like a success: `flow run-local` names each
streamlet's first error with the user's line, and fails past max_dead_letter_ratio."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from blueprint.user_frames import user_frame_in_trace
from runner.runtime.progress import ActivityClock
from runner.runtime.stats import StreamletStats

FLOW = str(Path(sys.executable).with_name("flow"))

MODULE = """
import logging
from collections.abc import Iterator

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet

log = logging.getLogger("shop")


class Item(BaseModel):
    id: int


class Other(BaseModel):
    name: str


class Items(Streamlet):
    out = Outlet(Item)

    class Config(BaseModel):
        count: int | None = 200

    def setup(self) -> None:
        log.info("items: starting")

    def generate(self) -> Iterator[Item]:
        i = 0
        while self.config.count is None or i < self.config.count:
            yield Item(id=i)
            i += 1


class TwoOutlets(Streamlet):
    items = Inlet(Item)
    good = Outlet(Item)
    bad = Outlet(Item)

    def process(self, item: Item) -> Item:
        return item  # LINE-TWO-OUTLETS


class WrongType(Streamlet):
    items = Inlet(Item)
    out = Outlet(Other)

    def process(self, item: Item) -> Item:
        return item  # LINE-WRONG-TYPE


class Flaky(Streamlet):
    items = Inlet(Item)
    out = Outlet(Item)

    def process(self, item: Item) -> Item:
        if item.id % 10 == 3:
            raise ValueError(f"no {item.id}")  # LINE-FLAKY
        return item
"""


def _line(marker: str) -> int:
    """The line of ``marker``'s method (def) or statement in the module as written."""
    lines = MODULE.splitlines()
    at = next(n for n, text in enumerate(lines, 1) if marker in text)
    if marker == "LINE-FLAKY":
        return at
    return max(n for n in range(1, at) if lines[n - 1].strip().startswith("def process"))


def _app(tmp_path: Path, streamlet: str, count: str = "200", config: str = "") -> Path:
    (tmp_path / "shop_app.py").write_text(MODULE)
    (tmp_path / "blueprint.yaml").write_text(
        textwrap.dedent(
            f"""
            name: shop
            streamlets:
              items: {{class: shop_app:Items, config: {{count: {count}}}}}
              step: {{class: shop_app:{streamlet}}}
            topics:
              items: {{producers: [items.out], consumers: [step.items]}}
            """
        )
        + (  # an outlet without a topic discards its records unencoded
            "  out: {producers: [step.out]}\n" if streamlet != "TwoOutlets" else ""
        )
    )
    if config:
        (tmp_path / "config.yaml").write_text(textwrap.dedent(config))
    return tmp_path / "blueprint.yaml"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOW, "run-local", "blueprint.yaml", "-q", "--run-dir", "run", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_record_for_two_outlets_fails_the_run_with_the_users_line(tmp_path: Path) -> None:
    _app(tmp_path, "TwoOutlets")
    proc = _run(tmp_path)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert (
        "200 record(s) went to dead letters, written to run/dead-letters.jsonl (to look at "
        "them: flow dead-letters blueprint.yaml --run-dir run):"
    ) in err
    assert (
        "  step: 200 dead letters, the first at stage process: StreamletsError: streamlet "
        "'step' returned an Item record, but it has 2 outlets (good, bad): say which one, "
        "e.g. return self.good.emit(record) "
        f"(at shop_app.py:{_line('LINE-TWO-OUTLETS')}, in TwoOutlets.process)"
    ) in err
    assert (
        "error: streamlet 'step' sent 200 of its 200 records (100%) to dead letters, more "
        "than max_dead_letter_ratio 0.5 allows"
    ) in err
    assert "but has 2 outlets; return outlet.emit(record)" not in err  # the old message


def test_a_record_of_the_wrong_type_fails_the_run_with_the_users_line(tmp_path: Path) -> None:
    _app(tmp_path, "WrongType")
    proc = _run(tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "the first at stage encode: TypeError: cannot encode Item as Other" in proc.stderr
    assert "got an Item" in proc.stderr
    assert f"(at shop_app.py:{_line('LINE-WRONG-TYPE')}, in WrongType.process)" in proc.stderr


def test_a_few_failures_pass_and_still_name_the_first_one(tmp_path: Path) -> None:
    _app(tmp_path, "Flaky")
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        "  step: 20 dead letters, the first at stage process: ValueError: no 3 "
        f"(at shop_app.py:{_line('LINE-FLAKY')}, in process)"
    ) in proc.stderr
    assert "error:" not in proc.stderr


def test_the_ratio_comes_from_the_option_or_the_config_file(tmp_path: Path) -> None:
    _app(tmp_path, "TwoOutlets", config="runner: {max_dead_letter_ratio: 1}\n")
    assert _run(tmp_path, "--max-dead-letter-ratio", "1").returncode == 0
    assert _run(tmp_path, "--config", "config.yaml").returncode == 0
    # The option wins over the file.
    assert (
        _run(tmp_path, "--config", "config.yaml", "--max-dead-letter-ratio", "0.9").returncode == 1
    )
    (tmp_path / "config.yaml").write_text("runner: {max_dead_letter_ratio: 2}\n")
    proc = _run(tmp_path, "--config", "config.yaml")
    assert proc.returncode == 2
    assert "runner.max_dead_letter_ratio is the share of a streamlet's records" in proc.stderr


def test_an_endless_run_that_fails_every_record_stops_by_itself(tmp_path: Path) -> None:
    _app(tmp_path, "TwoOutlets", count="null")
    proc = _run(tmp_path)  # would run until Ctrl-C without the check
    assert proc.returncode == 1, proc.stderr
    assert "more than max_dead_letter_ratio 0.5 allows" in proc.stderr


def test_verbose_shows_the_streamlets_info_lines(tmp_path: Path) -> None:
    _app(tmp_path, "Flaky")
    assert "items: starting" not in _run(tmp_path).stderr
    assert "INFO shop: items: starting" in _run(tmp_path, "-v").stderr


# -- the pieces --------------------------------------------------------------------------


def test_the_activity_clock_counts_the_seconds_records_moved() -> None:
    clock = ActivityClock()
    clock.observe({"a": StreamletStats(), "b": StreamletStats()}, 0.0)
    clock.observe({"a": StreamletStats(), "b": StreamletStats()}, 5.0)  # joining a group
    clock.observe({"a": StreamletStats(records_in=10), "b": StreamletStats()}, 6.0)
    clock.observe({"a": StreamletStats(records_in=30), "b": StreamletStats()}, 7.0)
    clock.observe({"a": StreamletStats(records_in=30), "b": StreamletStats()}, 20.0)
    assert clock.seconds() == {"a": 2.0}  # from the look before its first record to its last


@pytest.mark.parametrize("framework", ["streamlets", "runner", "blueprint"])
def test_the_users_frame_is_the_innermost_outside_the_framework(framework: str) -> None:
    root = Path(__file__).resolve().parents[2]
    trace = textwrap.dedent(
        f"""\
        Traceback (most recent call last):
          File "{root / framework / "x.py"}", line 10, in run
            self.process(record)
          File "/home/me/shop/shop/streamlets.py", line 42, in process
            return self.helper(order)
          File "/home/me/shop/shop/helpers.py", line 7, in helper
            raise ValueError("bad")
          File "{root / framework / "y.py"}", line 3, in inner
        ValueError: bad
        """
    )
    frame = user_frame_in_trace(trace)
    assert frame is not None
    assert (frame.file, frame.line, frame.name) == ("/home/me/shop/shop/helpers.py", 7, "helper")
