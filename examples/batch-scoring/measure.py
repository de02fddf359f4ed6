"""Measure the batch-scoring pipeline: sequential vs batched vs concurrent vs replicas.

    .venv/bin/python examples/batch-scoring/measure.py [--records 20000]

Prepares the data set and model (``prepare.py``), starts two MLServers on free ports,
then runs the blueprint in-process (as ``flow run-local`` does) with each setting, one
after the other (all but the last against the first server; the last spreads batches
over both), and prints records/s and the ratio to the sequential run. The sequential
setting (one record per request, one request at a time) scores only the first
``--sequential-records`` records, or it would take minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))
from mlserver_local import Model, running  # noqa: E402
from prepare import prepare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--sequential-records", type=int, default=2_000)
    args = parser.parse_args()

    from runner.testkit import run_blueprint

    model = prepare(args.records)
    data = HERE / "data" / "digits.jsonl"
    head = HERE / "data" / "digits-head.jsonl"
    lines = data.read_text().splitlines(keepends=True)
    head.write_text("".join(lines[: args.sequential_records]))
    settings = [
        ("sequential (batch 1, 1 in flight)", 1, 1, 1, head, args.sequential_records),
        ("batched (batch 256, 1 in flight)", 256, 1, 1, data, args.records),
        ("batched + concurrent (256 x 4)", 256, 4, 1, data, args.records),
        ("batched + concurrent, 2 replicas", 256, 4, 2, data, args.records),
        ("2 replicas, 2 model servers", 256, 4, 2, data, args.records),
        ("batched + concurrent (1024 x 2)", 1024, 2, 1, data, args.records),
    ]
    template = (HERE / "blueprint.yaml").read_text()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        served = [Model("digits", model, "1")]
        with (
            running(served, Path(tmp) / "a") as server,
            running(served, Path(tmp) / "b") as other,
        ):
            print(f"MLServer at {server.url} and {other.url}; {args.records} digits of 64 pixels\n")
            for name, batch, concurrency, replicas, path, count in settings:
                urls = [server.url, other.url] if "2 model servers" in name else server.url
                blueprint = HERE / f".measure-{replicas}.yaml"
                blueprint.write_text(template.replace("replicas: 2", f"replicas: {replicas}"))
                out = Path(tmp) / "scored.jsonl"
                config = {
                    "read": {"path": str(path)},
                    "score": {"url": urls, "batch_size": batch, "concurrency": concurrency},
                    "write": {"path": str(out)},
                }
                try:
                    start = time.perf_counter()
                    result = run_blueprint(blueprint, config=config)
                    elapsed = time.perf_counter() - start
                finally:
                    blueprint.unlink()
                lines = sum(1 for _ in out.open())
                if result.error is not None or result.dead_letters or lines != count:
                    raise SystemExit(f"{name}: {lines} of {count} scored; {result.error}")
                rows.append((name, count / elapsed))
    base = rows[0][1]
    print(f"{'setting':<36} {'records/s':>10} {'x sequential':>13}")
    for name, rate in rows:
        print(f"{name:<36} {rate:>10.0f} {rate / base:>13.1f}")


if __name__ == "__main__":
    main()
