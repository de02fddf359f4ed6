"""The sensor-stats example under ``flow run-local --kafka`` (one process per replica, an
embedded broker of its own): the same minute stats, with the same locations, and the same
late readings as the brute-force computation the in-process test checks against
(tests/examples/test_sensor_stats.py)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.examples.test_sensor_stats import (
    BLUEPRINT,
    expected,
    late_readings,
    readings,
    result_rows,
)
from tests.integration.conftest import FLOW


@pytest.mark.slow
def test_the_sensor_stats_example_on_kafka_gives_the_in_process_results(tmp_path: Path) -> None:
    out = tmp_path / "minute-stats.jsonl"
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            FLOW,
            "run-local",
            str(BLUEPRINT),
            "--kafka",
            "--run-dir",
            str(run),
            "--set",
            f"stats-file.path={out}",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    # Both replicas of the windowed streamlet ran (each owns the sensors of 2 partitions).
    assert "[per-minute-0]" in proc.stderr and "[per-minute-1]" in proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert result_rows(records) == expected()
    rows = readings()
    dead = [json.loads(line) for line in (run / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["stage"] for d in dead] == ["late"] * len(late_readings(rows))
    assert Counter(d["key"] for d in dead) == Counter(
        rows[i]["sensor_id"] for i in late_readings(rows)
    )
