"""The Open Inference Protocol (V2) over gRPC: ``inference.GRPCInferenceService``.

A :class:`GrpcBackend` is a model on a model server's gRPC port (MLServer's 8081, KServe's
and Triton's 8001), spoken to with ``grpcio``'s asyncio channel and the protocol's
messages (``streamlets/serving/_oip/open_inference.proto``; needs
``pip install 'streamlets[grpc]'``). It builds the same tensors from the records' inputs
as V2 over REST and reads the outputs the same way, so a streamlet switches between
``protocol: v2`` and ``protocol: v2-grpc`` without changing ``to_input``/``to_result``.

Status codes map to the scorer's faults: ``UNAVAILABLE`` and ``CANCELLED`` are a server
out of reach (records wait for it), ``DEADLINE_EXCEEDED`` a timeout (retried),
``RESOURCE_EXHAUSTED`` an answer or request over the message size limit (the batch is
split), ``ABORTED`` a transient refusal (retried); any other code is the model refusing
the batch (split down to the record at fault, which goes to the dead letters with the
server's message).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamlets.serving.backends import BatchRejected, TransientStatus
from streamlets.serving.errors import ServingError, TransportError
from streamlets.serving.model_info import ModelInfo
from streamlets.serving.protocols import (
    BatchShapeError,
    ProtocolError,
    Target,
    v2_output_rows,
    v2_tensors,
)
from streamlets.serving.retry import Backoff

__all__ = ["SERVICE", "GrpcBackend", "grpc_address"]

log = logging.getLogger("streamlets.serving")

#: The protocol's service, as its methods' paths name it on the wire.
SERVICE = "/inference.GRPCInferenceService"

#: The field of InferTensorContents holding each data type.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
#: struct codes of the fixed-size types in raw (little-endian, row-major) tensor data.
_RAW = {
    "BOOL": "?",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}
_WARN_EVERY = 30.0


def grpc_address(url: str) -> tuple[str, bool]:
    """``host:port`` and whether to use TLS, from ``grpc://host:port``, ``grpcs://host:port``
    or a bare ``host:port``."""
    for scheme, tls in (("grpcs://", True), ("grpc://", False)):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/"), tls
    if "://" in url:
        raise ServingError(
            f"{url!r} is not a gRPC address; protocol v2-grpc takes grpc://host:port, "
            "grpcs://host:port (TLS) or host:port"
        )
    return url.rstrip("/"), False


def _raw_values(datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":  # each element: a 4-byte little-endian length, then the bytes
        values, at = [], 0
        while at + 4 <= len(raw):
            (size,) = struct.unpack_from("<I", raw, at)
            values.append(_text(raw[at + 4 : at + 4 + size]))
            at += 4 + size
        return values
    code = _RAW.get(datatype)
    if code is None:
        raise ProtocolError(f"raw output of data type {datatype!r} cannot be read")
    count = len(raw) // struct.calcsize(code)
    return list(struct.unpack(f"<{count}{code}", raw))


def _text(value: bytes) -> Any:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


class GrpcBackend:
    """A model on a model server, spoken to over the Open Inference Protocol's gRPC API."""

    WARN_EVERY = _WARN_EVERY

    def __init__(
        self,
        target: Target,
        *,
        input_name: str = "input-0",
        token: str | None = None,
        max_response_bytes: int = 256 * 1024 * 1024,
        retired: asyncio.Event | None = None,
    ) -> None:
        self.target = target
        self.input_name = input_name
        self.address, self.tls = grpc_address(target.url)
        self.max_response_bytes = max_response_bytes
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._info = ModelInfo(target.model, target.version, "v2-grpc", target.url)
        self._ready = False
        self._probe = asyncio.Lock()
        self._retired = retired if retired is not None else asyncio.Event()
        self._channel: Any = None
        self._calls: dict[str, Callable[..., Any]] = {}
        self.in_flight = 0

    # -- the channel -----------------------------------------------------------------------

    def _call(self, method: str) -> Callable[..., Any]:
        known = self._calls.get(method)
        if known is not None:
            return known
        try:
            import grpc  # noqa: PLC0415 - grpcio is an optional extra

            from streamlets.serving._oip import open_inference_pb2 as pb  # noqa: PLC0415
        except ImportError as exc:
            raise ServingError(
                "protocol v2-grpc needs grpcio and protobuf: pip install 'streamlets[grpc]'"
            ) from exc
        if self._channel is None:
            options = [
                ("grpc.max_receive_message_length", self.max_response_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.enable_http_proxy", 0),
            ]
            if self.tls:
                credentials = grpc.ssl_channel_credentials()
                self._channel = grpc.aio.secure_channel(self.address, credentials, options)
            else:
                self._channel = grpc.aio.insecure_channel(self.address, options)
        messages: dict[str, tuple[Any, Any]] = {
            "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
        }
        request, response = messages[method]
        call: Callable[..., Any] = self._channel.unary_unary(
            f"{SERVICE}/{method}",
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )
        self._calls[method] = call
        self._calls[f"{method}:message"] = request
        return call

    async def _invoke(self, method: str, build: Callable[[Any], None], timeout: float) -> Any:
        """Call ``method`` with a request ``build`` fills in; gRPC errors become ours."""
        import grpc  # noqa: PLC0415

        call = self._call(method)
        request = self._calls[f"{method}:message"]()
        build(request)
        try:
            return await call(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise _fault(exc, f"{self.target.label} {method}", timeout) from exc

    # -- the Backend interface ------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        """The configured model; the version is the server's when it reports one."""
        return self._info

    @property
    def retired(self) -> asyncio.Event:
        """Set once a control record switched to another backend."""
        return self._retired

    @property
    def ready(self) -> bool:
        """Whether the last readiness probe (or request) found the model serving."""
        return self._ready

    def mark_unready(self) -> None:
        """The next request probes readiness first (the server went away)."""
        self._ready = False

    async def wait_ready(self, backoff: Backoff, timeout: float) -> bool:
        """Call ``ModelReady`` until it says ready (one prober; others wait on it)."""
        if self._ready:
            return True
        target = self.target

        def build(request: Any) -> None:
            request.name = target.model
            request.version = target.version or ""

        async with self._probe:
            attempt = 0
            last_warning = 0.0
            while not self._ready:
                if self._retired.is_set():
                    return False
                try:
                    answer = await self._invoke("ModelReady", build, timeout)
                except (TransportError, BatchRejected, TransientStatus) as exc:
                    reason = str(exc)
                else:
                    if answer.ready:
                        self._ready = True
                        if attempt:
                            log.warning("model %s is ready again", target.label)
                        break
                    reason = "ModelReady answered ready: false"
                now = time.monotonic()
                if now - last_warning >= self.WARN_EVERY:
                    last_warning = now
                    log.warning(
                        "model %s is not ready (%s); records wait until it is "
                        "(a control record can switch to another model)",
                        target.label,
                        reason,
                    )
                try:
                    await asyncio.wait_for(self._retired.wait(), backoff.delay(attempt))
                    return False
                except TimeoutError:
                    attempt += 1
        return True

    async def predict(self, inputs: Sequence[Any], timeout: float) -> tuple[list[Any], ModelInfo]:
        """Send one ``ModelInfer`` request for ``inputs``."""
        try:
            tensors = v2_tensors(inputs, self.input_name)
        except BatchShapeError as exc:
            raise BatchRejected(str(exc)) from exc
        target = self.target

        def build(request: Any) -> None:
            request.model_name = target.model
            request.model_version = target.version or ""
            for tensor in tensors:
                datatype = tensor["datatype"]
                added = request.inputs.add(name=tensor["name"], datatype=datatype)
                added.shape.extend(tensor["shape"])
                data = tensor["data"]
                if datatype == "BYTES":
                    data = [v.encode() if isinstance(v, str) else v for v in data]
                getattr(added.contents, _CONTENTS[datatype]).extend(data)
            for name in target.outputs:
                request.outputs.add(name=name)

        start = time.perf_counter()
        self.in_flight += 1
        try:
            answer = await self._invoke("ModelInfer", build, timeout)
        finally:
            self.in_flight -= 1
        elapsed = time.perf_counter() - start
        try:
            predictions, version = self._predictions(answer, len(inputs))
        except ProtocolError as exc:
            raise BatchRejected(str(exc)) from exc
        info = ModelInfo(
            target.model,
            version,
            "v2-grpc",
            target.url,
            latency_s=elapsed,
            batch_size=len(inputs),
        )
        return predictions, info

    def _predictions(self, answer: Any, count: int) -> tuple[list[Any], str | None]:
        target = self.target
        raw = list(answer.raw_output_contents)
        by_name: dict[str, Mapping[str, Any]] = {}
        for index, output in enumerate(answer.outputs):
            datatype = output.datatype
            if raw:
                if index >= len(raw):
                    raise ProtocolError(f"{target.label}: output '{output.name}' has no data")
                data = _raw_values(datatype, raw[index])
            else:
                field = _CONTENTS.get(datatype)
                if field is None:
                    raise ProtocolError(
                        f"{target.label}: output '{output.name}' has data type {datatype!r}, "
                        "which has no typed contents"
                    )
                data = list(getattr(output.contents, field))
                if datatype == "BYTES":
                    data = [_text(v) for v in data]
            by_name[output.name] = {"name": output.name, "shape": list(output.shape), "data": data}
        if not by_name:
            raise ProtocolError(f"{target.label}: the answer has no outputs")
        names = list(target.outputs) or list(by_name)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ProtocolError(
                f"{target.label}: asked for output(s) {', '.join(missing)} but the server "
                f"answered with {', '.join(by_name)}"
            )
        columns = {n: v2_output_rows(by_name[n], count, target.label) for n in names}
        version = answer.model_version or target.version
        if len(names) == 1:
            return columns[names[0]], version
        return [{n: columns[n][i] for n in names} for i in range(count)], version

    async def aclose(self) -> None:
        """Retire the backend and close its channel."""
        self._retired.set()
        channel, self._channel = self._channel, None
        self._calls.clear()
        if channel is not None:
            await channel.close(grace=None)


def _fault(exc: Any, what: str, timeout: float) -> ServingError:
    """The scorer's fault for a failed call (see the module docstring)."""
    import grpc  # noqa: PLC0415

    code = exc.code()
    details = (exc.details() or "").strip() or code.name
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TransportError(f"{what}: no answer within {timeout:g} s", timeout=True)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return TransportError(f"{what}: {code.name}: {details}")
    if code == grpc.StatusCode.ABORTED:
        return TransientStatus(f"{what}: {code.name}: {details}", status=503)
    return BatchRejected(f"{code.name}: {details}")
