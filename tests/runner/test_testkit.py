"""The testkit as a user's tests use it: what a blueprint run runs, and config checks."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from runner.testkit import TestkitError, run_blueprint, run_streamlet
from streamlets import Inlet, Outlet, Streamlet
from streamlets.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SENSORS = ROOT / "examples" / "sensors"


@pytest.fixture
def sensors(tmp_path: Path) -> Path:
    """A copy of the sensors example (its sink writes next to its blueprint)."""
    app = tmp_path / "sensors"
    shutil.copytree(SENSORS, app, ignore=shutil.ignore_patterns("output", "runs", "__pycache__"))
    return app / "blueprint.yaml"


def _readings(*temperatures: float) -> list[object]:
    from sensors.streamlets import Reading  # type: ignore[import-not-found]

    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Reading(sensor_id=f"s{i}", temperature=t, taken_at=at) for i, t in enumerate(temperatures)
    ]


def test_injected_records_replace_the_source_and_the_sink_of_a_collected_topic_is_not_run(
    sensors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(sensors.parent))
    result = run_blueprint(
        sensors,
        inject={"readings": _readings(26.0, 20.0, 31.0, 40.0)},
        collect=["alerts"],
        sets=["threshold.limit=25"],
    )
    assert result.error is None
    # The three readings above 25, not those of the example's 1,000-line file.
    assert sorted(a.temperature for a in result.topics["alerts"]) == [26.0, 31.0, 40.0]
    assert result.ran == ("threshold",)
    assert set(result.stats) == {"threshold"}
    # The sink did not run, so it wrote (and overwrote) nothing.
    assert not (sensors.parent / "output").exists()


def test_without_inject_the_sources_run_and_without_collect_the_sinks(sensors: Path) -> None:
    collected = run_blueprint(sensors, collect=["alerts"])
    assert collected.ran == ("ingest", "threshold")
    assert len(collected.topics["alerts"]) == 98  # the example's file, limit 30
    assert not (sensors.parent / "output").exists()

    everything = run_blueprint(sensors)
    assert everything.ran == ("ingest", "threshold", "store")
    written = (sensors.parent / "output" / "alerts.jsonl").read_text().splitlines()
    assert len(written) == 98


def test_a_source_that_feeds_another_inlet_of_what_runs_runs_too(
    sensors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(sensors.parent))
    # Injecting into `alerts` runs the sink only: nothing else feeds it.
    result = run_blueprint(sensors, inject={"alerts": []}, streamlets=None)
    assert result.ran == ("store",)
    explicit = run_blueprint(sensors, collect=["alerts"], streamlets=["threshold"])
    assert explicit.ran == ("threshold",) and explicit.topics["alerts"] == []
    with pytest.raises(TestkitError, match="no such streamlet; it has ingest, threshold, store"):
        run_blueprint(sensors, streamlets=["treshold"])


class Price(BaseModel):
    amount: float


class AddTax(Streamlet):
    prices = Inlet(Price)
    out = Outlet(Price)

    class Config(BaseModel):
        rate: float = 0.2

    def process(self, price: Price) -> Price:
        return Price(amount=price.amount * (1 + self.config.rate))


def test_run_streamlet_refuses_an_unknown_config_key_as_verify_does() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'rates'.*did you mean 'rate'\?"):
        run_streamlet(AddTax, {"prices": [Price(amount=1.0)]}, config={"rates": 0.5})
    with pytest.raises(ConfigError, match=r"unknown config key 'tax' \(AddTax.Config has rate\)"):
        AddTax({"tax": 1})
    result = run_streamlet(AddTax, {"prices": [Price(amount=10.0)]}, config={"rate": 0.5})
    assert result.outputs["out"] == [Price(amount=15.0)]
