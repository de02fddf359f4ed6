"""Benchmark: a tumbling one-minute mean per key, our Kafka runner against Quix Streams.

Both run on the same embedded broker in the same run, on the same input: ``--records``
Avro readings (default 200,000) of ``--keys`` sensors (default 1,000) over 3 partitions,
each sensor reading once a second (the records' Kafka timestamps), so the input spans
``records / keys`` seconds and every sensor has a window per minute. Each computes the
mean temperature per sensor and minute and writes one Avro ``{key, start, end, avg}``
record per window when it closes:

- ours: ``streamlets.library:WindowAggregate`` (``window: {type: tumbling, size: 60s}``,
  ``aggregates: {avg: {mean: temperature}}``, ``emit: final``) under ``StreamletProcess``
  (what ``flow run-streamlet`` runs), at-least-once;
- quixstreams: ``sdf.tumbling_window(60 s).agg(avg=Mean("temperature")).final()`` with its
  RocksDB state and changelog topics, the same Avro schemas through its
  ``AvroDeserializer``/``AvroSerializer``.

Times count from the first record consumed to the last one handled (the consumer-group
join is left out); CPU is the process's, all threads. Rounds interleave the loops; each
loop's best round is reported.

    .venv/bin/python benchmarks/windows.py --quix-python .cache/bench-quix/bin/python
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.kafka_runner import _rate, run_worker, worker_ours  # noqa: E402

READING = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "sensor", "type": "string"},
        {"name": "temperature", "type": "double"},
        {"name": "payload", "type": "string"},
    ],
}
MEAN = {
    "type": "record",
    "name": "WindowResult",
    "fields": [
        {"name": "start", "type": "long"},
        {"name": "end", "type": "long"},
        {"name": "avg", "type": ["null", "double"]},
    ],
}
BASE = 1_700_000_000_000
TOPIC = "windows-bench-input"

BLUEPRINT = """
name: windows-bench-{run}
streamlets:
  mean:
    class: streamlets.library:WindowAggregate
    config:
      input: {reading}
      window: {{type: tumbling, size: 60s}}
      aggregates: {{avg: {{mean: temperature}}}}
      emit: final
topics:
  input: {{name: {topic}, consumers: [mean.records], partitions: 3}}
  means: {{name: windows-bench-means-{run}, producers: [mean.results], partitions: 3}}
"""


def _make_app(directory: Path, run: int) -> Path:
    path = directory / f"blueprint-{run}.yaml"
    text = BLUEPRINT.format(run=run, reading=json.dumps(READING), topic=TOPIC)
    path.write_text(textwrap.dedent(text))
    return path


def _fill(bootstrap: str, records: int, keys: int) -> None:
    """Create the input topic and write the readings to it, stamped with their time."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from streamlets.codecs import SCHEMA_HEADER, AvroCodec, schema_fingerprint
    from streamlets.schema import Schema

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Quix Streams derives its changelog topics' settings from the input's retention.
    retention = {"retention.ms": "-1", "retention.bytes": "-1"}
    for future in admin.create_topics([NewTopic(TOPIC, 3, 1, config=retention)]).values():
        future.result()
    schema = Schema.of(READING)
    codec = AvroCodec(schema)
    header = [(SCHEMA_HEADER, schema_fingerprint(schema).encode())]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(records):
        sensor = f"sensor-{i % keys:04d}"
        value = codec.encode(
            {"sensor": sensor, "temperature": 15 + (i % 97) / 10, "payload": "x" * 24}
        )
        stamp = BASE + (i // keys) * 1000  # each sensor once a second
        while True:
            try:
                producer.produce(TOPIC, value, sensor.encode(), headers=header, timestamp=stamp)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise SystemExit("the broker did not acknowledge the input records")
    windows = keys * ((records // keys) // 60 + 1)
    print(f"input: {records:,} readings, {keys:,} sensors, ~{windows:,} windows, 3 partitions")


def worker_quix(
    bootstrap: str, records: int, run: int, state_dir: str
) -> dict[str, float]:  # pragma: no cover - runs in the quixstreams venv
    """The same mean with quixstreams' tumbling window (RocksDB state, changelogs)."""
    from quixstreams import Application  # type: ignore[import-not-found]
    from quixstreams.dataframe.windows.aggregations import (  # type: ignore[import-not-found]
        Mean,
    )
    from quixstreams.models.serializers.avro import (  # type: ignore[import-not-found]
        AvroDeserializer,
        AvroSerializer,
    )

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"windows-bench-{run}.quix",
        auto_offset_reset="earliest",
        state_dir=state_dir,
    )
    source = app.topic(TOPIC, value_deserializer=AvroDeserializer(READING))
    sink = app.topic(f"windows-bench-quix-{run}", value_serializer=AvroSerializer(MEAN))
    seen = [0]
    out = [0]
    start: dict[str, float] = {}

    def count(value: Any) -> None:
        if not seen[0]:
            start["wall"], start["cpu"] = time.perf_counter(), time.process_time()
        seen[0] += 1
        if seen[0] >= records:
            app.stop()

    def emitted(value: Any) -> None:
        out[0] += 1

    sdf = app.dataframe(source).update(count)
    sdf = sdf.tumbling_window(duration_ms=60_000).agg(avg=Mean("temperature")).final()
    sdf = sdf.update(emitted).to_topic(sink)
    del sdf
    app.run()
    return {
        "records": float(seen[0]),
        "seconds": time.perf_counter() - start["wall"],
        "cpu": time.process_time() - start["cpu"],
        "windows": float(out[0]),
    }


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--quix-python",
        help="a Python that has quixstreams (make bench makes one: .cache/bench-quix)",
    )
    parser.add_argument("--worker", choices=["ours", "quix"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--blueprint", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker == "quix":
            result = worker_quix(args.bootstrap, args.records, args.run, args.state_dir)
        else:
            result = worker_ours(
                args.bootstrap,
                args.blueprint,
                args.records,
                "mean",
                create_topics=True,
                state_dir=args.state_dir,
            )
            result["windows"] = result.pop("out")
        print(json.dumps(result))
        return

    from runner.kafka.broker import EmbeddedBroker

    kinds = ["ours"]
    python = {"ours": sys.executable}
    if args.quix_python:
        kinds.append("quix")
        python["quix"] = args.quix_python
    elif importlib.util.find_spec("quixstreams") is not None:
        kinds.append("quix")
        python["quix"] = sys.executable
    rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        _fill(broker.bootstrap, args.records, args.keys)
        for run in range(1, args.repeat + 1):
            blueprint = _make_app(Path(tmp), run)
            for kind in kinds:
                rounds[kind].append(
                    run_worker(
                        __file__, kind, broker.bootstrap, blueprint, args.records, run, python[kind]
                    )
                )
    best = {kind: max(results, key=_rate) for kind, results in rounds.items()}
    names = {"ours": "streamlets, WindowAggregate", "quix": "quixstreams, tumbling .final()"}
    base = best.get("quix", best["ours"])
    base_rate, base_cpu = _rate(base), base["cpu"] / base["records"] * 1e6
    against = "quixstreams" if "quix" in best else "ours"
    print(f"best of {args.repeat} interleaved rounds; ratios against {against}")
    print(
        f"{'loop':<32}{'msg/s':>10}{'CPU us/msg':>12}{'rate ratio':>12}{'CPU ratio':>11}"
        f"{'windows':>9}"
    )
    for kind, result in best.items():
        rate = _rate(result)
        cpu_us = result["cpu"] / result["records"] * 1e6
        print(
            f"{names[kind]:<32}{rate:>10,.0f}{cpu_us:>12.1f}"
            f"{rate / base_rate:>11.2f}x{cpu_us / base_cpu:>10.2f}x{result['windows']:>9,.0f}"
        )
    print("goal: ours >= quixstreams' msg/s; windows: those closed while the input flowed")
    if "quix" not in best:
        print("(quixstreams is not installed: not compared)")


if __name__ == "__main__":
    main()
