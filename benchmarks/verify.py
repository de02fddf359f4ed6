"""Benchmark: `flow verify` on a generated 500-streamlet blueprint, and the codecs' rate.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/verify.py``). Prints the time of
``flow verify`` as a user runs it (a subprocess, interpreter start included), the time of
``verify()`` in-process, and the codec table from ``benchmarks/codecs.py``, which compares
our codecs with a bare fastavro loop side by side in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODULE = """
from collections.abc import Iterator
from datetime import datetime

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet


class Position(BaseModel):
    lat: float
    lon: float


class Event(BaseModel):
    id: str
    value: float
    count: int
    at: datetime
    position: Position | None = None
    tags: list[str] = []


class Source(Streamlet):
    out = Outlet(Event)

    def generate(self) -> Iterator[Event]:
        return iter(())


class Step(Streamlet):
    inp = Inlet(Event)
    out = Outlet(Event)

    class Config(BaseModel):
        factor: float = 1.0

    def process(self, event: Event) -> Event:
        return event


class Sink(Streamlet):
    inp = Inlet(Event)

    def process(self, event: Event) -> None:
        return None
"""


def generate_blueprint(directory: Path, streamlets: int) -> Path:
    """Write a chain source -> step x (n-2) -> sink with a topic between each pair."""
    (directory / "bench_app.py").write_text(MODULE)
    lines = ["name: bench", "streamlets:", "  s0:", "    class: bench_app:Source"]
    for i in range(1, streamlets - 1):
        lines += [f"  s{i}:", "    class: bench_app:Step", f"    config: {{factor: {i}}}"]
    lines += [f"  s{streamlets - 1}:", "    class: bench_app:Sink", "topics:"]
    for i in range(streamlets - 1):
        src = "out"
        lines += [f"  t{i}:", f"    producers: [s{i}.{src}]", f"    consumers: [s{i + 1}.inp]"]
    path = directory / "blueprint.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def time_cli(path: Path, repeat: int) -> list[float]:
    flow = Path(sys.executable).with_name("flow")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(
            [str(flow), "verify", str(path)], capture_output=True, text=True, check=False
        )
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"flow verify failed:\n{proc.stdout}{proc.stderr}")
    return times


def time_in_process(path: Path, repeat: int) -> list[float]:
    from blueprint import verify

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = verify(path)
        times.append(time.perf_counter() - start)
        assert result.ok, result.problems
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streamlets", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate_blueprint(Path(tmp), args.streamlets)
        cli = time_cli(path, args.repeat)
        inproc = time_in_process(path, args.repeat)
    print(f"flow verify, {args.streamlets} streamlets, {args.streamlets - 1} topics")
    for label, times in (("command (subprocess)", cli), ("verify() in-process", inproc)):
        best, median = min(times), statistics.median(times)
        print(f"  {label:22} best {best:.3f} s, median {median:.3f} s")
    print("  goal: the command under 2 s")
    print()
    from benchmarks.codecs import main as codecs_main

    codecs_main(args.records)


if __name__ == "__main__":
    main()
