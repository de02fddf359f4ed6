"""Inference protocols: how a batch of model inputs becomes an HTTP request and back.

Two REST protocols are built in: TF-Serving / KServe **V1** (``:predict``, ``instances`` ->
``predictions``) and the Open Inference Protocol **V2** (``/v2/models/{m}/infer`` with
typed, shaped tensors). A protocol is pure: it builds URLs and bodies and reads answers;
the :class:`~streamlets.serving.transport.Transport` moves the bytes. A gRPC protocol would
bring its own transport and implement the same :class:`InferenceProtocol`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

import pydantic_core

from streamlets.serving.errors import ServingError
from streamlets.serving.transport import HttpResponse

__all__ = [
    "PROTOCOLS",
    "BatchShapeError",
    "InferenceProtocol",
    "ProtocolError",
    "Target",
    "V1Protocol",
    "V2Protocol",
    "protocol_for",
    "server_message",
    "v2_output_rows",
    "v2_tensors",
]


class ProtocolError(ServingError):
    """The server answered with something the protocol cannot read."""


class BatchShapeError(ServingError):
    """The model inputs of a batch cannot form one request (for example ragged rows)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A model on a model server: base URL, model name, optional version and protocol."""

    url: str
    model: str
    version: str | None = None
    protocol: str = "v1"
    outputs: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``model[:version]@url``, for messages."""
        version = f":{self.version}" if self.version else ""
        return f"{self.model}{version}@{self.url}"


class InferenceProtocol(Protocol):
    """Builds requests and reads responses of one inference protocol."""

    name: str

    def ready_url(self, target: Target) -> str:
        """The URL that answers 200 once the model is ready to serve."""
        ...

    def is_ready(self, response: HttpResponse) -> bool:
        """Whether the readiness answer says the model is ready."""
        ...

    def infer(self, target: Target, inputs: Sequence[Any]) -> tuple[str, bytes]:
        """The URL and JSON body of an inference request for ``inputs`` (one per record)."""
        ...

    def predictions(
        self, target: Target, response: HttpResponse, count: int
    ) -> tuple[list[Any], str | None]:
        """The ``count`` predictions of a successful response, in input order, and the model
        version the server says answered (``None`` when it does not say)."""
        ...


def _base(url: str) -> str:
    return url.rstrip("/")


def _json(response: HttpResponse) -> Any:
    try:
        return json.loads(response.body)
    except ValueError as exc:
        raise ProtocolError(
            f"the server answered {response.status} with a body that is not JSON: "
            f"{response.text()[:200]!r}"
        ) from exc


def server_message(response: HttpResponse) -> str:
    """The server's own error message from an error response, as short as it can be said.

    JSON bodies give their ``error`` (KServe, MLServer) or ``detail`` field; a plain-text
    Python traceback gives its last line (the exception); anything else its first 500
    characters.
    """
    text = response.text().strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        for key in ("error", "detail", "message"):
            if key in data:
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value)
    if "Traceback (most recent call last)" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1].strip()
    return text[:500] or f"HTTP {response.status} with an empty body"


#: Compact JSON, one encoder for every request (``json.dumps`` builds one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _encode_data(data: Any) -> bytes:
    """A tensor's data as compact JSON: pydantic-core's encoder (a third of the time of
    ``json``'s for a batch of floats; NaN and infinities as ``json`` writes them), and
    ``json``'s for what it does not know (it raises as before for what neither does)."""
    try:
        return pydantic_core.to_json(data)
    except pydantic_core.PydanticSerializationError:
        return _ENCODE(data).encode()


class V1Protocol:
    """TF-Serving / KServe V1 REST: ``POST /v1/models/{m}[/versions/{v}]:predict``."""

    name = "v1"

    def _model_url(self, target: Target) -> str:
        version = f"/versions/{target.version}" if target.version else ""
        return f"{_base(target.url)}/v1/models/{target.model}{version}"

    def ready_url(self, target: Target) -> str:
        """``GET /v1/models/{m}``: ``{"ready": true}`` (KServe) or a version status (TF)."""
        return self._model_url(target)

    def is_ready(self, response: HttpResponse) -> bool:
        """200 and, when the body says so, ``ready`` or a version in state ``AVAILABLE``."""
        if response.status != 200:
            return False
        try:
            data = json.loads(response.body)
        except ValueError:
            return True
        if isinstance(data, Mapping):
            if "ready" in data:
                return bool(data["ready"])
            statuses = data.get("model_version_status")
            if isinstance(statuses, list) and statuses:
                return any(
                    isinstance(s, Mapping) and s.get("state") == "AVAILABLE" for s in statuses
                )
        return True

    def infer(self, target: Target, inputs: Sequence[Any]) -> tuple[str, bytes]:
        """``{"instances": [...]}`` with one instance (a row or a dict) per record."""
        rows = inputs if isinstance(inputs, list) else list(inputs)
        body = b'{"instances":' + _encode_data(rows) + b"}"
        return f"{self._model_url(target)}:predict", body

    def predictions(
        self, target: Target, response: HttpResponse, count: int
    ) -> tuple[list[Any], str | None]:
        """The ``predictions`` list (or the ``outputs`` of a columnar answer)."""
        data = _json(response)
        if not isinstance(data, Mapping):
            raise ProtocolError(
                f"{target.label}: expected a JSON object, got {type(data).__name__}"
            )
        predictions = data.get("predictions", data.get("outputs"))
        if not isinstance(predictions, list):
            raise ProtocolError(
                f"{target.label}: the answer has no 'predictions' list: {response.text()[:200]!r}"
            )
        if len(predictions) != count:
            raise ProtocolError(
                f"{target.label}: sent {count} instance(s) but got {len(predictions)} prediction(s)"
            )
        version = data.get("model_version")
        return predictions, str(version) if version is not None else target.version


def _shape(value: Any) -> list[int]:
    shape: list[int] = []
    while isinstance(value, (list, tuple)):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _flatten(value: Any, out: list[Any]) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _flatten(item, out)
    else:
        out.append(value)


def _datatype(kinds: set[type], where: str) -> str:
    if not kinds or kinds <= {int, float}:
        return "FP64" if float in kinds or not kinds else "INT64"
    if kinds == {bool}:
        return "BOOL"
    if kinds == {str}:
        return "BYTES"
    names = ", ".join(sorted(k.__name__ for k in kinds))
    raise BatchShapeError(
        f"input '{where}' mixes value types ({names}); a tensor holds numbers, booleans or "
        "strings of one kind"
    )


def _flat_rows(values: Sequence[Any]) -> tuple[list[int], list[Any]] | None:
    """Shape and data of scalars or of equally long rows (the common case, at C speed:
    no Python step per record); ``None`` when the rows differ in length."""
    first = values[0]
    if not isinstance(first, (list, tuple)):
        return [len(values)], list(values)
    if not set(map(type, values)) <= {list, tuple}:
        return None
    widths = set(map(len, values))
    if len(widths) != 1:
        return None
    return [len(values), len(first)], list(chain.from_iterable(values))


def _tensor(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """One V2 input tensor stacking ``values`` (one per record) along a first batch axis."""
    fast = _flat_rows(values)
    kinds: set[type] = set(map(type, fast[1])) if fast is not None else {list}
    if fast is not None and not kinds & {list, tuple}:
        shape, flat = fast
    else:
        inner = _shape(values[0])
        flat = []
        for value in values:
            if _shape(value) != inner:
                raise BatchShapeError(
                    f"input '{name}' has shape {_shape(value)} for one record and {inner} for "
                    "another; the records of one request must have inputs of the same shape"
                )
            _flatten(value, flat)
        shape = [len(values), *inner]
        kinds = set(map(type, flat))
    return {"name": name, "shape": shape, "datatype": _datatype(kinds, name), "data": flat}


def _unflatten(flat: Sequence[Any], shape: Sequence[int]) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [_unflatten(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _rows(output: Mapping[str, Any], count: int, where: str) -> list[Any]:
    """Split one V2 output tensor into ``count`` per-record values.

    A per-record value of shape ``[]`` or ``[1]`` becomes a scalar, so a classifier's label
    looks the same whether the server shapes it ``[n]`` or ``[n, 1]`` (and as in V1).
    """
    shape = output.get("shape")
    data = output.get("data")
    if not isinstance(shape, list) or not isinstance(data, list):
        raise ProtocolError(f"{where}: output '{output.get('name')}' has no shape or data")
    kinds = set(map(type, data))
    if kinds & {list, tuple}:
        flat: list[Any] = []
        _flatten(data, flat)
    else:
        flat = data
    if not shape or shape[0] != count:
        raise ProtocolError(
            f"{where}: sent {count} record(s) but output '{output.get('name')}' has shape {shape}"
        )
    inner = [int(d) for d in shape[1:]]
    size = math.prod(inner) if inner else 1
    if size * count != len(flat):
        raise ProtocolError(
            f"{where}: output '{output.get('name')}' has shape {shape} but {len(flat)} values"
        )
    if inner in ([], [1]):
        return flat  # one scalar per record: the data as it came
    return [_unflatten(flat[i * size : (i + 1) * size], inner) for i in range(count)]


def v2_tensors(inputs: Sequence[Any], input_name: str) -> list[dict[str, Any]]:
    """The V2 input tensors (``name``, ``shape``, ``datatype``, flat ``data``) stacking the
    records' inputs: rows make one tensor named ``input_name``, dicts one per name.
    Raises :class:`BatchShapeError` when they do not stack."""
    if not inputs:
        raise BatchShapeError("an inference request needs at least one record")
    first = inputs[0]
    if isinstance(first, Mapping):
        names = list(first)
        for value in inputs:
            if not isinstance(value, Mapping) or list(value) != names:
                raise BatchShapeError(
                    f"records of one request name different inputs: {names} and "
                    f"{list(value) if isinstance(value, Mapping) else type(value).__name__}"
                )
        return [_tensor(n, [v[n] for v in inputs]) for n in names]
    return [_tensor(input_name, list(inputs))]


def v2_output_rows(output: Mapping[str, Any], count: int, where: str) -> list[Any]:
    """One V2 output tensor (``name``, ``shape``, ``data``) split into ``count`` values."""
    return _rows(output, count, where)


@functools.lru_cache(maxsize=256)
def _tensor_head(name: str, datatype: str, comma: bool) -> bytes:
    """``{"name":...,"datatype":...,"shape":`` of a V2 input tensor (``,`` first if asked)."""
    head = f'{{"name":{_ENCODE(name)},"datatype":{_ENCODE(datatype)},"shape":'
    return (("," if comma else "") + head).encode()


@functools.lru_cache(maxsize=256)
def _request_tail(outputs: tuple[str, ...]) -> bytes:
    """The end of a V2 request body: the named outputs, when some are."""
    if not outputs:
        return b"]}"
    named = _ENCODE([{"name": name} for name in outputs])
    return f'],"outputs":{named}}}'.encode()


class V2Protocol:
    """Open Inference Protocol V2 REST: ``POST /v2/models/{m}[/versions/{v}]/infer``.

    A record's input is a row (list, one tensor named ``input_name``) or a dict of named
    inputs (one tensor each). The request names the outputs (``Target.outputs``) when some
    are configured: servers that batch adaptively may return other outputs otherwise. The
    prediction of a record is the value of its output, or a dict by output name when there
    are several.
    """

    name = "v2"

    def __init__(self, input_name: str = "input-0") -> None:
        self.input_name = input_name

    def _model_url(self, target: Target) -> str:
        version = f"/versions/{target.version}" if target.version else ""
        return f"{_base(target.url)}/v2/models/{target.model}{version}"

    def ready_url(self, target: Target) -> str:
        """``GET /v2/models/{m}[/versions/{v}]/ready``."""
        return f"{self._model_url(target)}/ready"

    def is_ready(self, response: HttpResponse) -> bool:
        """200 (and ``ready`` true when the body has it)."""
        if response.status != 200:
            return False
        try:
            data = json.loads(response.body) if response.body else None
        except ValueError:
            return True
        if isinstance(data, Mapping) and "ready" in data:
            return bool(data["ready"])
        return True

    def infer(self, target: Target, inputs: Sequence[Any]) -> tuple[str, bytes]:
        """Tensors stacking the records' inputs; ``BatchShapeError`` when they do not stack."""
        tensors = v2_tensors(inputs, self.input_name)
        # The body is built from cached fragments around the encoded data (the one part that
        # changes, and the one the JSON encoder has real work with): no dict per request.
        parts = [b'{"inputs":[']
        for index, tensor in enumerate(tensors):
            parts.append(_tensor_head(tensor["name"], tensor["datatype"], index > 0))
            parts.append(_ENCODE(tensor["shape"]).encode())
            parts.append(b',"data":')
            parts.append(_encode_data(tensor["data"]))
            parts.append(b"}")
        parts.append(_request_tail(target.outputs))
        return f"{self._model_url(target)}/infer", b"".join(parts)

    def predictions(
        self, target: Target, response: HttpResponse, count: int
    ) -> tuple[list[Any], str | None]:
        """Per-record values of the requested outputs (all outputs when none were named)."""
        data = _json(response)
        outputs = data.get("outputs") if isinstance(data, Mapping) else None
        if not isinstance(outputs, list) or not outputs:
            raise ProtocolError(
                f"{target.label}: the answer has no 'outputs': {response.text()[:200]!r}"
            )
        by_name = {str(o.get("name")): o for o in outputs if isinstance(o, Mapping)}
        names = list(target.outputs) or list(by_name)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ProtocolError(
                f"{target.label}: asked for output(s) {', '.join(missing)} but the server "
                f"answered with {', '.join(by_name)}"
            )
        columns = {n: _rows(by_name[n], count, target.label) for n in names}
        reported = data.get("model_version") if isinstance(data, Mapping) else None
        version = str(reported) if reported is not None else target.version
        if len(names) == 1:
            return columns[names[0]], version
        return [{n: columns[n][i] for n in names} for i in range(count)], version


#: Every protocol a model server may be spoken to with (``v2-grpc``: see ``grpc_v2.py``).
PROTOCOLS: tuple[str, ...] = ("v1", "v2", "v2-grpc")


def protocol_for(name: str, *, input_name: str = "input-0") -> InferenceProtocol:
    """The protocol called ``name`` (``v1`` or ``v2``)."""
    if name == "v1":
        return V1Protocol()
    if name == "v2":
        return V2Protocol(input_name)
    raise ServingError(f"unknown inference protocol {name!r}; expected one of v1, v2")
