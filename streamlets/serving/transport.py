"""The HTTP transports behind the protocols: an interface and two implementations.

Protocols build requests and read responses; a :class:`Transport` only moves bytes. Tests
swap the transport (or point it at an in-process server), never the protocol logic, and a
gRPC protocol can later bring its own transport.

:class:`StreamsTransport` (the default) is a small HTTP/1.1 client on asyncio streams with
one kept-alive connection per request in flight. It exists because httpx's async pool
costs more per request the more requests are in flight (httpx issue 3215): measured by
``benchmarks/model_serving.py`` against MLServer, unbatched httpx requests/s *fell* from
1 to 32 in flight while this client's rose, and batched scoring ran about twice as fast
on it. :class:`HttpxTransport` remains for what it does better (proxies, HTTP/2,
authentication flows): ``transport: httpx`` in the config.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx

from streamlets.serving.errors import ResponseTooLarge, TransportError

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AiohttpTransport",
    "HttpResponse",
    "HttpxTransport",
    "StreamsTransport",
    "Transport",
]

#: The largest answer a transport reads by default (larger ones: ResponseTooLarge).
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP answer: status code, body bytes and content type."""

    status: int
    body: bytes
    content_type: str = ""

    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")


class Transport(Protocol):
    """Sends one HTTP request and returns the answer; raises :class:`TransportError`
    when the server cannot be reached, the connection breaks or ``timeout`` passes."""

    async def request(
        self, method: str, url: str, body: bytes | None = None, *, timeout: float
    ) -> HttpResponse:
        """Send ``method url`` with a JSON ``body`` (when given)."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections."""
        ...


class AiohttpTransport:
    """A pooled :class:`aiohttp.ClientSession`: up to ``connections`` connections, kept
    alive, one request at a time each (more requests wait for a free connection).

    ``headers`` go with every request (e.g. ``Authorization`` for a model server behind a
    gateway). An answer over ``max_response_bytes`` raises :class:`ResponseTooLarge`
    without being read whole; bodies are never decompressed (the client asks for none).
    The session is made on first use, on the running loop.
    """

    def __init__(
        self,
        connections: int,
        *,
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.connections = connections
        self.headers = dict(headers or {})
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.connections, limit_per_host=0, keepalive_timeout=30.0
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers=self.headers,
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
            )
            self._session = session
        return session

    async def request(
        self, method: str, url: str, body: bytes | None = None, *, timeout: float
    ) -> HttpResponse:
        """Send one request; connection failures and timeouts become :class:`TransportError`."""
        session = self._session_now()
        limit = self.max_response_bytes
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=_JSON if body is not None else None,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                length = response.content_length
                if length is not None and length > limit:
                    raise _too_large(method, url, limit, length)
                if length is not None:
                    data = await response.read()
                else:
                    chunks, size = [], 0
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > limit:
                            raise _too_large(method, url, limit, None)
                        chunks.append(chunk)
                    data = b"".join(chunks)
                return HttpResponse(response.status, data, response.headers.get("Content-Type", ""))
        except TimeoutError as exc:
            raise TransportError(
                f"{method} {url}: no answer within {timeout:g} s", timeout=True
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise TransportError(f"{method} {url}: not a valid URL") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _too_large(method: str, url: str, limit: int, length: int | None) -> ResponseTooLarge:
    size = f"{length} bytes" if length is not None else "more"
    return ResponseTooLarge(
        f"{method} {url}: the answer has {size}, over max_response_bytes ({limit}); "
        "send smaller batches or raise max_response_bytes"
    )


class HttpxTransport:
    """A pooled :class:`httpx.AsyncClient`.

    The pool holds exactly as many connections as requests may be in flight
    (``connections``), all kept alive: with the default limits a burst beyond the
    keep-alive count opens and closes a connection per request. Connection reuse scans
    the pool, which costs more per request as the pool grows (httpx issue 3215); batching
    keeps the request rate low enough that this does not limit throughput (measured by
    ``benchmarks/model_serving.py``).
    """

    def __init__(
        self,
        connections: int,
        *,
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
        )
        self.max_response_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            limits=limits, timeout=None, trust_env=False, headers=dict(headers or {})
        )

    async def request(
        self, method: str, url: str, body: bytes | None = None, *, timeout: float
    ) -> HttpResponse:
        """Send one request; connection failures and timeouts become :class:`TransportError`."""
        headers = {"content-type": "application/json"} if body is not None else None
        limit = self.max_response_bytes
        try:
            request = self._client.build_request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(timeout, pool=None),
            )
            response = await self._client.send(request, stream=True)
            try:
                length = response.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > limit:
                    raise _too_large(method, url, limit, int(length))
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(method, url, limit, None)
                    chunks.append(chunk)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"{method} {url}: no answer within {timeout:g} s", timeout=True
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        return HttpResponse(
            response.status_code, b"".join(chunks), response.headers.get("content-type", "")
        )

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.aclose()


class _Connection:
    """One HTTP/1.1 connection, used by one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False

    def close(self) -> None:
        self.writer.close()


class _TooLarge(Exception):
    """An answer over the transport's size limit (``length``: its Content-Length, if any)."""

    def __init__(self, length: int | None) -> None:
        super().__init__(length)
        self.length = length


class _ConnectionLost(Exception):
    """A kept-alive connection was closed by the server before it answered."""


class StreamsTransport:
    """HTTP/1.1 over asyncio streams, keeping up to ``connections`` connections alive.

    Plain ``http://`` and ``https://`` (default TLS verification). Bodies are sent with
    ``Content-Length``; answers may use ``Content-Length``, chunked encoding or close the
    connection. A request that finds its kept-alive connection closed by the server is
    sent once more on a new connection (inference requests have no side effects).
    ``headers`` go with every request; an answer over ``max_response_bytes`` raises
    :class:`ResponseTooLarge` (and closes its connection) without being read whole.
    """

    def __init__(
        self,
        connections: int,
        *,
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.connections = connections
        self.max_response_bytes = max_response_bytes
        self._extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    def _key(self, url: str) -> tuple[tuple[str, str, int], str]:
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        if scheme not in ("http", "https"):
            raise TransportError(f"{url}: only http:// and https:// URLs are supported")
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        return (scheme, parts.hostname or "", port), target

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=1 << 20)
        return _Connection(reader, writer)

    async def request(
        self, method: str, url: str, body: bytes | None = None, *, timeout: float
    ) -> HttpResponse:
        """Send one request; connection failures and timeouts become :class:`TransportError`."""
        key, target = self._key(url)
        for attempt in (0, 1):
            idle = self._idle.setdefault(key, [])
            connection = idle.pop() if idle and attempt == 0 else None
            try:
                async with asyncio.timeout(timeout):
                    if connection is None:
                        connection = await self._connect(key)
                    response, keep = await self._exchange(connection, method, key, target, body)
            except _ConnectionLost as exc:
                if connection is not None:
                    connection.close()
                if attempt == 0 and connection is not None and connection.used:
                    continue  # the server closed an idle connection: try a fresh one
                raise TransportError(f"{method} {url}: the server closed the connection") from exc
            except TimeoutError as exc:
                if connection is not None:
                    connection.close()
                raise TransportError(
                    f"{method} {url}: no answer within {timeout:g} s", timeout=True
                ) from exc
            except _TooLarge as exc:
                if connection is not None:
                    connection.close()
                raise _too_large(method, url, self.max_response_bytes, exc.length) from None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if connection is not None:
                    connection.close()
                raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            connection.used = True
            if keep and len(idle) < self.connections:
                idle.append(connection)
            else:
                connection.close()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self,
        connection: _Connection,
        method: str,
        key: tuple[str, str, int],
        target: str,
        body: bytes | None,
    ) -> tuple[HttpResponse, bool]:
        scheme, host, port = key
        if ":" in host:  # an IPv6 address: in brackets (RFC 9110, section 7.2)
            host = f"[{host}]"
        if port != (443 if scheme == "https" else 80):
            host = f"{host}:{port}"
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{self._extra}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        connection.writer.write((head + "\r\n").encode("latin-1") + (body or b""))
        reader = connection.reader
        try:
            await connection.writer.drain()
            status_line = await reader.readline()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _ConnectionLost from exc
        if not status_line:
            raise _ConnectionLost
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(parts[1])
        length: int | None = None
        chunked = False
        keep = parts[0] == b"HTTP/1.1"
        content_type = ""
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = value.lower() != b"close"
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        limit = self.max_response_bytes
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            data = b""
        elif chunked:
            pieces = []
            total = 0
            while True:
                size = int((await reader.readline()).split(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError(f"negative chunk size {size}")
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    raise _TooLarge(None)
                pieces.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(pieces)
        elif length is not None:
            if length < 0:
                raise ValueError(f"negative Content-Length {length}")
            if length > limit:
                raise _TooLarge(length)
            data = await reader.readexactly(length)
        else:
            pieces, total = [], 0
            while chunk := await reader.read(1 << 16):  # to the end of the connection
                total += len(chunk)
                if total > limit:
                    raise _TooLarge(None)
                pieces.append(chunk)
            data = b"".join(pieces)
            keep = False
        return HttpResponse(status, data, content_type), keep

    async def aclose(self) -> None:
        """Close every kept-alive connection."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
