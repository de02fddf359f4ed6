"""Benchmark: the in-process runner's memory over a long run, which must stay flat.

Pipeline: source -> transform -> sink, Avro on both topics, ``--records`` records (default
10,000,000) through ``runner.local.LocalRunner`` (what ``flow run-local`` runs, with its
settings: a run directory, dead letters not kept in memory). The source samples the
process's resident set (``VmRSS`` of ``/proc/self/status``) every ``records / --samples``
records from inside the run, and once more when the run has ended. Variants, each in a
process of its own (so one's heap does not carry into the next):

- ``stateless``: the transform of ``benchmarks/local_runner.py`` (a new record per input);
- ``state``: the transform counts each key's records in ``State(int, default=0)``,
  ``--keys`` keys (default 10,000);
- ``window``: the transform keeps a tumbling one-minute ``Window`` (mean and count) per
  key, ``--window-keys`` keys (default 1,000) each reading once a second of event time, so
  windows open and close all the run long.

Verdict: the growth between the sample at 10% of the records (by then the channels are
full, every key has its state, caches are warm) and the end. ``flat`` below
:data:`THRESHOLD_MB`: a leak of a byte per record would be ~9 MB over 9M records, while
the allocator's own drift (pymalloc arenas, fragmentation) stays within a MB or two.

Run: ``.venv/bin/python benchmarks/memory.py [--records N] [--variants stateless,state]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from blueprint import verify  # noqa: E402
from runner.local import LocalRunner  # noqa: E402

THRESHOLD_MB = 5.0
VARIANTS = ("stateless", "state", "window")

COMMON = '''
import os
from typing import Any

from streamlets import Inlet, Outlet, State, Streamlet, Windowed
from streamlets.windows import Count, Mean, Tumbling, Window

READING = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "sensor", "type": "string"},
        {"name": "seq", "type": "long"},
        {"name": "value", "type": "double"},
        {"name": "at", "type": "long"},
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
BASE = 1_700_000_000_000
SAMPLES: list[tuple[int, float]] = []
COUNT = {"n": 0}


def rss_mb() -> float:
    """The process's resident set in MB (VmRSS of /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def readings():
    n = int(os.environ["BENCH_RECORDS"])
    keys = int(os.environ["BENCH_KEYS"])
    every = max(1, n // int(os.environ["BENCH_SAMPLES"]))
    for i in range(n):
        if i % every == 0:
            SAMPLES.append((i, rss_mb()))
        yield {
            "sensor": f"s{i % keys}",
            "seq": i,
            "value": i * 0.5,
            "at": BASE + (i // keys) * 1000,  # each key once a second of event time
        }


class Source(Streamlet):
    out = Outlet(READING, key="sensor")

    def generate(self):
        return readings()


class Sink(Streamlet):
    records = Inlet(SCALED)

    def process(self, r):
        COUNT["n"] += 1
'''

TRANSFORMS = {
    "stateless": """
class Transform(Streamlet):
    readings = Inlet(READING)
    out = Outlet(SCALED)

    def process(self, r):
        return {"sensor": r["sensor"], "seq": r["seq"], "value": r["value"],
                "scaled": r["value"] * 1.8 + 32}
""",
    "state": """
class Transform(Streamlet):
    readings = Inlet(READING)
    out = Outlet(SCALED)
    seen = State(int, default=0)

    def process(self, r):
        count = self.seen.get() + 1
        self.seen.set(count)
        return {"sensor": r["sensor"], "seq": r["seq"], "value": r["value"],
                "scaled": float(count)}
""",
    "window": """
class Transform(Streamlet):
    readings = Inlet(READING, timestamp="at")
    out = Outlet(SCALED)
    minutes = Window(Tumbling("1m"), {"mean": Mean("value"), "n": Count()})

    @minutes.on_close
    def minute(self, window: Windowed[dict[str, Any]]) -> dict[str, Any]:
        return {"sensor": window.key, "seq": window.value["n"],
                "value": window.value["mean"], "scaled": 0.0}
""",
}

BLUEPRINT = """
name: memory-{variant}
streamlets:
  source: {{class: memory_app:Source}}
  transform: {{class: memory_app:Transform}}
  sink: {{class: memory_app:Sink}}
topics:
  readings: {{producers: [source.out], consumers: [transform.readings]}}
  scaled: {{producers: [transform.out], consumers: [sink.records]}}
"""


def run_variant(variant: str, directory: Path) -> dict[str, Any]:
    """Run one variant in this process; returns its samples and what the sink got."""
    (directory / "memory_app.py").write_text(COMMON + TRANSFORMS[variant])
    path = directory / "blueprint.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT.format(variant=variant)).lstrip())
    bp = verify(path).unwrap()
    app = sys.modules["memory_app"]
    runner = LocalRunner(bp, run_dir=directory / "run", keep_dead_letters=False)
    started = time.perf_counter()
    result = asyncio.run(runner.run())
    elapsed = time.perf_counter() - started
    if result.error is not None:
        raise SystemExit(f"{variant}: the run failed: {result.error}")
    n = int(os.environ["BENCH_RECORDS"])
    samples = [*app.SAMPLES, (n, app.rss_mb())]
    return {"samples": samples, "arrived": app.COUNT["n"], "seconds": elapsed}


def measure(variant: str, records: int, keys: int, samples: int) -> dict[str, Any]:
    """Run ``variant`` in a process of its own and return what it measured."""
    env = {
        **os.environ,
        "BENCH_RECORDS": str(records),
        "BENCH_KEYS": str(keys),
        "BENCH_SAMPLES": str(samples),
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return dict(json.loads(out.splitlines()[-1]))


def at_fraction(samples: list[tuple[int, float]], records: int, fraction: float) -> float:
    """The RSS of the first sample at or past ``fraction`` of the records."""
    mark = records * fraction
    return next(rss for done, rss in samples if done >= mark)


def report(variant: str, keys: int, records: int, got: dict[str, Any]) -> bool:
    """Print one variant's curve and verdict; whether it is flat."""
    samples = [(int(d), float(r)) for d, r in got["samples"]]
    rate = records / got["seconds"]
    print(f"{variant} ({keys:,} keys): {records:,} records in {got['seconds']:.0f} s", end="")
    print(f" ({rate:,.0f} records/s), {got['arrived']:,} at the sink")
    step = max(1, len(samples) // 10)
    shown = samples[::step]
    if shown[-1] != samples[-1]:
        shown.append(samples[-1])
    print("  records      RSS MB")
    for done, rss in shown:
        print(f"  {done:>11,}  {rss:8.1f}")
    start, end = at_fraction(samples, records, 0.1), samples[-1][1]
    growth = end - start
    peak = max(rss for _, rss in samples)
    flat = growth < THRESHOLD_MB
    verdict = "flat" if flat else "GROWS"
    print(
        f"  growth 10% -> end: {growth:+.1f} MB ({start:.1f} -> {end:.1f}, peak {peak:.1f})"
        f" {verdict} (threshold {THRESHOLD_MB:.0f} MB)"
    )
    return flat


def main(argv: list[str] | None = None) -> int:
    """Run the variants and print each one's RSS curve and verdict."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=10_000, help="keys of the state variant")
    parser.add_argument("--window-keys", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=100, help="RSS samples per run")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_variant(args.child, Path(tmp))))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    print("local runner memory: source -> transform -> sink, Avro on both topics")
    flat = True
    for variant in variants:
        keys = {"stateless": 100, "state": args.keys, "window": args.window_keys}[variant]
        got = measure(variant, args.records, keys, args.samples)
        flat = report(variant, keys, args.records, got) and flat
    return 0 if flat else 1


if __name__ == "__main__":
    raise SystemExit(main())
