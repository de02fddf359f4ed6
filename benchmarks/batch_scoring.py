"""Benchmark: batch scoring through a pipeline against a hand-written script, one run.

Run with ``.venv/bin/python benchmarks/batch_scoring.py`` (installs MLServer into
``.cache/model-servers/`` on first use, like the integration tests). Both score the same
JSON Lines file of iris records (``{"id", "features"}``) against the same MLServer (V2)
process and write the same result lines (``ScoredFlower`` as compact JSON, input order):

- **pipeline**: ``FileSource -> ScoreFlowers (a ModelServingStreamlet) -> FileSink`` run
  in-process by the local runner (``runner.testkit.run_blueprint``, what ``flow
  run-local`` runs), with the streamlet's default config and with the settings below;
  the runner's Avro encoding of every record on both topics is included; and the same
  with ``fuse=True`` (``flow run-local --fuse``), whose hops hand records on as objects;
- **script**: what one would write by hand: read the file, parse each line, post batches of
  the same size with the same requests in flight on one ``aiohttp`` session, write the
  result lines in input order as answers arrive;
- with ``--kafka``: the same blueprint under ``flow run-local --kafka`` (a process per
  streamlet replica on the embedded broker), with 1 and 2 scorer replicas.

Every setting runs in turn, round after round, and its best round counts, with the median
beside it: the machine is shared. Each run's results are checked against the script's
(``batch_size`` aside, which depends on how records arrive; in input order, or as a set
where two replicas interleave them). Times are wall clock from start to the last line
written, start-up included. Ratios, not absolute times, are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runner.testkit import run_blueprint  # noqa: E402
from tests.integration.model_servers import ServedModel, running  # noqa: E402
from tests.integration.model_serving_app import iris_rows  # noqa: E402

MODEL = "iris"
#: The streamlet's defaults (ServingConfig): what a user gets without tuning.
DEFAULT = (1024, 4)
#: (batch size, requests in flight) besides the default.
TUNED = [(256, 4), (512, 4), (2048, 2)]

BLUEPRINT = """\
name: batch-scoring-bench
streamlets:
  read:
    class: streamlets.library:FileSource
    config: {{path: {data}, schema: "tests.integration.model_serving_app:Flower"}}
  score:
    class: tests.integration.model_serving_app:ScoreFlowers
    replicas: {replicas}
    config: {{url: "{url}", model: iris, protocol: v2, outputs: [predict]}}
  write:
    class: streamlets.library:FileSink
    config: {{path: {out}, schema: "tests.integration.model_serving_app:ScoredFlower"}}
topics:
  flowers:
    producers: [read.out]
    consumers: [score.records]
    partitions: {replicas}
  scored:
    producers: [score.results]
    consumers: [write.records]
"""


async def script(url: str, data: Path, out: Path, batch: int, in_flight: int) -> None:
    """The hand-written client: read, batch, post ``in_flight`` at a time, write in order."""
    import aiohttp

    target = f"{url}/v2/models/{MODEL}/infer"
    with data.open("rb") as lines:
        records = [json.loads(line) for line in lines]
    chunks = [records[i : i + batch] for i in range(0, len(records), batch)]
    answers: list[asyncio.Future[list[int]]] = [
        asyncio.get_running_loop().create_future() for _ in chunks
    ]
    pending = iter(range(len(chunks)))

    async def post(session: aiohttp.ClientSession) -> None:
        for i in pending:
            chunk = chunks[i]
            body = {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [len(chunk), 4],
                        "datatype": "FP64",
                        "data": [v for r in chunk for v in r["features"]],
                    }
                ],
                "outputs": [{"name": "predict"}],
            }
            async with session.post(target, json=body) as response:
                response.raise_for_status()
                answer = await response.json()
            answers[i].set_result([int(v) for v in answer["outputs"][0]["data"]])

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        senders = [asyncio.create_task(post(session)) for _ in range(in_flight)]
        with out.open("w") as sink:
            for chunk, answer in zip(chunks, answers, strict=True):
                labels = await answer
                sink.writelines(
                    json.dumps(
                        {
                            "id": r["id"],
                            "label": label,
                            "model": MODEL,
                            "version": None,
                            "protocol": "v2",
                            "batch_size": len(chunk),
                        },
                        separators=(",", ":"),
                    )
                    + "\n"
                    for r, label in zip(chunk, labels, strict=True)
                )
        await asyncio.gather(*senders)


def write_blueprint(
    tmp: Path, name: str, url: str, data: Path, out: Path, replicas: int = 1
) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(BLUEPRINT.format(data=data, out=out, url=url, replicas=replicas))
    return path


def pipeline(blueprint: Path, setting: tuple[int, int], fuse: bool) -> None:
    """The blueprint in-process; the scorer's config left alone for the default setting."""
    batch, in_flight = setting
    tuned = {"score": {"batch_size": batch, "concurrency": in_flight}}
    result = run_blueprint(blueprint, config={} if setting == DEFAULT else tuned, fuse=fuse)
    if result.error is not None or result.dead_letters:
        raise RuntimeError(f"pipeline failed: {result.error} {result.dead_letters[:1]}")


def kafka_pipeline(blueprint: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    flow = Path(sys.executable).with_name("flow")
    command = [str(flow), "run-local", str(blueprint), "--kafka", "--run-dir"]
    done = subprocess.run(
        [*command, str(blueprint.with_suffix(".run"))],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"run-local --kafka exited {done.returncode}: {done.stderr[-2000:]}")


def results(path: Path, ordered: bool) -> list[tuple[object, ...]]:
    """The result lines of ``path`` without ``batch_size``, which depends on how records
    happen to arrive (in input order, or sorted where replicas interleave them)."""
    with path.open() as lines:
        rows = [
            tuple(v for k, v in json.loads(line).items() if k != "batch_size") for line in lines
        ]
    return rows if ordered else sorted(rows, key=repr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best counts")
    parser.add_argument("--kafka", action="store_true", help="add run-local --kafka rows")
    args = parser.parse_args()

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    n: int = args.records
    base = iris_rows()
    times: dict[str, list[float]] = {}

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = tmp / "flowers.jsonl"
        with data.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"id": i, "features": base[i % len(base)]}) + "\n")
        x, y = load_iris(return_X_y=True)
        model_path = tmp / "model.joblib"
        joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), model_path)
        with running("mlserver", (ServedModel(MODEL, model_path),), tmp) as server:
            url = server.url
            print(f"MLServer at {url}; {n} records of 4 features, {args.rounds} rounds\n")
            out = tmp / "out.jsonl"

            def timed(label: str, run: Callable[[], Any], check: bool | None = None) -> None:
                """Time ``run``; with ``check``, compare its results with the script's
                (``True``: in input order; ``False``: as a set, replicas interleave)."""
                if out.exists():
                    out.unlink()
                start = time.perf_counter()
                run()
                times.setdefault(label, []).append(time.perf_counter() - start)
                expected = tmp / "expected.jsonl"
                if check is not None and results(out, check) != results(expected, check):
                    raise RuntimeError(f"{label}: its results differ from the script's")

            settings = [DEFAULT, *TUNED]
            blueprint = write_blueprint(tmp, "one", url, data, out)
            kafka = {r: write_blueprint(tmp, f"kafka{r}", url, data, out, r) for r in (1, 2)}
            # Warm up the server and both clients; keep the script's output as the reference.
            asyncio.run(script(url, data, tmp / "expected.jsonl", *DEFAULT))
            pipeline(blueprint, DEFAULT, False)

            for _ in range(args.rounds):
                for b, c in settings:
                    tag = f"{b}x{c}"
                    timed(f"script {tag}", partial(asyncio.run, script(url, data, out, b, c)))
                    for fuse in (False, True):
                        label = f"pipeline{' --fuse' if fuse else ''} {tag}"
                        timed(label, partial(pipeline, blueprint, (b, c), fuse), True)
                if args.kafka:
                    for r in (1, 2):
                        timed(f"kafka x{r}", partial(kafka_pipeline, kafka[r]), r == 1)

    def rate(label: str) -> float:
        return n / min(times[label])

    def median(label: str) -> float:
        return n / statistics.median(times[label])

    print(
        f"{'client (batch x in flight)':<44} {'best rec/s':>10} {'median':>8} "
        f"{'x script':>9} {'x script, medians':>18}"
    )

    def row(label: str, name: str, ref: str) -> None:
        print(
            f"{label:<44} {rate(name):>10.0f} {median(name):>8.0f} "
            f"{rate(name) / rate(ref):>9.2f} {median(name) / median(ref):>18.2f}"
        )

    for b, c in [DEFAULT, *TUNED]:
        tag = f"{b}x{c}"
        mark = ", the streamlet's default" if (b, c) == DEFAULT else ""
        ref = f"script {tag}"
        row(f"script {tag}{mark}", ref, ref)
        row(f"  pipeline (Avro hops) {tag}", f"pipeline {tag}", ref)
        row(f"  pipeline --fuse {tag}", f"pipeline --fuse {tag}", ref)
    if args.kafka:
        ref = f"script {DEFAULT[0]}x{DEFAULT[1]}"
        for r in (1, 2):
            row(f"run-local --kafka, {r} scorer replica(s)", f"kafka x{r}", ref)


if __name__ == "__main__":
    main()
