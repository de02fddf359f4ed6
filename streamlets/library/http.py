"""HTTP ingress: records POSTed as JSON enter the pipeline.

A small HTTP/1.1 server on asyncio (no extra dependency). ``POST`` a JSON record or a JSON
array of records to any path:

- ``202 Accepted`` with ``{"accepted": N}`` once every record of the request is queued;
- ``400 Bad Request`` with ``{"error": ..., "field": ..., "index": ...}`` when the body is
  not JSON or a record does not fit the schema (no record of that request is taken);
- ``503 Service Unavailable`` with ``Retry-After`` when the pipeline pushes back (the queue
  is full): nothing of that request is taken, the client should retry;
- ``GET /healthz`` answers ``200``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field, ValidationError

from streamlets.errors import SchemaError
from streamlets.library._schema_config import RecordSchemaConfig
from streamlets.ports import FromConfig, Outlet
from streamlets.schema import Schema
from streamlets.streamlet import Streamlet

__all__ = ["HttpIngress"]

log = logging.getLogger("streamlets.library.http")

_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    503: "Service Unavailable",
}


class HttpIngressConfig(RecordSchemaConfig):
    """Config of :class:`HttpIngress`."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on (0: any free)")
    queue_size: int = Field(
        1024, ge=1, description="records held while the pipeline is busy; beyond: 503"
    )
    max_body_bytes: int = Field(10_000_000, ge=1, description="largest request body accepted")


class _Rejected(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


class HttpIngress(Streamlet):
    """Takes records POSTed as JSON (one record or an array) into the pipeline.

    An unbounded source: it runs until the pipeline stops. Config: ``schema`` (the record
    type ``module:Class`` or an Avro schema), ``host``, ``port``, ``queue_size`` and
    ``max_body_bytes``. ``bound_port`` is the port it listens on once started (useful with
    ``port: 0``).
    """

    #: Marks streamlets that serve HTTP on their ``port`` config (deploy gives them a Service).
    __http_ingress__ = True

    out = Outlet(FromConfig("record_schema"), description="the records POSTed")
    Config = HttpIngressConfig
    config: HttpIngressConfig

    bound_port: int | None = None

    async def generate(self) -> AsyncIterator[Any]:
        """Serve HTTP and yield each accepted record."""
        schema = self.port_schema("out")
        queue: asyncio.Queue[Any] = asyncio.Queue(self.config.queue_size)
        server = await asyncio.start_server(
            lambda r, w: self._serve(r, w, schema, queue), self.config.host, self.config.port
        )
        self.bound_port = server.sockets[0].getsockname()[1]
        log.info("%s: listening on http://%s:%s", self.name, self.config.host, self.bound_port)
        try:
            while True:
                yield await queue.get()
        finally:
            server.close()
            await server.wait_closed()

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        schema: Schema,
        queue: asyncio.Queue[Any],
    ) -> None:
        try:
            while True:
                keep_alive = await self._one_request(reader, writer, schema, queue)
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _one_request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        schema: Schema,
        queue: asyncio.Queue[Any],
    ) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        try:
            method, target, version = request_line.decode("latin-1").split()
        except ValueError:
            await _respond(writer, 400, {"error": "malformed HTTP request line"}, close=True)
            return False
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        length_text = headers.get("content-length")
        body = b""
        if length_text is not None:
            try:
                length = int(length_text)
            except ValueError:
                await _respond(writer, 400, {"error": "Content-Length is not a number"}, True)
                return False
            if length > self.config.max_body_bytes:
                await _respond(
                    writer,
                    413,
                    {"error": f"body larger than {self.config.max_body_bytes} bytes"},
                    close=True,
                )
                return False
            body = await reader.readexactly(length)
        if method == "GET" and target.split("?")[0] in ("/healthz", "/readyz"):
            await _respond(writer, 200, {"status": "ok"}, not keep_alive)
            return keep_alive
        if method != "POST":
            await _respond(
                writer, 405, {"error": f"{method} is not supported; POST JSON"}, not keep_alive
            )
            return keep_alive
        if length_text is None:
            await _respond(writer, 411, {"error": "send a Content-Length header"}, close=True)
            return False
        try:
            records = _parse(body, schema)
            _admit(records, queue)
        except _Rejected as exc:
            await _respond(writer, exc.status, exc.body, not keep_alive)
            return keep_alive
        await _respond(writer, 202, {"accepted": len(records)}, not keep_alive)
        return keep_alive


def _parse(body: bytes, schema: Schema) -> list[Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _Rejected(400, {"error": f"the body is not JSON: {exc}"}) from None
    items = data if isinstance(data, list) else [data]
    records = []
    for index, item in enumerate(items):
        try:
            records.append(schema.validate(item))
        except SchemaError as exc:
            cause = exc.__cause__
            error: dict[str, Any] = {"error": str(exc), "index": index}
            if isinstance(cause, ValidationError) and cause.errors():
                first = cause.errors()[0]
                error["field"] = ".".join(str(p) for p in first["loc"])
                error["reason"] = first["msg"]
            raise _Rejected(400, error) from None
    return records


def _admit(records: list[Any], queue: asyncio.Queue[Any]) -> None:
    """Queue all records of a request, or none of them (503) when there is no room."""
    if queue.maxsize - queue.qsize() < len(records):
        raise _Rejected(
            503,
            {
                "error": "the pipeline is busy; retry later",
                "queued": queue.qsize(),
                "capacity": queue.maxsize,
            },
        )
    for record in records:
        queue.put_nowait(record)


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: dict[str, Any], close: bool = False
) -> None:
    payload = json.dumps(body).encode()
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if status == 503:
        head.append("Retry-After: 1")
    if close:
        head.append("Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
    await writer.drain()
