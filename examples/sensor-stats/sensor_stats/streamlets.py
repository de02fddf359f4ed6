"""Streamlets of the sensor-stats example: temperature readings in, per sensor and minute
their mean, max and count (a tumbling window), each joined with the sensor's location (a
global table).

The readings are keyed by sensor, so each sensor's readings reach the replica of
``MinuteStats`` that owns its partition, in order, and its windows are that replica's
state. The locations are a small reference table: every replica of ``AddLocation`` reads
all of it (``table="global"``), so the stats need not be partitioned like it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, Streamlet, Windowed
from streamlets.library import FileSource
from streamlets.windows import Count, Max, Mean, Tumbling, Window


class Reading(BaseModel):
    """One temperature reading of one sensor."""

    sensor_id: str
    temperature: float
    taken_at: datetime = Field(description="when the sensor took it: the event time")


class Location(BaseModel):
    """Where a sensor is: a record of the locations table, keyed by sensor."""

    sensor_id: str
    site: str
    room: str
    installed_at: datetime = Field(description="since when it is there: the record's time")


class SensorMinute(BaseModel):
    """The readings of one sensor in one minute."""

    sensor_id: str
    start: datetime = Field(description="the minute's start (included)")
    end: datetime = Field(description="the minute's end (excluded)")
    mean: float = Field(description="mean temperature, rounded to 0.01")
    max: float
    count: int = Field(description="readings in the minute")


class LocatedStats(SensorMinute):
    """A sensor's minute with the sensor's location (null when the table has none)."""

    site: str | None = None
    room: str | None = None


class ReadingSource(FileSource):
    """Reads readings from a JSON Lines file, keyed by sensor: all of one sensor's readings
    go to one partition, in the file's order."""

    # FileSource's own outlet takes its schema from config: this one is fixed, and keyed.
    out = Outlet(Reading, key="sensor_id")  # type: ignore[assignment]


class LocationSource(FileSource):
    """Reads the sensors' locations, keyed by sensor (the table's key) and stamped with
    ``installed_at``: a location's record is older than any reading of its sensor, so a
    join that has both at hand applies the location first (records in timestamp order)."""

    out = Outlet(Location, key="sensor_id", timestamp="installed_at")  # type: ignore[assignment]


class MinuteStats(Streamlet):
    """Mean, max and count of each sensor's temperature per minute (event time), emitted
    once per sensor and minute when the minute closes: once stream time is ``grace`` past
    its end, or at the end of a bounded run. A reading that comes after its minute closed
    is late and goes to the dead letters (stage ``late``)."""

    readings = Inlet(Reading, timestamp="taken_at")  # keyed by sensor (the producer's key)
    stats = Outlet(SensorMinute)  # keyed by the window's key (the sensor), at the minute's end

    minutes = Window(
        Tumbling("1m", grace="20s"),
        {"mean": Mean("temperature"), "max": Max("temperature"), "count": Count()},
        late="dead-letter",
        description="each sensor's readings per minute",
    )

    @minutes.on_close
    def close_minute(self, window: Windowed[dict[str, Any]]) -> SensorMinute:
        stats = window.value
        return SensorMinute(
            sensor_id=window.key,
            start=window.start,
            end=window.end,
            mean=round(stats["mean"], 2),
            max=stats["max"],
            count=stats["count"],
        )


class AddLocation(Streamlet):
    """Joins each sensor minute with its sensor's location (a left join: a minute of a
    sensor the table does not know goes out too, with ``site`` and ``room`` null)."""

    stats = Inlet(SensorMinute)
    locations = Inlet(Location, table="global")  # every replica holds every sensor
    located = Outlet(LocatedStats)

    def process(self, minute: SensorMinute) -> LocatedStats:
        location = self.locations.get(minute.sensor_id)  # Location | None
        return LocatedStats(
            **minute.model_dump(),
            site=None if location is None else location.site,
            room=None if location is None else location.room,
        )
