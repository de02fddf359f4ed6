"""HTTP ingress: records POSTed as JSON enter the pipeline.

An aiohttp server, started inside ``generate()`` on the running loop. ``POST`` a JSON
record or a JSON array of records to any path:

- ``202 Accepted`` with ``{"accepted": N}`` once every record of the request is queued:
  it will be delivered (see :class:`HttpIngress` for what that promise covers);
- ``400 Bad Request`` with ``{"error", "field", "index", "reason"}`` when the body is not
  JSON or a record does not fit the schema (JSON is read strictly: ``true`` is no
  integer); no record of that request is taken;
- ``413 Content Too Large`` for a body over ``max_body_bytes``, or an array of more than
  ``queue_size`` records (``limit`` in the answer names the bound: send smaller arrays);
- ``415 Unsupported Media Type`` for a ``Content-Type`` that is not JSON
  (``application/json``, with parameters, or ``application/<x>+json``; a request without
  ``Content-Type`` is read as JSON) and for a compressed body (``Content-Encoding``);
- ``408 Request Timeout`` when the body stops coming (``read_timeout``) or takes longer
  than ``body_timeout`` in all;
- ``503 Service Unavailable`` with ``Retry-After`` when the pipeline pushes back (the
  queue is full) or the ingress is stopping: nothing of that request is taken, retry;
- ``401 Unauthorized`` with ``WWW-Authenticate: Bearer`` when ``auth_token`` is set and
  the request does not carry ``Authorization: Bearer <token>`` (the health paths stay
  open, for probes);
- ``GET /healthz`` answers ``200``; ``GET /readyz`` ``200``, or ``503`` once stopping.

Requests that are not HTTP enough to reach the handler (a negative or garbled
``Content-Length``, a header line over 8190 bytes, more than 128 headers) get aiohttp's
``400`` and a closed connection, logged as one line. A connection that sends no complete
request head for ``idle_timeout`` seconds (slowloris, or an idle keep-alive) is closed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import Field, SecretStr, model_validator

from streamlets.errors import ConfigError
from streamlets.library._json_records import JsonBodyError, JsonRecords
from streamlets.library._schema_config import RecordSchemaConfig
from streamlets.ports import FromConfig, Outlet
from streamlets.streamlet import Streamlet

__all__ = ["HttpIngress", "HttpIngressConfig"]

log = logging.getLogger("streamlets.library.http")

#: aiohttp's limits on the request head, named in the docs.
MAX_HEADER_LINE_BYTES = 8190
MAX_HEADERS = 128
#: How long a refused request's unread body is drained so that the client reads the answer.
_LINGER_SECONDS = 2.0
#: How long in-flight requests get when the server closes (they are answered 503 by then).
_SHUTDOWN_SECONDS = 1.0

_END = object()  # put in the queue by on_stop(), after the last record it takes


class HttpIngressConfig(RecordSchemaConfig):
    """Config of :class:`HttpIngress`."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on (0: any free)")
    queue_size: int = Field(
        1024,
        ge=1,
        description="records held while the pipeline is busy (beyond: 503), and the most "
        "records one request may carry (beyond: 413)",
    )
    max_body_bytes: int = Field(10_000_000, ge=1, description="largest request body accepted")
    idle_timeout: float = Field(
        15.0,
        gt=0,
        description="seconds a connection may go without a complete request head (a new "
        "connection, or an idle keep-alive one) before it is closed",
    )
    read_timeout: float = Field(
        5.0, gt=0, description="seconds the body may pause before the request gets 408"
    )
    body_timeout: float = Field(
        15.0, gt=0, description="seconds to receive a whole body before the request gets 408"
    )
    auth_token: SecretStr | None = Field(
        None,
        description="when set, POSTs must carry 'Authorization: Bearer <token>' (else 401)",
    )
    tls_cert: Path | None = Field(
        None, description="PEM certificate (chain) file: serve HTTPS instead of HTTP"
    )
    tls_key: Path | None = Field(None, description="PEM private key file of tls_cert")

    @model_validator(mode="after")
    def _cert_and_key(self) -> HttpIngressConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key (PEM files)")
        return self


class _Refused(Exception):
    """A request answered with an error: ``status`` and the JSON ``body`` of the answer."""

    def __init__(self, status: int, body: dict[str, Any], *, close: bool = False) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body
        self.close = close


class HttpIngress(Streamlet):
    """Takes records POSTed as JSON (one record or an array) into the pipeline.

    An unbounded source: it runs until the pipeline stops. Config: ``schema`` (the record
    type ``module:Class`` or an Avro schema), ``host``, ``port``, ``queue_size``,
    ``max_body_bytes`` and the timeouts ``idle_timeout``, ``read_timeout`` and
    ``body_timeout``. ``bound_port`` is the port it listens on once started (useful with
    ``port: 0``). The answers are listed in the module docstring.

    What ``202`` promises: the request's records are queued in this process, and
    ``generate()`` yields every queued record before it ends. On a stop (SIGTERM, Ctrl-C)
    :meth:`on_stop` makes new requests get ``503`` and lets ``generate()`` hand over what
    the queue holds, so the runner delivers it (on Kafka: acknowledged by the broker)
    before it exits. A stop that outlasts the runner's drain bound, or a crash or SIGKILL,
    loses the records still queued: they were accepted but not yet produced.
    """

    #: Marks streamlets that serve HTTP on their ``port`` config (deploy gives them a Service).
    __http_ingress__ = True

    out = Outlet(FromConfig("record_schema"), description="the records POSTed")
    Config = HttpIngressConfig
    config: HttpIngressConfig

    bound_port: int | None = None

    _records: JsonRecords
    _token: bytes | None = None
    _queue: asyncio.Queue[Any] | None = None
    _accepting: bool = False  # takes requests: from listening until on_stop()
    _stopping: bool = False  # on_stop() was called

    def is_bounded(self) -> bool:
        """It serves requests until it is stopped: never ends by itself."""
        return False

    async def generate(self) -> AsyncIterator[Any]:
        """Serve HTTP and yield each accepted record; after :meth:`on_stop`, the queued
        records, then end."""
        config = self.config
        self._records = JsonRecords(self.port_schema("out"))
        # Unbounded, so that on_stop() can always put the end after the records; the
        # capacity (queue_size) is kept by _admit().
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queue, self._stopping = queue, False
        app = web.Application(client_max_size=config.max_body_bytes)
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            logger=_ServerLog(self.name),
            keepalive_timeout=config.idle_timeout,
            lingering_time=_LINGER_SECONDS,
            max_line_size=MAX_HEADER_LINE_BYTES,
            max_field_size=MAX_HEADER_LINE_BYTES,
            max_headers=MAX_HEADERS,
            auto_decompress=False,
            shutdown_timeout=_SHUTDOWN_SECONDS,
        )
        context = self._tls_context()
        self._token = (
            None if config.auth_token is None else config.auth_token.get_secret_value().encode()
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port, ssl_context=context)
            await site.start()
            self.bound_port = int(runner.addresses[0][1])
            self._accepting = not self._stopping  # a stop during start-up ends it at once
            scheme = "https" if context is not None else "http"
            log.info("%s: listening on %s://%s:%s", self.name, scheme, config.host, self.bound_port)
            while True:
                item = await queue.get()
                if item is _END:
                    return
                yield item
        finally:
            self._accepting = False
            left = sum(1 for item in _drain(queue) if item is not _END)
            if left:
                log.warning(
                    "%s: %d accepted records were not handed to the pipeline before it "
                    "stopped (the stop outlasted the drain bound); they are lost",
                    self.name,
                    left,
                )
            await runner.cleanup()

    def _tls_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from ``tls_cert`` and ``tls_key`` (``None``: plain HTTP)."""
        cert, key = self.config.tls_cert, self.config.tls_key
        if cert is None or key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{self.name}: cannot load the TLS certificate {cert} with the key {key}: "
                f"{exc}; give PEM files of a certificate and its private key"
            ) from exc
        return context

    def _authorized(self, request: web.Request) -> bool:
        token = self._token
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode("utf-8", "replace"), token
        )

    async def on_stop(self) -> None:
        """Stop taking requests (new ones get ``503`` with ``Retry-After``) and let
        ``generate()`` yield the records already queued, then end."""
        if self._queue is None or self._stopping:
            return
        self._stopping, self._accepting = True, False
        self._queue.put_nowait(_END)

    # -- requests ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "GET" and request.path in ("/healthz", "/readyz"):
                if request.path == "/readyz" and not self._accepting:
                    return _answer(503, {"status": "stopping"}, retry_after=True)
                return _answer(200, {"status": "ok"})
            if request.method != "POST":
                raise _Refused(
                    405, {"error": f"{request.method} is not supported here; POST JSON records"}
                )
            if not self._authorized(request):
                raise _Refused(
                    401,
                    {"error": "missing or wrong token; send 'Authorization: Bearer <token>'"},
                    close=True,
                )
            _check_content_type(request)
            body = await self._read_body(request)
            records = self._records.read(body)
            self._admit(records)
        except _Refused as refused:
            answer = _answer(
                refused.status,
                refused.body,
                close=refused.close,
                retry_after=refused.status == 503,
            )
            if refused.status == 401:
                answer.headers["WWW-Authenticate"] = 'Bearer realm="streamlets"'
            return answer
        except JsonBodyError as exc:
            return _answer(400, exc.to_json())
        return _answer(202, {"accepted": len(records)})

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, read within the timeouts and the size limit."""
        limit = self.config.max_body_bytes
        too_large = _Refused(
            413,
            {"error": f"the body is larger than {limit} bytes (max_body_bytes)", "limit": limit},
            close=True,
        )
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.config.body_timeout
        try:
            while True:
                wait = min(self.config.read_timeout, deadline - time.monotonic())
                if wait <= 0:
                    raise _Refused(
                        408,
                        {
                            "error": f"the body took longer than {self.config.body_timeout} s "
                            "(body_timeout); send it faster or in smaller requests"
                        },
                        close=True,
                    )
                try:
                    chunk = await asyncio.wait_for(request.content.readany(), wait)
                except TimeoutError:
                    if time.monotonic() < deadline:
                        raise _Refused(
                            408,
                            {
                                "error": f"no byte of the body came for {self.config.read_timeout}"
                                " s (read_timeout); is Content-Length larger than the body?"
                            },
                            close=True,
                        ) from None
                    continue  # the deadline passed: answered above
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
        except (HttpProcessingError, web.RequestPayloadError, ConnectionError) as exc:
            # A malformed chunked body, or a client that went away: nothing is taken.
            raise _Refused(400, {"error": f"cannot read the body: {exc}"}, close=True) from None

    def _admit(self, records: list[Any]) -> None:
        """Queue all records of a request, or none of them."""
        capacity = self.config.queue_size
        if len(records) > capacity:
            raise _Refused(
                413,
                {
                    "error": f"{len(records)} records in one request; at most {capacity} "
                    "(queue_size) are taken at once: send them in smaller arrays",
                    "limit": capacity,
                },
            )
        queue = self._queue
        if queue is None or not self._accepting:
            raise _Refused(
                503,
                {"error": "the ingress is stopping; retry (another replica may take it)"},
                close=True,
            )
        if capacity - queue.qsize() < len(records):
            raise _Refused(
                503,
                {
                    "error": "the pipeline is busy; retry later",
                    "queued": queue.qsize(),
                    "capacity": capacity,
                },
            )
        for record in records:
            queue.put_nowait(record)


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def _check_content_type(request: web.Request) -> None:
    """415 unless the body is uncompressed JSON (a request without Content-Type is)."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise _Refused(
            415,
            {"error": f"Content-Encoding {encoding!r} is not accepted; send the JSON uncompressed"},
            close=True,
        )
    if "Content-Type" not in request.headers:
        return
    mime = request.content_type  # lower case, without parameters
    if mime != "application/json" and not (
        mime.startswith("application/") and mime.endswith("+json")
    ):
        raise _Refused(
            415,
            {"error": f"Content-Type {mime!r} is not JSON; send application/json"},
            close=True,
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8", "us-ascii"):
        raise _Refused(
            415, {"error": f"charset {charset!r}: JSON is read as UTF-8; send it so"}, close=True
        )


def _answer(
    status: int, body: dict[str, Any], *, close: bool = False, retry_after: bool = False
) -> web.Response:
    response = web.json_response(body, status=status)
    if retry_after:
        response.headers["Retry-After"] = "1"
    if close:
        response.force_close()
    return response


class _ServerLog(logging.Logger):
    """aiohttp's server log for one ingress. A request too malformed to reach the handler
    (the client's fault; aiohttp answers it 400) is one INFO line instead of an ERROR with a
    traceback; anything else goes to the ``aiohttp.server`` logger as aiohttp wrote it."""

    def __init__(self, streamlet: str) -> None:
        super().__init__("aiohttp.server")
        self.streamlet = streamlet
        self.target = logging.getLogger("aiohttp.server")

    def isEnabledFor(self, level: int) -> bool:
        return self.target.isEnabledFor(level) or log.isEnabledFor(logging.INFO)

    def handle(self, record: logging.LogRecord) -> None:
        """Pass ``record`` on: a malformed request's as one line on the ingress's logger."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = (exc.message or type(exc).__name__).strip().splitlines()[0].rstrip(":")
            # aiohttp logs "Error handling request from %s" with the client's address.
            args = record.args if isinstance(record.args, tuple) else ()
            client = f" from {args[0]}" if len(args) == 1 else ""
            log.info(
                "%s: answered %s to a malformed request%s: %s",
                self.streamlet,
                exc.code,
                client,
                reason[:200],
            )
            return
        if self.target.isEnabledFor(record.levelno):
            self.target.handle(record)
