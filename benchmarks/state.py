"""Benchmark: a per-key running count with state, our Kafka runner against Quix Streams.

Both run on the same embedded broker in the same run, on the same input: ``--records``
Avro records (default 200,000) keyed by ``--keys`` keys (default 10,000) over 3
partitions. Each counts the records of each key in its state store and writes a
``{key, count}`` Avro record per input record (keyed by the input's key):

- ours: a streamlet with ``State(int, default=0)`` under ``StreamletProcess`` (what
  ``flow run-streamlet`` runs), at-least-once, its store on RocksDB;
- quixstreams: ``sdf.apply(count, stateful=True)`` with its RocksDB state, the same Avro
  schemas through its ``AvroDeserializer``/``AvroSerializer``;
- ours, stateless: the same streamlet without the state (a constant count), to show
  what state costs.

Both keep state the way they do on Kafka (changelog topics where the runner has them).
Times count from the first record consumed to the last one handled (the consumer-group
join is left out); CPU is the process's, all threads. Rounds interleave the loops; each
loop's best round is reported.

    .venv/bin/python benchmarks/state.py --quix-python .cache/bench-quix/bin/python
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
        {"name": "card", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "payload", "type": "string"},
    ],
}
COUNT = {
    "type": "record",
    "name": "Count",
    "fields": [{"name": "card", "type": "string"}, {"name": "count", "type": "long"}],
}

MODULE = f'''
from streamlets import Inlet, Outlet, State, Streamlet

READING = {json.dumps(READING)}
COUNT = {json.dumps(COUNT)}


class Counter(Streamlet):
    """Counts the records of each key."""

    inp = Inlet(READING)
    out = Outlet(COUNT)
    seen = State(int, default=0)

    def process(self, record):
        count = self.seen.get() + 1
        self.seen.set(count)
        return {{"card": record["card"], "count": count}}


class NoState(Streamlet):
    """The same work without state."""

    inp = Inlet(READING)
    out = Outlet(COUNT)

    def process(self, record):
        return {{"card": record["card"], "count": 1}}
'''

BLUEPRINT = """
name: state-bench-{run}
streamlets:
  count: {class: state_bench_app:Counter}
  nostate: {class: state_bench_app:NoState}
topics:
  input:
    name: state-bench-input
    consumers: [count.inp, nostate.inp]
    partitions: 3
  counts:
    name: state-bench-counts-{run}
    producers: [count.out]
    partitions: 3
  plain:
    name: state-bench-plain-{run}
    producers: [nostate.out]
    partitions: 3
"""


def _make_app(directory: Path, run: int) -> Path:
    (directory / "state_bench_app.py").write_text(MODULE)
    path = directory / f"blueprint-{run}.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT).replace("{run}", str(run)))
    return path


def _fill(bootstrap: str, records: int, keys: int) -> None:
    """Create the input topic and write ``records`` keyed Avro records to it."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from streamlets.codecs import SCHEMA_HEADER, AvroCodec, schema_fingerprint
    from streamlets.schema import Schema

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Quix Streams derives its changelog topics' settings from the input's retention.
    retention = {"retention.ms": "604800000", "retention.bytes": "-1"}
    new = NewTopic("state-bench-input", 3, 1, config=retention)
    for future in admin.create_topics([new]).values():
        future.result()
    schema = Schema.of(READING)
    codec = AvroCodec(schema)
    header = [(SCHEMA_HEADER, schema_fingerprint(schema).encode())]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(records):
        card = f"card-{(i * 7919) % keys:05d}"
        value = codec.encode({"card": card, "amount": i * 0.25, "payload": "x" * 32})
        while True:
            try:
                producer.produce("state-bench-input", value, card.encode(), headers=header)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise SystemExit("the broker did not acknowledge the input records")
    print(f"input: {records:,} records, {keys:,} keys, 3 partitions", flush=True)


def worker_quix(
    bootstrap: str, records: int, run: int, state_dir: str
) -> dict[str, float]:  # pragma: no cover - runs in the quixstreams venv
    """The same count with quixstreams' state (RocksDB with changelog topics)."""
    from quixstreams import Application  # type: ignore[import-not-found]
    from quixstreams.models.serializers.avro import (  # type: ignore[import-not-found]
        AvroDeserializer,
        AvroSerializer,
    )

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"state-bench-{run}.quix",
        auto_offset_reset="earliest",
        state_dir=state_dir,
    )
    source = app.topic("state-bench-input", value_deserializer=AvroDeserializer(READING))
    sink = app.topic(f"state-bench-quix-{run}", value_serializer=AvroSerializer(COUNT))
    seen = [0]
    start: dict[str, float] = {}

    def count(value: Any, state: Any) -> Any:
        if not seen[0]:
            start["wall"], start["cpu"] = time.perf_counter(), time.process_time()
        seen[0] += 1
        total = state.get("count", 0) + 1
        state.set("count", total)
        if seen[0] >= records:
            app.stop()
        return {"card": value["card"], "count": total}

    sdf = app.dataframe(source).apply(count, stateful=True).to_topic(sink)
    del sdf
    app.run()
    return {
        "records": float(seen[0]),
        "seconds": time.perf_counter() - start["wall"],
        "cpu": time.process_time() - start["cpu"],
    }


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--quix-python",
        help="a Python that has quixstreams (make bench makes one: .cache/bench-quix)",
    )
    parser.add_argument("--worker", choices=["ours", "nostate", "quix"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--blueprint", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker == "quix":
            result = worker_quix(args.bootstrap, args.records, args.run, args.state_dir)
        else:
            streamlet = "count" if args.worker == "ours" else "nostate"
            result = worker_ours(
                args.bootstrap,
                args.blueprint,
                args.records,
                streamlet,
                create_topics=True,
                state_dir=args.state_dir,
            )
        print(json.dumps(result))
        return

    from runner.kafka.broker import EmbeddedBroker

    kinds = ["ours", "nostate"]
    python = dict.fromkeys(kinds, sys.executable)
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
    names = {
        "ours": "streamlets, State(int)",
        "nostate": "streamlets, stateless",
        "quix": "quixstreams, stateful apply",
    }
    base = best.get("quix", best["ours"])
    base_rate, base_cpu = _rate(base), base["cpu"] / base["records"] * 1e6
    against = "quixstreams" if "quix" in best else "ours"
    print(f"best of {args.repeat} interleaved rounds; ratios against {against}")
    print(f"{'loop':<30}{'msg/s':>12}{'CPU us/msg':>12}{'rate ratio':>12}{'CPU ratio':>11}")
    for kind, result in best.items():
        rate = _rate(result)
        cpu_us = result["cpu"] / result["records"] * 1e6
        print(
            f"{names[kind]:<30}{rate:>12,.0f}{cpu_us:>12.1f}"
            f"{rate / base_rate:>11.2f}x{cpu_us / base_cpu:>10.2f}x"
        )
    print("goal: ours >= quixstreams' msg/s at no more CPU per message")
    if "quix" not in best:
        print("(quixstreams is not installed: not compared)")


if __name__ == "__main__":
    main()
