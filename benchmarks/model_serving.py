"""Benchmark: scoring 20k records against one MLServer (V2), side by side in one run.

Run with ``.venv/bin/python benchmarks/model_serving.py`` (installs MLServer into
``.cache/model-servers/`` on first use, like the integration tests). Every client scores
the same records against the same server process and model:

- **sequential**: one record per request, one request at a time (httpx);
- **pipeline**: ``ModelServingStreamlet`` run by the local runner through the testkit, with
  its default config and with the best batch size / concurrency of a small sweep (the
  runner's Avro encoding of every record in and out included);
- **streamlet**: the same streamlet driven directly (``process_many()`` on batches of 4096
  records, as a runner calls it, with no runner and no codecs): the serving layer alone -
  batching, ordering, protocol, transport - which is what compares with a hand-written
  client; also with ``transport: httpx``;
- **gRPC**: the streamlet and the pipeline with ``protocol: v2-grpc`` against the same
  server's gRPC port, next to a hand-written ``grpc.aio`` client doing the same work;
- **hand-written**: the best of a sweep of batched + concurrent asyncio clients on a
  pooled ``httpx.AsyncClient`` and on raw asyncio streams (no HTTP library), building the
  same result records as each answer arrives, with no runner around them.

The clients run in turn, round after round (``--rounds``; the pipeline, at about a second
a run, ``--pipeline-rounds``), and each client's best round counts, with the median next to
it: the machine is shared, and one stall of the server (seen as single requests of
0.1-0.25 s among ~5 ms ones in the streamlet's latency histogram) costs a run of ~0.1 s
half its rate, whichever client it hits.

It also measures requests/s of unbatched requests at 1..32 in flight on httpx and on raw
streams, which shows whether httpx's pool stops scaling (httpx issue 3215). Ratios, not
absolute times, are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runner.testkit import run_streamlet  # noqa: E402
from tests.integration.model_servers import ServedModel, running  # noqa: E402
from tests.integration.model_serving_app import (  # noqa: E402
    Flower,
    ScoredFlower,
    ScoreFlowers,
    iris_rows,
)

MODEL = "iris"


def v2_body(rows: Sequence[Sequence[float]]) -> bytes:
    flat = [v for row in rows for v in row]
    body = {
        "inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}],
        "outputs": [{"name": "predict"}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def v2_labels(body: bytes) -> list[int]:
    return [int(v) for v in json.loads(body)["outputs"][0]["data"]]


class RawConnection:
    """A keep-alive HTTP/1.1 connection on asyncio streams (Content-Length bodies only)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> bytes:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"{status!r}: {data[:200]!r}")
        return data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def hand_written(
    url: str, records: list[Flower], batch: int, concurrency: int, raw: bool
) -> list[int]:
    """Batched, concurrent scoring with no framework around it, doing the same record work
    as the streamlet: features from each record in, a ScoredFlower per record out (built
    as each answer arrives, while the other requests are in flight)."""
    path = f"/v2/models/{MODEL}/infer"
    chunks = [records[i : i + batch] for i in range(0, len(records), batch)]
    batches = [[r.features for r in chunk] for chunk in chunks]
    results: list[list[ScoredFlower]] = [[] for _ in batches]

    def scored(i: int, labels: list[int]) -> list[ScoredFlower]:
        size = len(chunks[i])
        return [
            ScoredFlower(
                id=r.id, label=label, model=MODEL, version=None, protocol="v2", batch_size=size
            )
            for r, label in zip(chunks[i], labels, strict=True)
        ]

    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(batches)):
        queue.put_nowait(index)

    if raw:
        parts = urlsplit(url)
        connections = [
            RawConnection(parts.hostname or "", parts.port or 80) for _ in range(concurrency)
        ]

        async def worker(n: int) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                labels = v2_labels(await connections[n].post(path, v2_body(batches[i])))
                results[i] = scored(i, labels)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        for connection in connections:
            connection.close()
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

            async def worker(n: int) -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    response = await client.post(
                        path,
                        content=v2_body(batches[i]),
                        headers={"content-type": "application/json"},
                    )
                    response.raise_for_status()
                    results[i] = scored(i, v2_labels(response.content))

            await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return [s.label for part in results for s in part]


async def hand_written_grpc(
    address: str, records: list[Flower], batch: int, concurrency: int
) -> list[int]:
    """The same work as :func:`hand_written` over gRPC: a bare ``grpc.aio`` channel and the
    protocol's messages, ``concurrency`` requests in flight on one HTTP/2 connection."""
    import grpc

    from streamlets.serving._oip import open_inference_pb2 as pb

    chunks = [records[i : i + batch] for i in range(0, len(records), batch)]
    results: list[list[ScoredFlower]] = [[] for _ in chunks]
    pending = iter(range(len(chunks)))
    async with grpc.aio.insecure_channel(address.removeprefix("grpc://")) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )

        async def worker() -> None:
            for i in pending:
                chunk = chunks[i]
                request = pb.ModelInferRequest(model_name=MODEL)
                tensor = request.inputs.add(name="input-0", datatype="FP64")
                tensor.shape.extend([len(chunk), 4])
                tensor.contents.fp64_contents.extend([v for r in chunk for v in r.features])
                request.outputs.add(name="predict")
                answer = await infer(request, timeout=60)
                labels = [int(v) for v in answer.outputs[0].contents.int64_contents]
                results[i] = [
                    ScoredFlower(
                        id=r.id,
                        label=label,
                        model=MODEL,
                        version=None,
                        protocol="v2-grpc",
                        batch_size=len(chunk),
                    )
                    for r, label in zip(chunk, labels, strict=True)
                ]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [s.label for part in results for s in part]


def hand_run(url: str, records: list[Flower], batch: int, concurrency: int, raw: bool) -> list[int]:
    """:func:`hand_written` in its own event loop."""
    return asyncio.run(hand_written(url, records, batch, concurrency, raw))


def sequential(url: str, rows: list[list[float]]) -> list[int]:
    """One record per request, one request at a time."""
    labels = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for row in rows:
            response = client.post(
                f"/v2/models/{MODEL}/infer",
                content=v2_body([row]),
                headers={"content-type": "application/json"},
            )
            response.raise_for_status()
            labels.extend(v2_labels(response.content))
    return labels


def streamlet(url: str, records: list[Flower], **settings: Any) -> list[int]:
    config = {"url": url, "model": MODEL, "protocol": "v2", "outputs": ["predict"], **settings}
    result = run_streamlet(ScoreFlowers, {"records": records}, config=config)
    if result.error is not None or result.dead_letters:
        raise RuntimeError(f"streamlet run failed: {result.error} {result.dead_letters[:1]}")
    return [r.label for r in result.outputs["results"]]


def direct(url: str, records: list[Flower], **settings: Any) -> list[int]:
    """The streamlet's own work: process_many() on batches of records, as a runner calls it."""
    config = {"url": url, "model": MODEL, "protocol": "v2", "outputs": ["predict"], **settings}

    async def run() -> list[int]:
        scorer = ScoreFlowers(config)
        await scorer.setup()
        try:
            results = []
            for start in range(0, len(records), 4096):  # the way a runner hands batches over
                results.extend(await scorer.process_many(records[start : start + 4096]))
        finally:
            await scorer.teardown()
        return [r.label for r in results]

    return asyncio.run(run())


def timed(run: Callable[[], list[int]], expected: list[int], name: str) -> float:
    start = time.perf_counter()
    labels = run()
    elapsed = time.perf_counter() - start
    if labels != expected[: len(labels)] or len(labels) != len(expected):
        raise RuntimeError(f"{name}: wrong predictions")
    return elapsed


async def unbatched_transport_rate(url: str, kind: str, in_flight: int, requests: int) -> float:
    """Unbatched requests/s through one of the streamlet's own transports."""
    from streamlets.serving.transport import AiohttpTransport, HttpxTransport, StreamsTransport

    kinds = {"streams": StreamsTransport, "aiohttp": AiohttpTransport, "httpx": HttpxTransport}
    transport = kinds[kind](in_flight)
    body = v2_body([iris_rows()[0]])
    target = f"{url}/v2/models/{MODEL}/infer"
    pending = iter(range(requests))

    async def worker() -> None:
        for _ in pending:
            response = await transport.request("POST", target, body, timeout=60)
            if response.status != 200:
                raise RuntimeError(response.text())

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    finally:
        await transport.aclose()
    return requests / (time.perf_counter() - start)


async def unbatched_rate(
    url: str, record: Flower, in_flight: int, raw: bool, requests: int
) -> float:
    rows = [record] * requests
    start = time.perf_counter()
    await hand_written(url, rows, 1, in_flight, raw)
    return requests / (time.perf_counter() - start)


#: (batch size, requests in flight) of the sweeps of the streamlet and the hand-written
#: clients, and of the pipeline.
SWEEP = [(256, 4), (512, 2), (512, 4), (1024, 2), (1024, 4), (2048, 2)]
PIPELINE_SWEEP = [(256, 2), (1024, 2)]
#: (batch size, requests in flight) of the hand-written gRPC client.
GRPC_SWEEP = [(1024, 4), (2048, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--sequential-records", type=int, default=0, help="0: all records")
    parser.add_argument(
        "--rounds", type=int, default=8, help="rounds of every client, interleaved; best counts"
    )
    parser.add_argument("--pipeline-rounds", type=int, default=3, help="rounds of the pipeline")
    parser.add_argument(
        "--no-pool-check", action="store_true", help="skip the unbatched requests/s table"
    )
    args = parser.parse_args()

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    base = iris_rows()
    rows = [base[i % len(base)] for i in range(args.records)]
    records = [Flower(id=i, features=row) for i, row in enumerate(rows)]
    n: int = args.records
    # Every client's time in every round, by client name: the same machine runs them all in
    # turn, round after round, so a slow spell (the machine is shared) hits them alike.
    times: dict[str, list[float]] = {}

    def run(name: str, client: Callable[[], list[int]], count: int = n) -> None:
        times.setdefault(name, []).append(timed(client, expected[:count], name))

    with tempfile.TemporaryDirectory() as tmp:
        x, y = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=1000).fit(x, y)
        path = Path(tmp) / "model.joblib"
        joblib.dump(model, path)
        expected = [int(p) for p in model.predict(rows)]
        with running("mlserver", (ServedModel(MODEL, path),), Path(tmp)) as server:
            url = server.url
            grpc_url = server.grpc_url
            print(
                f"MLServer at {url} (gRPC {grpc_url}); {n} records of 4 features, "
                f"{args.rounds} rounds\n"
            )
            # Warm up the server and the clients.
            streamlet(url, records[:2000])
            direct(url, records[:2000])
            asyncio.run(hand_written(url, records[:2000], 256, 2, raw=True))
            direct(grpc_url, records[:2000], protocol="v2-grpc")

            if not args.no_pool_check:
                print("unbatched requests/s by requests in flight (httpx issue 3215 check):")
                print(
                    f"{'in flight':>10} {'httpx':>10} {'raw streams':>12} "
                    f"{'T streams':>10} {'T aiohttp':>10} {'T httpx':>10}"
                )
                for in_flight in (1, 2, 4, 8, 16, 32):
                    h = asyncio.run(unbatched_rate(url, records[0], in_flight, False, 1500))
                    r = asyncio.run(unbatched_rate(url, records[0], in_flight, True, 1500))
                    ts, ta, th = (
                        asyncio.run(unbatched_transport_rate(url, kind, in_flight, 1500))
                        for kind in ("streams", "aiohttp", "httpx")
                    )
                    print(
                        f"{in_flight:>10} {h:>10.0f} {r:>12.0f} {ts:>10.0f} {ta:>10.0f} {th:>10.0f}"
                    )
                print("(T: the streamlet's transports, transport: streams | aiohttp | httpx)\n")

            n_seq: int = args.sequential_records or n
            run("sequential", lambda: sequential(url, rows[:n_seq]), n_seq)

            for round_ in range(max(args.rounds, args.pipeline_rounds)):
                if round_ < args.pipeline_rounds:  # ~1 s a run: fewer rounds, fewer settings
                    run("pipeline default", partial(streamlet, url, records))
                    for b, c in PIPELINE_SWEEP:
                        run(
                            f"pipeline {b}x{c}",
                            partial(streamlet, url, records, batch_size=b, concurrency=c),
                        )
                if round_ >= args.rounds:
                    continue
                run("streamlet default", partial(direct, url, records))
                for b, c in SWEEP:
                    run(
                        f"streamlet {b}x{c}",
                        partial(direct, url, records, batch_size=b, concurrency=c),
                    )
                    for raw in (False, True):
                        run(
                            f"hand {b}x{c}{' raw' if raw else ''}",
                            partial(hand_run, url, records, b, c, raw),
                        )
                run("streamlet default httpx", partial(direct, url, records, transport="httpx"))
                for kind in ("streams", "aiohttp"):
                    run(f"streamlet default {kind}", partial(direct, url, records, transport=kind))
                run(
                    "streamlet default grpc", partial(direct, grpc_url, records, protocol="v2-grpc")
                )
                for b, c in GRPC_SWEEP:
                    run(
                        f"grpc {b}x{c}",
                        lambda b=b, c=c: asyncio.run(hand_written_grpc(grpc_url, records, b, c)),
                    )
                if round_ < args.pipeline_rounds:
                    run(
                        "pipeline default aiohttp",
                        partial(streamlet, url, records, transport="aiohttp"),
                    )
                    run(
                        "pipeline default streams",
                        partial(streamlet, url, records, transport="streams"),
                    )
                    run(
                        "pipeline default grpc",
                        partial(streamlet, grpc_url, records, protocol="v2-grpc"),
                    )

    def rate(name: str) -> float:  # the best round
        return (n if name != "sequential" else n_seq) / min(times[name])

    def median(name: str) -> float:
        return (n if name != "sequential" else n_seq) / statistics.median(times[name])

    def best(prefix: str) -> str:
        names = [k for k in times if k.startswith(prefix) and "default" not in k]
        return max(names, key=rate)

    rate_seq = rate("sequential")
    hand = best("hand ")
    rate_hand = rate(hand)
    table = [
        ("sequential, 1 record/request (httpx)", "sequential"),
        ("pipeline (runner + Avro), default config", "pipeline default"),
        (f"pipeline, tuned: {best('pipeline ').split()[1]}", best("pipeline ")),
        ("streamlet, default config", "streamlet default"),
        (f"streamlet, tuned: {best('streamlet ').split()[1]}", best("streamlet ")),
        ("streamlet, default config, httpx transport", "streamlet default httpx"),
        ("streamlet, default config, streams transport", "streamlet default streams"),
        ("streamlet, default config, aiohttp transport", "streamlet default aiohttp"),
        ("pipeline, default config, streams transport", "pipeline default streams"),
        ("pipeline, default config, aiohttp transport", "pipeline default aiohttp"),
        ("pipeline, default config, v2-grpc", "pipeline default grpc"),
        ("streamlet, default config, v2-grpc", "streamlet default grpc"),
        (f"hand-written gRPC: {best('grpc ').split()[1]}", best("grpc ")),
        (f"best hand-written: {hand.removeprefix('hand ')}", hand),
    ]
    print(
        f"{'client (batch x in flight)':<44} {'best rec/s':>10} {'median':>8} "
        f"{'x sequential':>13} {'x hand-written':>15}"
    )
    for label, name in table:
        print(
            f"{label:<44} {rate(name):>10.0f} {median(name):>8.0f} "
            f"{rate(name) / rate_seq:>13.1f} {rate(name) / rate_hand:>15.2f}"
        )
    for kind in ("streamlet", "pipeline"):
        ratio = rate(f"{kind} default aiohttp") / rate(f"{kind} default streams")
        medians = median(f"{kind} default aiohttp") / median(f"{kind} default streams")
        print(f"{kind}: aiohttp / streams transport = {ratio:.2f} (best), {medians:.2f} (median)")
    grpc_ratio = rate("streamlet default grpc") / rate(best("grpc "))
    print(f"streamlet v2-grpc / hand-written gRPC = {grpc_ratio:.2f} (best)")
    for prefix in ("pipeline", "streamlet", "hand", "grpc"):
        sweep = {
            k.removeprefix(prefix + " "): round(rate(k)) for k in times if k.startswith(prefix)
        }
        print(f"\n{prefix} sweep (best records/s): {sweep}")


if __name__ == "__main__":
    main()
