"""The model-serving streamlet end to end through the testkit, against an in-process server.

The fake model server speaks V1 and V2 over real HTTP on a loopback port (in a thread with
its own event loop); its "model" adds the two features of a row. It can answer slowly,
answer 503, refuse connections for a while, and reject rows that do not have two features
the way a real server does (one error for the whole batch).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from blueprint import Severity, verify
from runner.cli import cli
from runner.testkit import run_streamlet
from streamlets import Inlet, Outlet
from streamlets.errors import ConfigError
from streamlets.serving import (
    ModelInfo,
    ModelRejected,
    ModelServingStreamlet,
    ModelUpdate,
    StreamsTransport,
)


class FakeModelServer:
    """A V1 + V2 model server whose model ``m`` sums two features."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.fail_next = 0  # answer 503 to this many inference requests
        self.down = False  # close every connection without answering
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        started.wait(5)
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        started.set()
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def close(self) -> None:
        def stop() -> None:
            assert self.server is not None
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if self.down:
                    return
                status, payload = await self._answer(method, path, body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET":
            if path in ("/v1/models/m", "/v2/models/m/ready"):
                return 200, {"name": "m", "ready": True}
            return 404, {"error": f"Model {path} not found"}
        self.requests += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503, {"error": "overloaded"}
        request = json.loads(body)
        if path == "/v1/models/m:predict":
            rows = request["instances"]
        elif path == "/v2/models/m/infer":
            tensor = request["inputs"][0]
            n, k = tensor["shape"]
            rows = [tensor["data"][i * k : (i + 1) * k] for i in range(n)]
        else:
            return 404, {"error": f"no route {path}"}
        bad = [r for r in rows if len(r) != 2]
        if bad:
            return 400, {"error": f"expected 2 features, got {len(bad[0])}"}
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.batches.append(len(rows))
        sums = [r[0] + r[1] for r in rows]
        if path.startswith("/v1"):
            return 200, {"predictions": sums}
        outputs = [{"name": "sum", "shape": [len(rows), 1], "datatype": "FP64", "data": sums}]
        return 200, {"model_name": "m", "model_version": "7", "outputs": outputs}


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    fake = FakeModelServer()
    yield fake
    fake.close()


class Pair(BaseModel):
    id: int
    a: float
    b: float
    extra: list[float] = []


class Scored(BaseModel):
    id: int
    total: float
    model: str
    version: str | None


class Score(ModelServingStreamlet):
    """Scores pairs; a non-empty ``extra`` makes a malformed model input."""

    records = Inlet(Pair)
    results = Outlet(Scored)

    def to_input(self, record: Pair) -> list[float]:
        return [record.a, record.b, *record.extra]

    def to_result(self, record: Pair, prediction: Any, model: ModelInfo) -> Scored:
        return Scored(id=record.id, total=prediction, model=model.name, version=model.version)


def pairs(n: int) -> list[Pair]:
    return [Pair(id=i, a=i, b=0.5) for i in range(n)]


def check_scored(out: list[Scored], ids: list[int]) -> None:
    assert [r.id for r in out] == ids
    assert all(r.total == r.id + 0.5 for r in out)


@pytest.mark.parametrize("transport", ["streams", "aiohttp", "httpx"])
@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_scores_every_record_in_order_in_full_batches(
    server: FakeModelServer, protocol: str, transport: str
) -> None:
    config: dict[str, Any] = {"url": server.url, "model": "m", "protocol": protocol}
    config.update(batch_size=10, transport=transport)
    config["max_wait_ms"] = 200
    result = run_streamlet(Score, {"records": pairs(100)}, config=config)
    assert result.error is None
    check_scored(result.outputs["results"], list(range(100)))
    assert sorted(server.batches) == [10] * 10
    assert result.outputs["results"][0].model == "m"
    assert result.outputs["results"][0].version == ("7" if protocol == "v2" else None)


def test_a_partial_batch_goes_after_max_wait(server: FakeModelServer) -> None:
    async def scenario() -> list[Scored]:
        streamlet = Score({"url": server.url, "model": "m", "batch_size": 1000, "max_wait_ms": 20})
        await streamlet.setup()
        try:
            return list(await asyncio.gather(*(streamlet.process(r) for r in pairs(7))))
        finally:
            await streamlet.teardown()

    check_scored(asyncio.run(scenario()), list(range(7)))
    assert server.batches == [7]


def test_the_runner_hands_over_whole_batches_and_the_last_partial_one_goes_at_once(
    server: FakeModelServer,
) -> None:
    config = {"url": server.url, "model": "m", "batch_size": 1000, "max_wait_ms": 60_000}
    result = run_streamlet(Score, {"records": pairs(7)}, config=config)
    check_scored(result.outputs["results"], list(range(7)))
    assert server.batches == [7]  # it did not wait a minute for more records


def test_requests_in_flight_are_bounded_by_concurrency(server: FakeModelServer) -> None:
    server.delay = 0.02
    config = {"url": server.url, "model": "m", "batch_size": 5, "concurrency": 3}
    result = run_streamlet(Score, {"records": pairs(120)}, config=config)
    check_scored(result.outputs["results"], list(range(120)))
    assert 1 < server.max_in_flight <= 3


def test_a_rejected_record_is_dead_lettered_with_the_servers_message(
    server: FakeModelServer,
) -> None:
    records = pairs(64)
    records[21] = Pair(id=21, a=1, b=2, extra=[3.0])
    config = {"url": server.url, "model": "m", "batch_size": 64, "max_wait_ms": 100}
    result = run_streamlet(Score, {"records": records}, config=config)
    check_scored(result.outputs["results"], [i for i in range(64) if i != 21])
    (dead,) = result.dead_letters
    assert dead.stage == "process"
    assert dead.error_class == "ModelRejected"
    assert "expected 2 features, got 3" in dead.error_message
    # The bad record was found by halving the batch, not by sending every record alone.
    assert server.requests <= 1 + 2 * 6


def test_v2_ragged_batch_is_split_locally_and_the_bad_record_goes_to_the_server(
    server: FakeModelServer,
) -> None:
    records = pairs(8)
    records[3] = Pair(id=3, a=1, b=2, extra=[3.0])
    config = {"url": server.url, "model": "m", "protocol": "v2", "max_wait_ms": 100}
    result = run_streamlet(Score, {"records": records}, config=config)
    check_scored(result.outputs["results"], [0, 1, 2, 4, 5, 6, 7])
    (dead,) = result.dead_letters
    assert dead.error_message == "the model m rejected the record: expected 2 features, got 3"


def test_transient_answers_are_retried(server: FakeModelServer) -> None:
    server.fail_next = 3
    config = {"url": server.url, "model": "m", "batch_size": 50, "retries": 5}
    result = run_streamlet(Score, {"records": pairs(50)}, config=config)
    check_scored(result.outputs["results"], list(range(50)))
    assert result.dead_letters == []


def test_retries_run_out_into_dead_letters_not_silence(server: FakeModelServer) -> None:
    server.fail_next = 1000
    config = {"url": server.url, "model": "m", "batch_size": 5, "retries": 1}
    result = run_streamlet(Score, {"records": pairs(5)}, config=config)
    assert result.outputs["results"] == []
    assert len(result.dead_letters) == 5
    assert all(
        "HTTP 503: overloaded; gave up after 1 retries" in d.error_message
        for d in result.dead_letters
    )


@pytest.mark.parametrize("transport", ["streams", "aiohttp", "httpx"])
def test_a_timeout_is_retried_then_reported(server: FakeModelServer, transport: str) -> None:
    server.delay = 2.0
    config: dict[str, Any] = {"url": server.url, "model": "m", "timeout_s": 0.05, "retries": 0}
    config["transport"] = transport
    result = run_streamlet(Score, {"records": pairs(2)}, config=config)
    assert len(result.dead_letters) == 2
    assert "no answer within 0.05 s" in result.dead_letters[0].error_message


@pytest.mark.parametrize("transport", ["streams", "aiohttp", "httpx"])
def test_records_wait_while_the_server_is_down_and_none_is_lost(
    server: FakeModelServer, transport: str
) -> None:
    server.down = True
    threading.Timer(0.6, lambda: setattr(server, "down", False)).start()
    started = time.monotonic()
    config = {"url": server.url, "model": "m", "batch_size": 16, "transport": transport}
    result = run_streamlet(Score, {"records": pairs(200)}, config=config)
    assert time.monotonic() - started >= 0.6  # it waited for the server, it did not give up
    check_scored(result.outputs["results"], list(range(200)))
    assert result.dead_letters == []


def test_with_no_model_records_wait_for_the_first_control_record(server: FakeModelServer) -> None:
    control = [ModelUpdate(url=server.url, model="m", protocol="v2")]
    result = run_streamlet(Score, {"records": pairs(30), "control": control})
    check_scored(result.outputs["results"], list(range(30)))
    assert {r.version for r in result.outputs["results"]} == {"7"}


def test_a_control_record_without_a_model_is_dead_lettered() -> None:
    result = run_streamlet(Score, {"control": [ModelUpdate(model="m")]})
    (dead,) = result.dead_letters
    assert dead.inlet == "control"
    assert "needs url and model" in dead.error_message


def test_control_switches_between_batches_without_loss_or_duplicates() -> None:
    first, second = FakeModelServer(), FakeModelServer()
    try:

        async def scenario() -> list[Scored]:
            streamlet = Score({"url": first.url, "model": "m", "batch_size": 4})
            await streamlet.setup()
            try:
                head = await asyncio.gather(*(streamlet.process(r) for r in pairs(12)))
                await streamlet.on_control(ModelUpdate(url=second.url, model="m", protocol="v2"))
                tail = await asyncio.gather(*(streamlet.process(r) for r in pairs(20)[12:]))
            finally:
                await streamlet.teardown()
            return [*head, *tail]

        out = asyncio.run(scenario())
        check_scored(out, list(range(20)))
        assert sum(first.batches) == 12
        assert sum(second.batches) == 8
        assert [r.version for r in out] == [None] * 12 + ["7"] * 8
    finally:
        first.close()
        second.close()


def test_switching_away_from_a_dead_server_sends_its_held_batches_to_the_new_one(
    server: FakeModelServer,
) -> None:
    dead_url = "http://127.0.0.1:9"  # discard port: nothing listens

    async def scenario() -> list[Scored]:
        streamlet = Score({"url": dead_url, "model": "m"})
        await streamlet.setup()
        try:
            pending = asyncio.gather(*(streamlet.process(r) for r in pairs(10)))
            await asyncio.sleep(0.3)
            assert not pending.done()
            await streamlet.on_control(ModelUpdate(url=server.url, model="m"))
            return list(await asyncio.wait_for(pending, 10))
        finally:
            await streamlet.teardown()

    check_scored(asyncio.run(scenario()), list(range(10)))


def test_metrics_count_requests_records_and_retries(server: FakeModelServer) -> None:
    server.fail_next = 2

    async def scenario() -> Score:
        streamlet = Score({"url": server.url, "model": "m", "batch_size": 10})
        await streamlet.setup()
        await asyncio.gather(*(streamlet.process(r) for r in pairs(30)))
        await streamlet.teardown()
        return streamlet

    metrics = asyncio.run(scenario()).metrics.models["m"]
    assert metrics.requests == 3
    assert metrics.records == 30
    assert metrics.retries == 2
    assert metrics.batch_sizes.count == 3
    assert metrics.latency.count == 3


def test_embedded_scikit_learn_model(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0, 0], [1, 0], [0, 1], [2, 3]], [0, 1, 1, 5])
    path = tmp_path / "sum.joblib"
    joblib.dump(model, path)
    records = pairs(40)
    records[5] = Pair(id=5, a=1, b=2, extra=[3.0])
    result = run_streamlet(Score, {"records": records}, config={"path": str(path), "batch_size": 8})
    out = result.outputs["results"]
    assert [r.id for r in out] == [i for i in range(40) if i != 5]
    assert all(abs(r.total - (r.id + 0.5)) < 1e-9 for r in out)
    assert out[0].model == "sum" and out[0].version and len(out[0].version) == 12
    (dead,) = result.dead_letters
    assert "X has 3 features" in dead.error_message


def test_embedded_model_file_errors_are_clear(tmp_path: Path) -> None:
    result = run_streamlet(Score, {"control": [ModelUpdate(path=str(tmp_path / "none.joblib"))]})
    assert "does not exist" in result.dead_letters[0].error_message
    result = run_streamlet(
        Score, {"records": pairs(1)}, config={"path": str(tmp_path / "x.joblib")}
    )
    assert result.error is not None and "does not exist" in str(result.error)


def test_streams_transport_reads_chunked_answers_and_reconnects() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
        b"HTTP/1.0 200 OK\r\n\r\nuntil-eof",
    ]

    async def scenario() -> list[tuple[int, bytes]]:
        served = iter(answers)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.readline() not in (b"\r\n", b""):
                pass
            writer.write(next(served))
            await writer.drain()
            writer.close()  # every answer ends its connection: the client must reconnect

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = StreamsTransport(connections=2)
        try:
            out = []
            for _ in answers:
                response = await transport.request("GET", f"http://127.0.0.1:{port}/x", timeout=5)
                out.append((response.status, response.body))
            return out
        finally:
            await transport.aclose()
            server.close()

    assert asyncio.run(scenario()) == [(200, b"abcdef"), (503, b"no"), (200, b"until-eof")]


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="url needs model"):
        Score({"url": "http://x"})
    with pytest.raises(ConfigError, match="either url"):
        Score({"url": "http://x", "model": "m", "path": "m.joblib"})
    with pytest.raises(ConfigError, match="protocol"):
        Score({"url": "http://x", "model": "m", "protocol": "v3"})


def test_definition_problems_name_what_is_missing() -> None:
    class NoResult(ModelServingStreamlet):
        records = Inlet(Pair)
        results = Outlet(Scored)

    class NoRecords(ModelServingStreamlet):
        results = Outlet(Scored)

        def to_result(self, record: Any, prediction: Any, model: ModelInfo) -> Any:
            return None

    assert any("to_result" in p for p in NoResult.definition_problems())
    assert any("no inlet for the records" in p for p in NoRecords.definition_problems())
    assert Score.definition_problems() == []
    assert set(Score.inlets()) == {"control", "records"}
    assert Score.inlets()["control"].schema.name == "streamlets.serving.ModelUpdate"


def test_metrics_export_to_prometheus(server: FakeModelServer) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    async def scenario() -> Score:
        streamlet = Score({"url": server.url, "model": "m", "batch_size": 4})
        await streamlet.setup()
        await streamlet.process_many(pairs(10))
        await streamlet.teardown()
        return streamlet

    registry = CollectorRegistry()
    registry.register(asyncio.run(scenario()).metrics)
    text = generate_latest(registry).decode()
    assert 'streamlets_serving_records_total{model="m"} 10.0' in text
    assert 'streamlets_serving_requests_total{model="m"} 3.0' in text
    assert 'streamlets_serving_batch_records_bucket{le="4",model="m"} 3.0' in text
    assert 'streamlets_serving_request_latency_seconds_count{model="m"} 3.0' in text


def test_embedded_onnx_model(tmp_path: Path) -> None:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0, 0], [1, 0], [0, 1], [2, 3]], [0, 1, 1, 5])
    path = tmp_path / "sum.onnx"
    path.write_bytes(to_onnx(model, np.zeros((1, 2), dtype=np.float32)).SerializeToString())
    result = run_streamlet(Score, {"records": pairs(20)}, config={"path": str(path)})
    out = result.outputs["results"]
    assert [r.id for r in out] == list(range(20))
    assert all(abs(r.total - (r.id + 0.5)) < 1e-3 for r in out)  # float32 inside ONNX
    assert out[0].model == "sum"
    result = run_streamlet(Score, {"control": [ModelUpdate(path=str(path), outputs=["nope"])]})
    assert "has no output(s) nope; it has variable" in result.dead_letters[0].error_message


@pytest.fixture
def two_servers() -> Iterator[tuple[FakeModelServer, FakeModelServer]]:
    first, second = FakeModelServer(), FakeModelServer()
    yield first, second
    first.close()
    second.close()


def test_several_servers_of_one_model_share_the_batches(
    two_servers: tuple[FakeModelServer, FakeModelServer],
) -> None:
    first, second = two_servers
    first.delay = second.delay = 0.01
    config = {"url": [first.url, second.url], "model": "m", "batch_size": 10, "concurrency": 4}
    result = run_streamlet(Score, {"records": pairs(200)}, config=config)
    check_scored(result.outputs["results"], list(range(200)))
    assert first.batches and second.batches
    assert sum(first.batches) + sum(second.batches) == 200


def test_a_pool_carries_on_without_a_server_that_is_down(
    two_servers: tuple[FakeModelServer, FakeModelServer],
) -> None:
    first, second = two_servers
    first.down = True
    config = {"url": [first.url, second.url], "model": "m", "batch_size": 10}
    result = run_streamlet(Score, {"records": pairs(100)}, config=config)
    check_scored(result.outputs["results"], list(range(100)))
    assert first.batches == [] and sum(second.batches) == 100
    assert result.dead_letters == []


def test_a_control_record_can_name_several_servers(
    two_servers: tuple[FakeModelServer, FakeModelServer],
) -> None:
    first, second = two_servers
    control = [ModelUpdate(urls=[first.url, second.url], model="m", protocol="v2")]
    result = run_streamlet(Score, {"records": pairs(50), "control": control})
    check_scored(result.outputs["results"], list(range(50)))
    assert sum(first.batches) + sum(second.batches) == 50


def test_an_overridden_process_is_still_called_for_each_record(server: FakeModelServer) -> None:
    class Doubling(Score):
        async def process(self, record: Pair) -> Scored:
            scored: Scored = await super().process(record)
            return scored.model_copy(update={"total": scored.total * 2})

    result = run_streamlet(
        Doubling, {"records": pairs(30)}, config={"url": server.url, "model": "m"}
    )
    assert [r.total for r in result.outputs["results"]] == [2 * (i + 0.5) for i in range(30)]


class Picky(Score):
    """Fails to build the input of record 5 and the result of record 9."""

    def to_input(self, record: Pair) -> list[float]:
        if record.id == 5:
            raise ValueError("no input for 5")
        return super().to_input(record)

    def to_result(self, record: Pair, prediction: Any, model: ModelInfo) -> Scored:
        if record.id == 9:
            raise ValueError("no result for 9")
        return super().to_result(record, prediction, model)


def test_process_and_process_many_share_batches_and_each_failure_stays_with_its_record(
    server: FakeModelServer,
) -> None:
    async def scenario() -> tuple[Scored, list[Any], list[Any]]:
        streamlet = Picky({"url": server.url, "model": "m", "batch_size": 4, "max_wait_ms": 60e3})
        await streamlet.setup()
        try:
            single = asyncio.ensure_future(streamlet.process(Pair(id=100, a=100, b=0.5)))
            await asyncio.sleep(0)  # its input now waits in an open batch
            records = [r for r in pairs(12) if r.id != 5]
            records[6] = Pair(id=7, a=1, b=2, extra=[3.0])  # the model rejects it
            many = await streamlet.process_many(records)
            some = await streamlet.process_many([Pair(id=5, a=5, b=0.5), Pair(id=20, a=20, b=0.5)])
            return await single, many, some
        finally:
            await streamlet.teardown()

    single, many, some = asyncio.run(scenario())
    assert single.total == 100.5
    assert server.batches[0] == 4  # the single input and the first three of process_many
    ids = [i for i in range(12) if i != 5]
    assert len(many) == len(ids)
    for record_id, result in zip(ids, many, strict=True):
        if record_id == 7:
            assert isinstance(result, ModelRejected)
            assert "expected 2 features, got 3" in str(result)
        elif record_id == 9:
            assert isinstance(result, ValueError)
        else:
            assert isinstance(result, Scored)
            assert (result.id, result.total) == (record_id, record_id + 0.5)
    assert isinstance(some[0], ValueError)
    assert str(some[0]) == "no input for 5"
    assert isinstance(some[1], Scored)
    assert some[1].total == 20.5


SERVING_APP = """
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet
from streamlets.serving import ModelInfo, ModelServingStreamlet


class Pair(BaseModel):
    id: int
    a: float
    b: float


class Scored(BaseModel):
    id: int
    total: float
    model: str


class Pairs(Streamlet):
    out = Outlet(Pair)

    def generate(self) -> Iterator[Pair]:
        for i in range(50):
            yield Pair(id=i, a=i, b=0.5)


class Score(ModelServingStreamlet):
    records = Inlet(Pair)
    results = Outlet(Scored)

    def to_input(self, record: Pair) -> list[float]:
        return [record.a, record.b]

    def to_result(self, record: Pair, prediction: Any, model: ModelInfo) -> Scored:
        return Scored(id=record.id, total=prediction, model=model.name)
"""


def test_the_control_inlet_is_optional() -> None:
    assert Score.inlets()["control"].optional
    assert not Score.inlets()["records"].optional


def test_a_blueprint_with_a_configured_server_and_no_control_topic_verifies_and_runs_locally(
    server: FakeModelServer, tmp_path: Path
) -> None:
    (tmp_path / "serving_app.py").write_text(SERVING_APP)
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(
        f"""
name: score-without-control
streamlets:
  pairs: {{class: "serving_app:Pairs"}}
  score:
    class: serving_app:Score
    config: {{url: "{server.url}", model: m, protocol: v2, batch_size: 16}}
  store:
    class: streamlets.library:FileSink
    config: {{path: scored.jsonl, schema: "serving_app:Scored"}}
topics:
  pairs: {{producers: [pairs.out], consumers: [score.records]}}
  scored: {{producers: [score.results], consumers: [store.records]}}
"""
    )
    verification = verify(blueprint)
    assert verification.ok, verification.problems
    (note,) = verification.problems
    assert (note.code, note.severity) == ("optional-inlet-unconnected", Severity.NOTE)
    assert "score.control" in note.message

    result = CliRunner().invoke(
        cli, ["run-local", str(blueprint), "--quiet", "--run-dir", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "scored.jsonl").read_text().splitlines()
    scored = [json.loads(line) for line in lines]
    assert [r["id"] for r in scored] == list(range(50))
    assert all(r["total"] == r["id"] + 0.5 and r["model"] == "m" for r in scored)
    assert sum(server.batches) == 50
