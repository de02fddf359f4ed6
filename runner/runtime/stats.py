"""Per-streamlet counters: kept by each executor, merged over replicas and incarnations by
the runners, and exported to Prometheus by one collector."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["StatsCollector", "StreamletStats"]


@dataclass(slots=True)
class StreamletStats:
    """Counters of one streamlet instance, or the sum of several (see :meth:`add`)."""

    records_in: int = 0
    records_out: int = 0
    errors: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    #: records that came after every window they belong to had closed
    late: int = 0
    process_seconds: float = 0.0
    by_stage: dict[str, int] = field(default_factory=dict)

    def count_error(self, stage: str) -> None:
        """Count one failed record at ``stage``."""
        self.errors += 1
        self.by_stage[stage] = self.by_stage.get(stage, 0) + 1

    def add(self, other: StreamletStats) -> StreamletStats:
        """Add ``other``'s counters to these (in place); returns ``self``."""
        self.records_in += other.records_in
        self.records_out += other.records_out
        self.errors += other.errors
        self.dead_lettered += other.dead_lettered
        self.skipped += other.skipped
        self.late += other.late
        self.process_seconds += other.process_seconds
        for stage, n in other.by_stage.items():
            self.by_stage[stage] = self.by_stage.get(stage, 0) + n
        return self

    @classmethod
    def total(cls, parts: Iterable[StreamletStats]) -> StreamletStats:
        """The sum of ``parts`` (a new value; the parts are not changed)."""
        total = cls()
        for part in parts:
            total.add(part)
        return total

    def to_dict(self) -> dict[str, Any]:
        """The counters as JSON-able data (for status files)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["by_stage"] = dict(self.by_stage)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamletStats:
        """Counters from :meth:`to_dict`'s data (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["by_stage"] = dict(values.get("by_stage") or {})
        return cls(**values)


class StatsCollector(Collector):
    """The counters of ``read()`` as Prometheus counters, read at each scrape.

    ``streamlets_records_in_total``, ``streamlets_records_out_total``,
    ``streamlets_record_errors_total{stage}``, ``streamlets_dead_letters_total``,
    ``streamlets_records_skipped_total`` and ``streamlets_late_records_total``, each with
    ``labels`` (app, streamlet, replica).
    Reading the counters where they are kept means they are never copied or counted twice.
    """

    def __init__(self, read: Callable[[], StreamletStats], labels: Mapping[str, str]) -> None:
        self._read = read
        self._names = list(labels)
        self._values = list(labels.values())

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=self._names)
        family.add_metric(self._values, value)
        return family

    def collect(self) -> Iterator[Metric]:
        """The current counters (called by the registry at each scrape)."""
        s = self._read()
        yield self._counter("streamlets_records_in", "Records read from inlets.", s.records_in)
        yield self._counter("streamlets_records_out", "Records written to outlets.", s.records_out)
        errors = CounterMetricFamily(
            "streamlets_record_errors",
            "Records that failed, by stage.",
            labels=[*self._names, "stage"],
        )
        for stage, n in sorted(s.by_stage.items()):
            errors.add_metric([*self._values, stage], n)
        yield errors
        yield self._counter(
            "streamlets_dead_letters", "Records written to the dead-letter topic.", s.dead_lettered
        )
        yield self._counter("streamlets_records_skipped", "Failed records skipped.", s.skipped)
        yield self._counter(
            "streamlets_late_records", "Records too late for every window they belong to.", s.late
        )
