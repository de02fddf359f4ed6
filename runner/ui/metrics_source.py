"""The live view's reading of running streamlet processes through their ``/metrics``
(``flow ui BLUEPRINT --metrics URL ...``): wherever they run (Kubernetes pods, other
machines), each process's Prometheus counters, consumer lag and ``/healthz``.

Each URL is one process (``http://host:port``, with or without ``/metrics``); the labels
of its metrics (``streamlet``, ``replica``) say which replica it is. A process that does
not answer is ``unreachable``, and so is a streamlet that no URL has reported. The
contents of errors and dead letters are not in the metrics (their counts are): the view
lists none in this mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from blueprint import VerifiedBlueprint
from runner.runtime.messages import DeadLetter
from runner.runtime.stats import StreamletStats
from runner.ui.view import Reading, StreamletReading

__all__ = ["MetricsSource", "ProcessMetrics", "metrics_url", "parse_metrics"]

#: Seconds a process gets to answer a scrape.
SCRAPE_TIMEOUT = 2.0

_COUNTERS = {
    "streamlets_records_in": "records_in",
    "streamlets_records_out": "records_out",
    "streamlets_dead_letters": "dead_lettered",
    "streamlets_records_skipped": "skipped",
    "streamlets_late_records": "late",
}


def metrics_url(url: str) -> str:
    """``url`` with ``/metrics`` at its end (``http://`` in front when it has no scheme)."""
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    return url if url.endswith("/metrics") else url + "/metrics"


@dataclass(slots=True)
class ProcessMetrics:
    """What one process's ``/metrics`` said."""

    app: str = ""
    streamlet: str = ""
    replica: int = 0
    stats: StreamletStats = field(default_factory=StreamletStats)
    lag: int | None = None
    restoring: int | None = None
    state_entries: int | None = None
    open_windows: int | None = None


def parse_metrics(text: str) -> ProcessMetrics:
    """The counters of a streamlet process's Prometheus text (see runner.kafka.metrics)."""
    found = ProcessMetrics()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if "streamlet" in labels and not found.streamlet:
                found.streamlet = labels["streamlet"]
                found.app = labels.get("app", "")
                found.replica = int(labels.get("replica", "0") or 0)
            if sample.name.endswith("_created"):
                continue
            name = family.name
            if name in _COUNTERS:
                setattr(found.stats, _COUNTERS[name], int(sample.value))
            elif name == "streamlets_record_errors":
                stage = labels.get("stage", "")
                found.stats.by_stage[stage] = int(sample.value)
                found.stats.errors += int(sample.value)
            elif name == "streamlets_consumer_lag":
                found.lag = (found.lag or 0) + int(sample.value)
            elif name == "streamlets_state_restoring_partitions":
                found.restoring = int(sample.value)
            elif name == "streamlets_state_entries":
                found.state_entries = int(sample.value)
            elif name == "streamlets_open_windows":
                found.open_windows = int(sample.value)
    return found


class MetricsSource:
    """Scrapes every URL of ``urls`` at each reading (in parallel)."""

    mode = "metrics"

    def __init__(self, blueprint: VerifiedBlueprint, urls: Sequence[str]) -> None:
        self.blueprint = blueprint
        self.urls = [metrics_url(u) for u in urls]
        self._pool = ThreadPoolExecutor(max_workers=min(max(len(self.urls), 1), 16))
        #: url -> (streamlet, replica), from its last answer
        self._known: dict[str, tuple[str, int]] = {}
        self._client = httpx.Client(timeout=SCRAPE_TIMEOUT)

    def _scrape(self, url: str) -> tuple[ProcessMetrics | None, str]:
        try:
            response = self._client.get(url)
            response.raise_for_status()
            found = parse_metrics(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            return None, f"{url}: {type(exc).__name__}: {exc}"
        health = "running"
        try:
            probe = self._client.get(url[: -len("/metrics")] + "/healthz")
            if probe.status_code != 200:
                health = "failed"
        except httpx.HTTPError:
            pass  # the metrics answered: it runs
        if health == "running" and found.restoring:
            health = "starting"
        return found, health

    def read(self) -> Reading:
        """Every process's counters now."""
        results = list(self._pool.map(self._scrape, self.urls))
        streamlets = {
            name: StreamletReading(StreamletStats(), []) for name in self.blueprint.streamlets
        }
        seen: dict[str, dict[int, str]] = {name: {} for name in self.blueprint.streamlets}
        problems = []
        for url, (found, said) in zip(self.urls, results, strict=True):
            if found is None:
                problems.append(said)
                known = self._known.get(url)
                if known is not None and known[0] in seen:
                    seen[known[0]][known[1]] = "unreachable"
                continue
            if found.streamlet not in streamlets:
                problems.append(f"{url}: streamlet '{found.streamlet}' is not in the blueprint")
                continue
            self._known[url] = (found.streamlet, found.replica)
            item = streamlets[found.streamlet]
            item.stats.add(found.stats)
            if found.lag is not None:
                item.lag = (item.lag or 0) + found.lag
            if found.state_entries is not None:
                item.state_entries = (item.state_entries or 0) + found.state_entries
            if found.open_windows is not None:
                item.open_windows = (item.open_windows or 0) + found.open_windows
            seen[found.streamlet][found.replica] = said
        for name, item in streamlets.items():
            item.replicas = [h for _, h in sorted(seen[name].items())] or ["unreachable"]
        topics: dict[str, int | None] = {}
        for key, topic in self.blueprint.topics.items():
            total: int | None = 0
            for ref in topic.producers:
                outlets = self.blueprint.outlet_topics(ref.streamlet, ref.port)
                only = len(self.blueprint.streamlets[ref.streamlet].cls.outlets()) == 1
                if not (only and len(outlets) == 1) or total is None:
                    total = None  # its outputs go to several topics: not known per topic
                    continue
                total += streamlets[ref.streamlet].stats.records_out
            topics[key] = total
        error = "; ".join(problems) if problems else None
        return Reading(streamlets, topics, "running", error)

    def errors(self, streamlet: str) -> list[dict[str, Any]]:
        """None: the metrics count errors but do not say what they were."""
        return []

    def dead_letters(self, streamlet: str) -> Sequence[DeadLetter]:
        """None: the metrics count dead letters; they are on the dead-letter topic."""
        return []

    def close(self) -> None:
        """Release the connections and the threads."""
        self._pool.shutdown(wait=False)
        self._client.close()
