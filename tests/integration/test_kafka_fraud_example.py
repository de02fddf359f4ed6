"""The fraud-counters example under ``flow run-local --kafka`` (one process per replica, an
embedded broker of its own): the same alerts as the direct computation the in-process test
checks against (tests/examples/test_fraud_counters.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.examples.test_fraud_counters import BLUEPRINT, alert_rows, expected, transactions
from tests.integration.conftest import FLOW


@pytest.mark.slow
def test_the_fraud_example_on_kafka_alerts_as_in_process(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.jsonl"
    proc = subprocess.run(
        [
            FLOW,
            "run-local",
            str(BLUEPRINT),
            "--kafka",
            "--run-dir",
            str(tmp_path / "run"),
            "--set",
            f"alerts-file.path={alerts}",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    # Both replicas of the stateful streamlet took partitions (and so kept state).
    assert "[spending-0]" in proc.stderr and "[spending-1]" in proc.stderr
    got = alert_rows([json.loads(line) for line in alerts.read_text().splitlines()])
    want, _ = expected(transactions())
    assert got == want
