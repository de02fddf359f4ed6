"""Snapshots of what ``flow deploy`` writes for the examples.

A change to the generated YAML shows up here as a diff to review. To accept it, run
``STREAMLETS_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/runner/test_k8s_snapshot.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runner.cli import cli
from tests.integration.test_manifests_app import write_orders_app

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).parent / "snapshots"


def rendered(args: list[str], out: Path) -> str:
    result = CliRunner().invoke(cli, ["deploy", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    names = ["kustomization.yaml", *kustomization["resources"]]
    return "".join(f"# ==> {name} <==\n{(out / name).read_text()}" for name in names)


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("STREAMLETS_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"no snapshot {path}; create it with STREAMLETS_UPDATE_SNAPSHOTS=1")
    assert text == path.read_text(encoding="utf-8"), (
        f"the manifests differ from {path}; review the change and, when it is intended, "
        "update with STREAMLETS_UPDATE_SNAPSHOTS=1"
    )


def test_sensors_example(tmp_path: Path) -> None:
    blueprint = ROOT / "examples" / "sensors" / "blueprint.yaml"
    text = rendered(
        [
            str(blueprint),
            "--image",
            "registry.example/sensors:1.0",
            "--namespace",
            "prod",
            "--scale",
            "threshold=4",
            "--autoscale",
        ],
        tmp_path / "out",
    )
    check("sensors.yaml", text)


def test_orders_app_with_ingress_and_secrets(tmp_path: Path) -> None:
    blueprint, config = write_orders_app(tmp_path / "orders")
    text = rendered(
        [
            str(blueprint),
            "--image",
            "registry.example/orders:2",
            "--config",
            str(config),
            "--ingress",
            "http-in=orders.example.com",
        ],
        tmp_path / "out",
    )
    check("orders.yaml", text)


def test_fraud_counters_example_with_state(tmp_path: Path) -> None:
    """A stateful streamlet: a StatefulSet with a claim per pod, changelog KafkaTopics."""
    blueprint = ROOT / "examples" / "fraud-counters" / "blueprint.yaml"
    text = rendered(
        [
            str(blueprint),
            "--image",
            "registry.example/fraud:1",
            "--set",
            "alerts-file.mode=append",
            "--set",
            "alerts-file.path=/tmp/alerts.jsonl",
        ],
        tmp_path / "out",
    )
    check("fraud-counters.yaml", text)


def test_sensor_stats_example_with_a_window_and_a_global_table(tmp_path: Path) -> None:
    """A windowed streamlet (a StatefulSet, the window's changelog KafkaTopic), a join with
    a global table (a Deployment), the bounded sources as Jobs."""
    blueprint = ROOT / "examples" / "sensor-stats" / "blueprint.yaml"
    text = rendered(
        [
            str(blueprint),
            "--image",
            "registry.example/sensor-stats:1",
            "--job",
            "readings",
            "--job",
            "locations",
            "--set",
            "stats-file.mode=append",
            "--set",
            "stats-file.path=/tmp/minute-stats.jsonl",
        ],
        tmp_path / "out",
    )
    check("sensor-stats.yaml", text)
