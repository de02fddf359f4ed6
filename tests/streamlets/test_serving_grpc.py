"""V2 over gRPC (streamlets.serving.grpc_v2) against an in-process grpc.aio server that
implements inference.GRPCInferenceService with the protocol's messages: typed and raw
tensor contents, the bearer token, status codes, the message size limit; and the
generated message module being what protoc makes of the committed .proto."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from runner.testkit import run_streamlet
from streamlets.errors import ConfigError
from streamlets.serving._oip import open_inference_pb2 as pb
from streamlets.serving.errors import ServingError
from streamlets.serving.grpc_v2 import grpc_address
from tests.streamlets.test_serving import Pair, Score, check_scored, pairs

ROOT = Path(__file__).resolve().parents[2]


class FakeGrpcServer:
    """Model ``m`` sums the two features of each row; answers with raw contents when
    ``raw``; wants ``token`` when set; refuses rows of another width (INVALID_ARGUMENT);
    answers UNAVAILABLE to the first ``unavailable`` calls."""

    def __init__(self) -> None:
        self.raw = False
        self.token: str | None = None
        self.unavailable = 0
        self.batches: list[int] = []
        self.metadata: list[dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.url = f"grpc://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.server = grpc.aio.server()
            handlers = {
                "ModelReady": grpc.unary_unary_rpc_method_handler(
                    self._ready,
                    request_deserializer=pb.ModelReadyRequest.FromString,
                    response_serializer=pb.ModelReadyResponse.SerializeToString,
                ),
                "ModelInfer": grpc.unary_unary_rpc_method_handler(
                    self._infer,
                    request_deserializer=pb.ModelInferRequest.FromString,
                    response_serializer=pb.ModelInferResponse.SerializeToString,
                ),
            }
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers),)
            )
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            await self.server.start()

        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _check(self, context: Any) -> None:
        self.metadata.append(dict(context.invocation_metadata()))
        if self.unavailable > 0:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "starting up")
        if self.token and self.metadata[-1].get("authorization") != f"Bearer {self.token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")

    async def _ready(self, request: Any, context: Any) -> Any:
        await self._check(context)
        return pb.ModelReadyResponse(ready=request.name == "m")

    async def _infer(self, request: Any, context: Any) -> Any:
        await self._check(context)
        (tensor,) = request.inputs
        n, k = tensor.shape
        if k != 2:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"expected 2 features, got {k}")
        data = list(tensor.contents.fp64_contents) or list(tensor.contents.int64_contents)
        sums = [data[2 * i] + data[2 * i + 1] for i in range(n)]
        self.batches.append(n)
        answer = pb.ModelInferResponse(model_name="m", model_version="7")
        output = answer.outputs.add(name="sum", datatype="FP64")
        output.shape.extend([n, 1])
        if self.raw:
            answer.raw_output_contents.append(struct.pack(f"<{n}d", *sums))
        else:
            output.contents.fp64_contents.extend(sums)
        return answer


@pytest.fixture
def server() -> Iterator[FakeGrpcServer]:
    fake = FakeGrpcServer()
    yield fake
    fake.close()


def _config(server: FakeGrpcServer, **more: Any) -> dict[str, Any]:
    return {"url": server.url, "model": "m", "protocol": "v2-grpc", **more}


@pytest.mark.parametrize("raw", [False, True], ids=["typed", "raw"])
def test_scores_in_order_in_batches_with_typed_or_raw_contents(
    server: FakeGrpcServer, raw: bool
) -> None:
    server.raw = raw
    result = run_streamlet(Score, {"records": pairs(100)}, config=_config(server, batch_size=16))
    assert result.error is None and not result.dead_letters
    check_scored(result.outputs["results"], list(range(100)))
    assert max(server.batches) == 16 and sum(server.batches) == 100


def test_the_bearer_token_goes_with_every_call(server: FakeGrpcServer) -> None:
    server.token = "t0ken"
    result = run_streamlet(Score, {"records": pairs(5)}, config=_config(server, auth_token="t0ken"))
    check_scored(result.outputs["results"], list(range(5)))
    assert {m.get("authorization") for m in server.metadata} == {"Bearer t0ken"}


def test_an_unavailable_server_is_waited_for(server: FakeGrpcServer) -> None:
    server.unavailable = 3
    result = run_streamlet(Score, {"records": pairs(10)}, config=_config(server))
    check_scored(result.outputs["results"], list(range(10)))
    assert not result.dead_letters


def test_a_refused_record_is_dead_lettered_alone_with_the_servers_message(
    server: FakeGrpcServer,
) -> None:
    records = pairs(20)
    records[6] = Pair(id=6, a=1, b=2, extra=[3.0])
    result = run_streamlet(Score, {"records": records}, config=_config(server))
    check_scored(result.outputs["results"], [i for i in range(20) if i != 6])
    (dead,) = result.dead_letters
    assert dead.error_class == "ModelRejected"
    assert "INVALID_ARGUMENT: expected 2 features, got 3" in dead.error_message


def test_an_answer_over_the_message_limit_splits_the_batch(server: FakeGrpcServer) -> None:
    # An answer takes ~8 bytes a row: 256 and 128 rows are over 1024 bytes, 64 are not.
    config = _config(server, batch_size=256, max_response_bytes=1024, max_wait_ms=200)
    result = run_streamlet(Score, {"records": pairs(256)}, config=config)
    assert not result.dead_letters
    check_scored(result.outputs["results"], list(range(256)))
    assert sorted(server.batches) == [64, 64, 64, 64, 128, 128, 256]


def test_grpc_addresses() -> None:
    assert grpc_address("grpc://h:8081") == ("h:8081", False)
    assert grpc_address("grpcs://h:443/") == ("h:443", True)
    assert grpc_address("h:8081") == ("h:8081", False)
    with pytest.raises(ServingError, match="not a gRPC address"):
        grpc_address("http://h:8080")
    with pytest.raises(ConfigError, match="protocol"):
        Score({"url": "grpc://h:1", "model": "m", "protocol": "v3-grpc"})


def test_the_generated_messages_are_what_protoc_makes_of_the_proto(tmp_path: Path) -> None:
    """streamlets/serving/_oip/open_inference_pb2.py(i) are generated, not edited: `make
    protos` (grpcio-tools) regenerates them; this checks they are current."""
    proto = "streamlets/serving/_oip/open_inference.proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", proto],
        cwd=ROOT,
        check=True,
    )  # fmt: skip
    for suffix in (".py", ".pyi"):
        made = (tmp_path / proto).with_name(f"open_inference_pb2{suffix}").read_text()
        committed = (ROOT / proto).with_name(f"open_inference_pb2{suffix}").read_text()
        assert made == committed, f"open_inference_pb2{suffix} is stale: run make protos"
