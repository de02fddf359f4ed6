"""Counters merge one way everywhere, and /metrics reads them where they are kept."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from runner.runtime.stats import StatsCollector, StreamletStats


def test_total_adds_every_counter_and_stage() -> None:
    a = StreamletStats(records_in=2, records_out=1, errors=1, dead_lettered=1, by_stage={"x": 1})
    b = StreamletStats(records_in=3, skipped=2, errors=2, process_seconds=0.5, by_stage={"x": 2})
    total = StreamletStats.total([a, b])
    assert total == StreamletStats(
        records_in=5,
        records_out=1,
        errors=3,
        dead_lettered=1,
        skipped=2,
        process_seconds=0.5,
        by_stage={"x": 3},
    )
    assert a.records_in == 2 and a.by_stage == {"x": 1}  # parts unchanged


def test_stats_round_trip_through_json_data() -> None:
    stats = StreamletStats(records_in=1, errors=1, by_stage={"decode": 1})
    assert StreamletStats.from_dict(stats.to_dict()) == stats
    assert StreamletStats.from_dict({"records_in": 4, "unknown": 1}).records_in == 4


def test_the_collector_reads_the_live_counters_at_each_scrape() -> None:
    stats = StreamletStats()
    registry = CollectorRegistry()
    registry.register(StatsCollector(lambda: stats, {"app": "a", "streamlet": "s"}))
    stats.records_in = 7
    stats.count_error("decode")
    text = generate_latest(registry).decode()
    assert 'streamlets_records_in_total{app="a",streamlet="s"} 7.0' in text
    assert 'streamlets_record_errors_total{app="a",stage="decode",streamlet="s"} 1.0' in text
    stats.records_in = 9
    assert 'streamlets_records_in_total{app="a",streamlet="s"} 9.0' in (
        generate_latest(registry).decode()
    )
