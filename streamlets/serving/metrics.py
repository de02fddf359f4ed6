"""Per-model counters and latency histograms of the model-serving streamlet.

:class:`ServingMetrics` is also a Prometheus collector: a runner that serves ``/metrics``
registers the instance's ``metrics`` (``registry.register(streamlet.metrics)``) to export
``streamlets_serving_*`` series labelled by model.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

__all__ = ["LATENCY_BUCKETS", "ModelMetrics", "ServingMetrics"]

#: Upper bounds (seconds) of the request latency histogram, Prometheus style.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Upper bounds of the batch size histogram.
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


@dataclass
class Histogram:
    """Cumulative-style histogram: counts per bucket upper bound, plus sum and count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    @property
    def mean(self) -> float:
        """The mean observation (0 when there is none)."""
        return self.total / self.count if self.count else 0.0


@dataclass
class ModelMetrics:
    """What happened with one model (``name:version@url``)."""

    requests: int = 0
    records: int = 0
    errors: int = 0
    rejected_records: int = 0
    retries: int = 0
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    batch_sizes: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))


@dataclass(eq=False)  # hashable by identity: a Prometheus registry keys collectors by them
class ServingMetrics:
    """Metrics of one streamlet instance, by model label."""

    models: dict[str, ModelMetrics] = field(default_factory=dict)

    def model(self, label: str) -> ModelMetrics:
        """The metrics of the model ``label`` (created on first use)."""
        found = self.models.get(label)
        if found is None:
            found = self.models[label] = ModelMetrics()
        return found

    def collect(self) -> Iterator[Metric]:
        """Prometheus metric families of every model seen so far (the Collector protocol)."""
        counters: dict[str, tuple[str, Callable[[ModelMetrics], int]]] = {
            "requests": ("Inference requests answered.", lambda m: m.requests),
            "records": ("Records scored.", lambda m: m.records),
            "errors": ("Failed inference requests (all causes).", lambda m: m.errors),
            "rejected_records": ("Records the model rejected.", lambda m: m.rejected_records),
            "retries": ("Requests sent again after a transient error.", lambda m: m.retries),
        }
        for name, (doc, value) in counters.items():
            family = CounterMetricFamily(f"streamlets_serving_{name}", doc, labels=["model"])
            for label, m in self.models.items():
                family.add_metric([label], value(m))
            yield family
        histograms: dict[str, tuple[str, Callable[[ModelMetrics], Histogram]]] = {
            "request_latency_seconds": ("Inference request latency.", lambda m: m.latency),
            "batch_records": ("Records per inference request.", lambda m: m.batch_sizes),
        }
        for name, (doc, pick) in histograms.items():
            hist = HistogramMetricFamily(f"streamlets_serving_{name}", doc, labels=["model"])
            for label, m in self.models.items():
                h = pick(m)
                running = 0
                buckets = []
                for bound, count in zip([*h.bounds, float("inf")], h.counts, strict=True):
                    running += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
                hist.add_metric([label], buckets, h.total)
            yield hist

    def request(self, label: str, records: int, seconds: float) -> None:
        """Count one successful request of ``records`` records that took ``seconds``."""
        m = self.model(label)
        m.requests += 1
        m.records += records
        m.latency.observe(seconds)
        m.batch_sizes.observe(records)
