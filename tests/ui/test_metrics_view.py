"""The live view over processes' /metrics (`flow ui --metrics`): the real metrics server of
a streamlet process, read by the view's source."""

from __future__ import annotations

from pathlib import Path

from blueprint import verify
from runner.kafka.broker import free_port
from runner.kafka.metrics import Health, MetricsServer, StreamletMetrics
from runner.runtime.stats import StreamletStats
from runner.ui.metrics_source import MetricsSource, metrics_url
from runner.ui.view import LiveView
from tests.ui.runs import write_app
from tests.ui.test_api import BOUNDED


def test_metrics_urls() -> None:
    assert metrics_url("pod-a:9090") == "http://pod-a:9090/metrics"
    assert metrics_url("http://pod-a:9090/") == "http://pod-a:9090/metrics"
    assert metrics_url("http://pod-a:9090/metrics") == "http://pod-a:9090/metrics"


def test_the_view_reads_each_process_from_its_metrics(tmp_path: Path) -> None:
    result = verify(write_app(tmp_path, BOUNDED))
    assert result.blueprint is not None
    blueprint = result.blueprint
    stats = StreamletStats(records_in=120, records_out=100, dead_lettered=20)
    stats.count_error("process")
    metrics = StreamletMetrics(blueprint.name, "check", 0, lambda: stats)
    metrics.set_lag("counters", 0, 7)
    metrics.set_lag("counters", 1, 5)
    metrics.set_sizes(42, 3)
    health = Health()
    server = MetricsServer(metrics, health).start()
    gone = free_port()  # nothing listens there
    source = MetricsSource(
        blueprint, [f"http://127.0.0.1:{server.port}", f"http://127.0.0.1:{gone}/metrics"]
    )
    try:
        view = LiveView(blueprint, source)
        status = view.tick()
        check = status["streamlets"]["check"]
        assert check["health"] == "running" and check["replicas"] == ["running"]
        assert (check["records_in"], check["records_out"]) == (120, 100)
        assert (check["errors"], check["dead_letters"], check["lag"]) == (1, 20, 12)
        assert (check["state_entries"], check["open_windows"]) == (42, 3)
        assert status["streamlets"]["drop"]["state_entries"] is None  # no process reported
        assert status["streamlets"]["gen"]["health"] == "unreachable"  # no URL for it
        assert status["topics"]["checked"]["records"] == 100  # check's one outlet
        assert f"127.0.0.1:{gone}" in status["error"]

        stats.records_in += 50
        health.failed = "a record failed"
        later = view.tick()
        assert later["streamlets"]["check"]["records_in"] == 170
        assert later["streamlets"]["check"]["in_per_second"] > 0
        assert later["streamlets"]["check"]["health"] == "failed"  # its /healthz says so

        server.stop()
        gone_too = view.tick()
        assert gone_too["streamlets"]["check"]["health"] == "unreachable"
        detail = view.streamlet("check")
        assert detail is not None and detail["errors"] == [] and detail["dead_letters"] == []
    finally:
        source.close()
