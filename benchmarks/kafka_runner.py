"""Benchmark: the Kafka runner against a bare confluent-kafka consume -> produce loop.

Both run on the same embedded broker in the same run, on the same input topic (200k
records of ~80 bytes over 3 partitions by default), each in its own process and its own
consumer group, with the same delivery discipline (outputs flushed before input offsets
are committed, about once a second). Ours runs one passthrough streamlet through the full
execution core: Avro decode -> process -> output, where a record passed on unchanged goes
out as its input bytes (streamlets/codecs/passthrough.py). A second row runs a streamlet
that returns a new record, so that every output is Avro-encoded too. The bare loop copies
bytes. The keyed rows read a second input whose records have keys of 8-16 bytes and two
headers besides the schema's, which both loops keep on the way out (the streamlet through
its key/header inheritance). The raw fastavro loop is the bare loop doing what the
new-record streamlet does to each value (fastavro decode, ``dict(record)``, encode), on
both inputs; the new-record rows are also given as ratios to it.
Times count from the first record consumed to the last output acknowledged and committed
(so the consumer-group join is left out). Prints msg/s, CPU microseconds per message and
the ratios; quixstreams (bytes in, bytes out, like the bare loop) joins the table when
it is installed, here or in the Python given with ``--quix-python``.

    .venv/bin/python benchmarks/kafka_runner.py [--records 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The records' Avro schema: the input is written with it, and both streamlets use it.
ITEM = {
    "type": "record",
    "name": "Item",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "sensor", "type": "string"},
        {"name": "value", "type": "double"},
        {"name": "payload", "type": "string"},
    ],
}

MODULE = f'''
from streamlets import Inlet, Outlet, Streamlet

ITEM = {json.dumps(ITEM)}


class Passthrough(Streamlet):
    """Passes each record on unchanged."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record):
        return record


class Touch(Streamlet):
    """Returns a new record each time, so every output is encoded."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record):
        return dict(record)
'''

BLUEPRINT = """
name: bench-{run}
streamlets:
  pass: {class: bench_app:Passthrough}
  touch: {class: bench_app:Touch}
  pass-keyed: {class: bench_app:Passthrough}
  touch-keyed: {class: bench_app:Touch}
topics:
  input:
    name: bench-input
    consumers: [pass.inp, touch.inp]
    partitions: 3
  input-keyed:
    name: bench-input-keyed
    consumers: [pass-keyed.inp, touch-keyed.inp]
    partitions: 3
  touched-keyed:
    name: bench-output-touch-keyed
    producers: [touch-keyed.out]
    partitions: 3
  output-keyed:
    name: bench-output-keyed
    producers: [pass-keyed.out]
    partitions: 3
  output:
    name: bench-output-ours
    producers: [pass.out]
    partitions: 3
  touched:
    name: bench-output-touch
    producers: [touch.out]
    partitions: 3
"""

GROUP_SETTINGS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def _make_app(directory: Path, run: int) -> Path:
    """The bench app for one round (its own name, so its own consumer groups)."""
    (directory / "bench_app.py").write_text(MODULE)
    path = directory / f"blueprint-{run}.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT).replace("{run}", str(run)))
    return path


def _fill(bootstrap: str, records: int) -> None:
    """Create the topics and write ``records`` Avro records of ~80 bytes to the input."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from streamlets.codecs import SCHEMA_HEADER, AvroCodec, schema_fingerprint
    from streamlets.schema import Schema

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = ["bench-input", "bench-output-ours", "bench-output-touch", "bench-output-bare"]
    topics += ["bench-output-quix", "bench-input-keyed", "bench-output-keyed"]
    topics.append("bench-output-bare-keyed")
    topics += ["bench-output-avro", "bench-output-avro-keyed", "bench-output-touch-keyed"]
    for future in admin.create_topics([NewTopic(t, 3, 1) for t in topics]).values():
        future.result()
    schema = Schema.of(ITEM)
    codec = AvroCodec(schema)
    header = [(SCHEMA_HEADER, schema_fingerprint(schema).encode())]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    size = 0
    for i in range(records):
        record = {"id": i, "sensor": f"sensor-{i % 100}", "value": i * 0.5, "payload": "x" * 48}
        value = codec.encode(record)
        size = len(value)
        key = f"sensor-{i % 100_000:0{8 + i % 9}d}".encode()[:16]  # 8-16 bytes
        keyed = [*header, ("traceparent", f"00-{i:032x}-01".encode()), ("tenant", b"acme")]
        for topic, args in (
            ("bench-input", {"partition": i % 3, "headers": header}),
            ("bench-input-keyed", {"key": key, "headers": keyed}),
        ):
            while True:
                try:
                    producer.produce(topic, value, **args)
                    break
                except BufferError:
                    producer.poll(0.05)
    if producer.flush(60):
        raise SystemExit("the broker did not acknowledge the input records")
    print(
        f"input: {records:,} records of {size} bytes on 3 partitions (and as many keyed, "
        "with two headers)",
        flush=True,
    )


def _measure(count: Any, target: int, until_done: Any) -> dict[str, float]:
    """Wait for the first record, then until ``until_done`` returns; time and CPU between."""
    while count() == 0:
        time.sleep(0.002)
    wall, cpu = time.perf_counter(), time.process_time()
    until_done()
    return {
        "records": float(count()),
        "seconds": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
    }


def worker_ours(
    bootstrap: str,
    blueprint_path: str,
    records: int,
    streamlet: str = "pass",
    *,
    create_topics: bool = False,
    state_dir: str | None = None,
) -> dict[str, float]:
    """Run one streamlet through StreamletProcess (what ``flow run-streamlet`` runs) until
    it has read ``records``; also gives how many records it wrote (``out``). The state and
    windows benchmarks run theirs through it too."""
    from blueprint import verify
    from runner.kafka import KafkaSettings, ProcessOptions, StreamletProcess

    blueprint = verify(blueprint_path).unwrap()
    settings = KafkaSettings.load({"consumer": GROUP_SETTINGS}, bootstrap=bootstrap, environ={})
    place = {} if state_dir is None else {"state_dir": Path(state_dir)}
    options = ProcessOptions(create_topics=create_topics, metrics_port=None, **place)
    process = StreamletProcess(blueprint, streamlet, settings, options)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(process.run()))
    thread.start()

    def count() -> int:
        executor = process._executor
        return executor.stats.records_in if executor is not None else 0

    def until_done() -> None:
        while count() < records:
            if not thread.is_alive():
                raise SystemExit(f"our runner stopped after {count():,} records: {codes}")
            time.sleep(0.002)
        process.stop()
        thread.join()

    result = _measure(count, records, until_done)
    if codes != [0]:
        raise SystemExit(f"our runner exited with {codes}")
    executor = process._executor
    assert executor is not None
    result["out"] = float(executor.stats.records_out)
    return result


def worker_bare(
    bootstrap: str, records: int, run: int = 0, keyed: bool = False, avro: bool = False
) -> dict[str, float]:
    """A bare consume -> produce loop: flush outputs, then commit offsets, about once a
    second; key and headers copied to the output. With ``avro``, the raw fastavro loop:
    each value is decoded (``schemaless_reader``), transformed as the ``touch`` streamlet
    does (``dict(record)``) and encoded again (``schemaless_writer``)."""
    kind = "avro" if avro else "bare"
    source = "bench-input-keyed" if keyed else "bench-input"
    target = f"bench-output-{kind}{'-keyed' if keyed else ''}"
    from io import BytesIO

    import fastavro
    from confluent_kafka import Consumer, Producer, TopicPartition

    schema = fastavro.parse_schema(ITEM)
    read, write = fastavro.schemaless_reader, fastavro.schemaless_writer

    def work(value: bytes) -> bytes:
        if not avro:
            return value
        record = dict(read(BytesIO(value), schema, None))
        out = BytesIO()
        write(out, schema, record)
        return out.getvalue()

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{run}.{kind}{'-keyed' if keyed else ''}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            **GROUP_SETTINGS,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    consumer.subscribe([source])
    seen = [0]
    positions: dict[int, int] = {}

    def loop() -> None:
        last = time.monotonic()
        while seen[0] < records:
            messages = consumer.consume(500, 0.1)
            for m in messages:
                if m.error() is not None:
                    continue
                while True:
                    try:
                        producer.produce(target, work(m.value()), m.key(), headers=m.headers())
                        break
                    except BufferError:
                        producer.poll(0.05)
                positions[m.partition()] = m.offset() + 1
            seen[0] += len(messages)
            producer.poll(0)
            if positions and time.monotonic() - last >= 1.0:
                producer.flush()
                consumer.commit(
                    offsets=[TopicPartition(source, p, o) for p, o in positions.items()],
                    asynchronous=False,
                )
                last = time.monotonic()
        producer.flush()
        consumer.commit(
            offsets=[TopicPartition(source, p, o) for p, o in positions.items()],
            asynchronous=False,
        )

    thread = threading.Thread(target=loop)
    thread.start()
    result = _measure(lambda: seen[0], records, thread.join)
    consumer.close()
    return result


def worker_quix(bootstrap: str, records: int, run: int = 0) -> dict[str, float]:  # pragma: no cover
    """The same passthrough with quixstreams (only when it is installed).

    ``Application.run()`` must own the main thread (it installs signal handlers), so the
    clock starts in the callback at the first record; ``run()`` returns after ``stop()``
    has flushed and committed.
    """
    from quixstreams import Application  # type: ignore[import-not-found]

    app = Application(
        broker_address=bootstrap, consumer_group=f"bench-{run}.quix", auto_offset_reset="earliest"
    )
    source = app.topic("bench-input", value_deserializer="bytes")
    sink = app.topic("bench-output-quix", value_serializer="bytes")
    seen = [0]
    start: dict[str, float] = {}

    def count(value: Any) -> Any:
        if not seen[0]:
            start["wall"], start["cpu"] = time.perf_counter(), time.process_time()
        seen[0] += 1
        if seen[0] >= records:
            app.stop()
        return value

    sdf = app.dataframe(source).apply(count).to_topic(sink)
    del sdf
    app.run()
    return {
        "records": float(seen[0]),
        "seconds": time.perf_counter() - start["wall"],
        "cpu": time.process_time() - start["cpu"],
    }


def run_worker(
    script: str, kind: str, bootstrap: str, blueprint: Path, records: int, run: int, python: str
) -> dict[str, float]:
    """Run benchmark ``script``'s worker ``kind`` in a process of its own (with ``python``,
    e.g. the Quix Streams venv's) and a state directory of its own; its result."""
    with tempfile.TemporaryDirectory() as state_dir:
        command = [python, script, "--worker", kind, "--bootstrap", bootstrap]
        command += ["--blueprint", str(blueprint), "--records", str(records), "--run", str(run)]
        command += ["--state-dir", state_dir]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _rate(result: dict[str, float]) -> float:
    return result["records"] / result["seconds"]


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument(
        "--repeat", type=int, default=5, help="rounds; each loop's best round is reported"
    )
    parser.add_argument(
        "--worker",
        choices=[
            "ours",
            "ours-new",
            "ours-keyed",
            "ours-new-keyed",
            "bare",
            "bare-keyed",
            "avro",
            "avro-keyed",
            "quix",
        ],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--blueprint", help=argparse.SUPPRESS)
    parser.add_argument(
        "--quix-python",
        help="a Python that has quixstreams (it pins an older confluent-kafka, so it gets "
        "its own venv: make bench makes one); default: this Python, if it has quixstreams",
    )
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker.startswith("ours"):
            streamlet = {
                "ours": "pass",
                "ours-new": "touch",
                "ours-keyed": "pass-keyed",
                "ours-new-keyed": "touch-keyed",
            }
            result = worker_ours(
                args.bootstrap, args.blueprint, args.records, streamlet[args.worker]
            )
        elif args.worker.startswith(("bare", "avro")):
            keyed = args.worker.endswith("-keyed")
            avro = args.worker.startswith("avro")
            result = worker_bare(args.bootstrap, args.records, args.run, keyed, avro)
        else:
            result = worker_quix(args.bootstrap, args.records, args.run)
        print(json.dumps(result))
        return

    import importlib.util

    from runner.kafka.broker import EmbeddedBroker

    kinds = ["bare", "ours", "ours-new", "bare-keyed", "ours-keyed"]
    kinds += ["avro", "ours-new-keyed", "avro-keyed"]
    python = dict.fromkeys(kinds, sys.executable)
    if args.quix_python:
        kinds.append("quix")
        python["quix"] = args.quix_python
    elif importlib.util.find_spec("quixstreams") is not None:
        kinds.append("quix")
        python["quix"] = sys.executable
    rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        _fill(broker.bootstrap, args.records)
        # Each loop reads the whole input in its own consumer group, one after the other;
        # rounds interleave the loops so that a noisy minute hits all of them.
        for run in range(1, args.repeat + 1):
            blueprint = _make_app(Path(tmp), run)
            for kind in kinds:
                rounds[kind].append(
                    run_worker(
                        __file__, kind, broker.bootstrap, blueprint, args.records, run, python[kind]
                    )
                )
    best = {kind: max(results, key=_rate) for kind, results in rounds.items()}
    bare = best["bare"]
    print(f"best of {args.repeat} interleaved rounds")
    print(f"{'loop':<28}{'msg/s':>12}{'CPU us/msg':>12}{'rate ratio':>12}{'CPU ratio':>11}")
    names = {
        "bare": "bare confluent-kafka",
        "ours": "streamlets run-streamlet",
        "ours-new": "  (new record: re-encoded)",
        "bare-keyed": "bare, keyed + 2 headers",
        "ours-keyed": "streamlets, keyed + 2 headers",
        "avro": "raw fastavro loop",
        "ours-new-keyed": "streamlets new record, keyed",
        "avro-keyed": "raw fastavro loop, keyed",
        "quix": "quixstreams",
    }
    for kind, result in best.items():
        rate = _rate(result)
        cpu_us = result["cpu"] / result["records"] * 1e6
        # The keyed row is measured against the bare loop doing the same key/header work.
        base = best["bare-keyed"] if kind == "ours-keyed" else bare
        base_rate, base_cpu = _rate(base), base["cpu"] / base["records"] * 1e6
        print(
            f"{names[kind]:<28}{rate:>12,.0f}{cpu_us:>12.1f}"
            f"{rate / base_rate:>11.2f}x{cpu_us / base_cpu:>10.2f}x"
        )
    print("against the raw fastavro loop (same decode, transform, encode, key/header work;")
    print("goal: rate >= 1.0x at CPU <= 1.5x):")
    for ours_kind, raw_kind in (("ours-new", "avro"), ("ours-new-keyed", "avro-keyed")):
        ours, raw = best[ours_kind], best[raw_kind]
        cpu_ratio = (ours["cpu"] / ours["records"]) / (raw["cpu"] / raw["records"])
        medians = [
            statistics.median(_rate(r) for r in rounds[kind]) for kind in (ours_kind, raw_kind)
        ]
        print(
            f"  {names[ours_kind]:<30} rate {_rate(ours) / _rate(raw):.2f}x (median "
            f"{medians[0] / medians[1]:.2f}x), CPU {cpu_ratio:.2f}x"
        )
    per_round = ", ".join(
        f"{_rate(ours) / _rate(bare):.2f}x"
        for ours, bare in zip(rounds["ours"], rounds["bare"], strict=True)
    )
    print(f"passthrough rate ratio per round: {per_round} (goal >= 0.8x)")
    if "quix" not in best:
        print("(quixstreams is not installed: not compared)")


if __name__ == "__main__":
    main()
