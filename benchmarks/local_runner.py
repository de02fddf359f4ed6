"""Benchmark: the in-process runner against a bare loop doing the same Avro work, same run.

Pipeline: source -> transform -> sink, Avro on both topics, N records (default 200,000).
The bare loop does for each record exactly the codec work the pipeline must do: encode
(source -> topic 1), decode, transform, encode (-> topic 2), decode, hand to the sink; with
``parse_schema`` once and ``schemaless_writer``/``schemaless_reader``, no runner. The ratio
runner/bare says how much the runner (channels, batching, counters, error policy) costs.

Run: ``.venv/bin/python benchmarks/local_runner.py [--records N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import fastavro  # noqa: E402

from blueprint import VerifiedBlueprint, verify  # noqa: E402
from runner.local import LocalRunner  # noqa: E402

GOAL = 0.8

APP = """
from typing import Any
from streamlets import Inlet, Outlet, Streamlet

READING = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "sensor", "type": "string"},
        {"name": "seq", "type": "long"},
        {"name": "value", "type": "double"},
    ],
}
SCALED = {
    "type": "record",
    "name": "Scaled",
    "fields": [
        {"name": "sensor", "type": "string"},
        {"name": "seq", "type": "long"},
        {"name": "value", "type": "double"},
        {"name": "scaled", "type": "double"},
    ],
}

COUNT = {"n": 0}


def make(i: int) -> dict[str, Any]:
    return {"sensor": f"s{i % 100}", "seq": i, "value": i * 0.5}


def scale(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "scaled": r["value"] * 1.8 + 32}


class Source(Streamlet):
    out = Outlet(READING)

    class Config:
        pass

    def generate(self):
        import os
        n = int(os.environ["BENCH_RECORDS"])
        return (make(i) for i in range(n))


class AsyncSource(Streamlet):
    out = Outlet(READING)

    async def generate(self):
        import os
        for i in range(int(os.environ["BENCH_RECORDS"])):
            yield make(i)


class Scale(Streamlet):
    readings = Inlet(READING)
    out = Outlet(SCALED)

    def process(self, r):
        return scale(r)


class Sink(Streamlet):
    records = Inlet(SCALED)

    def process(self, r):
        COUNT["n"] += 1
""".replace("    class Config:\n        pass\n\n", "")

BLUEPRINT = """
name: bench
streamlets:
  source: {class: bench_app:Source}
  scale: {class: bench_app:Scale}
  sink: {class: bench_app:Sink}
topics:
  readings: {producers: [source.out], consumers: [scale.readings]}
  scaled: {producers: [scale.out], consumers: [sink.records]}
"""


def load(directory: Path, source: str = "Source") -> tuple[VerifiedBlueprint, Any]:
    """The bench blueprint with ``source`` (``Source``: sync, ``AsyncSource``) first."""
    (directory / "bench_app.py").write_text(APP)
    path = directory / f"blueprint-{source}.yaml"
    text = textwrap.dedent(BLUEPRINT).lstrip().replace("bench_app:Source", f"bench_app:{source}")
    path.write_text(text)
    return verify(path).unwrap(), sys.modules["bench_app"]


def run_ours(bp: VerifiedBlueprint, app: Any, n: int) -> float:
    app.COUNT["n"] = 0
    started = time.perf_counter()
    result = asyncio.run(LocalRunner(bp).run())
    elapsed = time.perf_counter() - started
    if result.error is not None or app.COUNT["n"] != n:
        raise SystemExit(f"runner run failed: {result.error} ({app.COUNT['n']} of {n} arrived)")
    return elapsed


def run_bare(app: Any, n: int) -> float:
    reading = fastavro.parse_schema(app.READING)
    scaled = fastavro.parse_schema(app.SCALED)
    write, read = fastavro.schemaless_writer, fastavro.schemaless_reader
    make, scale = app.make, app.scale
    count = 0

    def records() -> Iterator[dict[str, Any]]:
        return (make(i) for i in range(n))

    started = time.perf_counter()
    for record in records():
        buf = BytesIO()
        write(buf, reading, record)
        decoded = read(BytesIO(buf.getvalue()), reading, None)
        out = scale(decoded)
        buf = BytesIO()
        write(buf, scaled, out)
        read(BytesIO(buf.getvalue()), scaled, None)
        count += 1
    elapsed = time.perf_counter() - started
    assert count == n
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print records/s of both and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    import os

    os.environ["BENCH_RECORDS"] = str(args.records)
    with tempfile.TemporaryDirectory() as tmp:
        bp, app = load(Path(tmp))
        bp_async, _ = load(Path(tmp), "AsyncSource")
        ours, ours_async, bare = [], [], []
        for _ in range(args.repeat):  # interleaved: all see the same noise
            ours.append(run_ours(bp, app, args.records))
            ours_async.append(run_ours(bp_async, app, args.records))
            bare.append(run_bare(app, args.records))
    n = args.records
    best_ours, best_bare = n / min(ours), n / min(bare)
    ratio = best_ours / best_bare
    print(f"local runner: source -> transform -> sink, {n:,} records, Avro on both topics")
    print(f"  runner     {best_ours:>10,.0f} records/s (best of {args.repeat})")
    best_async = n / min(ours_async)
    print(f"  async src  {best_async:>10,.0f} records/s (the source's generate() is async)")
    print(f"  bare loop  {best_bare:>10,.0f} records/s (same encode+decode work, no runner)")
    verdict = "ok" if ratio >= GOAL else "below goal"
    print(f"  ratio runner/bare {ratio:.2f} (goal >= {GOAL}) {verdict}")
    print(f"  ratio async source/bare {best_async / best_bare:.2f}")
    medians = [statistics.median(n / t for t in times) for times in (ours, ours_async, bare)]
    print(
        f"  medians: runner {medians[0]:,.0f}, async source {medians[1]:,.0f}, "
        f"bare {medians[2]:,.0f} records/s (ratio {medians[0] / medians[2]:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
