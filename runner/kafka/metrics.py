"""Per-process observability: Prometheus ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP.

``/healthz`` answers 200 while the processing loop is alive (it went round recently and
has not failed); ``/readyz`` answers 200 once the process has joined its consumer group
(or, for a source, connected its producer), its state stores have caught up from their
changelog topics, and it is not shutting down.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from runner.runtime.stats import StatsCollector, StreamletStats

__all__ = ["Health", "MetricsServer", "StreamletMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class StreamletMetrics:
    """The metrics of one streamlet process, in their own registry: the counters of
    ``read_stats()`` (see :class:`~runner.runtime.stats.StatsCollector`), commits, latency
    and batch-size histograms, and consumer lag."""

    def __init__(
        self, app: str, streamlet: str, replica: int, read_stats: Callable[[], StreamletStats]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"app": app, "streamlet": streamlet, "replica": str(replica)}
        names = list(labels)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, [*names, *extra], registry=self.registry)

        self.commits = counter("streamlets_commits", "Offset (or transaction) commits.").labels(
            **labels
        )
        self.process_latency = Histogram(
            "streamlets_process_latency_seconds",
            "Time to decode, process and encode one batch of records, per batch.",
            names,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.batch_size = Histogram(
            "streamlets_batch_records",
            "Records per processed batch.",
            names,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500),
            registry=self.registry,
        ).labels(**labels)
        self.commit_latency = Histogram(
            "streamlets_commit_latency_seconds",
            "Time to flush outputs and commit input offsets (or a transaction).",
            names,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        state_labels = [*names, "state"]
        self.changelog_records = counter(
            "streamlets_state_changelog_records",
            "State changes written to the changelog topics (the latest per key and commit).",
        ).labels(**labels)
        self._restored = Counter(
            "streamlets_state_restored_records",
            "Changelog records written to the state stores while restoring them.",
            state_labels,
            registry=self.registry,
        )
        self._restore_seconds = Gauge(
            "streamlets_state_restore_seconds",
            "Seconds the last restore of a partition's state took (so far, while it runs).",
            [*state_labels, "partition"],
            registry=self.registry,
        )
        self.state_restoring = Gauge(
            "streamlets_state_restoring_partitions",
            "Partitions whose state stores are catching up from their changelogs (their "
            "records wait; /readyz answers 503 meanwhile).",
            names,
            registry=self.registry,
        ).labels(**labels)
        self._lag = Gauge(
            "streamlets_consumer_lag",
            "Records behind the end of each assigned partition (as the broker reports it).",
            [*names, "topic", "partition"],
            registry=self.registry,
        )
        self._labels = labels
        self.registry.register(StatsCollector(read_stats, labels))
        self._state_entries = Gauge(
            "streamlets_state_entries",
            "Entries in the process's state stores (RocksDB's estimate), when it keeps state.",
            names,
            registry=self.registry,
        )
        self._open_windows = Gauge(
            "streamlets_open_windows",
            "Windows open in the process (over every key of its partitions), when it has some.",
            names,
            registry=self.registry,
        )

    def set_sizes(self, state_entries: int | None, open_windows: int | None) -> None:
        """Set the state's entries and the open windows (``None``: the process has none)."""
        if state_entries is not None:
            self._state_entries.labels(**self._labels).set(state_entries)
        if open_windows is not None:
            self._open_windows.labels(**self._labels).set(open_windows)

    def restored(self, state: str, records: int) -> None:
        """Count ``records`` changelog records restored into ``state``'s stores."""
        self._restored.labels(**self._labels, state=state).inc(records)

    def restore_seconds(self, state: str, partition: int, seconds: float) -> None:
        """Set how long the restore of ``state`` in ``partition`` took (so far)."""
        self._restore_seconds.labels(**self._labels, state=state, partition=str(partition)).set(
            seconds
        )

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        """Set the consumer lag of one partition."""
        self._lag.labels(**self._labels, topic=topic, partition=str(partition)).set(lag)

    def forget_lag(self, topic: str, partition: int) -> None:
        """Drop the lag of a partition this process no longer owns."""
        with contextlib.suppress(KeyError):
            self._lag.remove(*self._labels.values(), topic, str(partition))


class Health:
    """Liveness and readiness of the process, as the probes see them."""

    def __init__(self, stall_seconds: float = 60.0) -> None:
        self.stall_seconds = stall_seconds
        self.ready = False
        #: Partitions whose state stores catch up from their changelogs.
        self.restoring = 0
        self.failed: str | None = None
        self.stopping = False
        self._beat = time.monotonic()

    def beat(self) -> None:
        """The processing loop went round once."""
        self._beat = time.monotonic()

    def live(self) -> tuple[bool, str]:
        """Whether the process is alive, with a reason."""
        if self.failed is not None:
            return False, f"failed: {self.failed}"
        idle = time.monotonic() - self._beat
        if idle > self.stall_seconds:
            return False, f"the processing loop has not run for {idle:.0f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Whether the process takes work, with a reason."""
        alive, why = self.live()
        if not alive:
            return False, why
        if self.stopping:
            return False, "shutting down"
        if not self.ready:
            return False, "starting: not yet joined the consumer group"
        if self.restoring:
            return False, (
                f"restoring state: {self.restoring} partition(s) catching up from their "
                "changelog topics"
            )
        return True, "ok"


class MetricsServer:
    """A small HTTP server in a daemon thread: /metrics, /healthz, /readyz."""

    def __init__(
        self, metrics: StreamletMetrics, health: Health, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/livez"):
                    ok, why = health.live()
                    self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
                elif path == "/readyz":
                    ok, why = health.readiness()
                    self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # probes every few seconds would flood the log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="metrics-http", daemon=True
        )

    def start(self) -> MetricsServer:
        """Serve in the background."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
