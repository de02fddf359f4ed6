"""Streamlets of the sensor-alerts example: read readings, flag hot ones, store alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, OutputPath, Streamlet


class Reading(BaseModel):
    """One temperature reading of one sensor."""

    sensor_id: str
    temperature: float
    taken_at: datetime
    unit: str = "celsius"


class Alert(BaseModel):
    """A reading above the configured limit."""

    sensor_id: str
    temperature: float
    limit: float
    taken_at: datetime


class ReadingSource(Streamlet):
    """Reads readings from a JSON Lines file (a bounded source), keyed by sensor: each
    sensor's readings go to one partition, so one replica sees them all, in order."""

    out = Outlet(Reading, key="sensor_id")

    class Config(BaseModel):
        path: Path = Field(description="JSON Lines file with one reading per line")

    config: Config

    def is_bounded(self) -> bool:
        return True  # a file ends; `flow deploy` suggests --job ingest for it

    def generate(self) -> Iterator[Reading]:
        with self.config.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield Reading.model_validate(json.loads(line))


class Threshold(Streamlet):
    """Emits an alert for each reading above the limit."""

    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    class Config(BaseModel):
        limit: float = Field(30.0, description="alert when the temperature is above this")

    config: Config

    def process(self, reading: Reading) -> Alert | None:
        if reading.temperature > self.config.limit:
            return Alert(
                sensor_id=reading.sensor_id,
                temperature=reading.temperature,
                limit=self.config.limit,
                taken_at=reading.taken_at,
            )
        return None


class AlertFile(Streamlet):
    """Writes each alert to a JSON Lines file (replaced at the start of each run)."""

    alerts = Inlet(Alert)

    class Config(BaseModel):
        path: OutputPath = Field(description="JSON Lines file the alerts are written to")

    config: Config

    def setup(self) -> None:
        self.config.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.config.path.open("w", encoding="utf-8")  # a fresh file per run

    def process(self, alert: Alert) -> None:
        self._file.write(alert.model_dump_json() + "\n")
        self._file.flush()

    def teardown(self) -> None:
        self._file.close()


class CelsiusReading(BaseModel):
    """A reading whose temperature is a whole number (used by broken.yaml)."""

    sensor_id: str
    temperature: int
    taken_at: datetime
    unit: str


class IntThreshold(Streamlet):
    """Like Threshold but reads integer temperatures: cannot read what ReadingSource writes."""

    readings = Inlet(CelsiusReading)
    alerts = Outlet(Alert)

    class Config(BaseModel):
        limit: int = 30

    def process(self, reading: CelsiusReading) -> None:
        return None
