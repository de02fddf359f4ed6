"""The HTTP transport behind the protocols: an interface and its httpx implementation.

Protocols build requests and read responses; a :class:`Transport` only moves bytes. Tests
swap the transport (or point it at an in-process server), never the protocol logic, and a
gRPC protocol can later bring its own transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from streamlets.serving.errors import TransportError

__all__ = ["HttpResponse", "HttpxTransport", "Transport"]


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


class HttpxTransport:
    """A pooled :class:`httpx.AsyncClient`.

    The pool holds exactly as many connections as requests may be in flight
    (``connections``), all kept alive: with the default limits a burst beyond the
    keep-alive count opens and closes a connection per request. Connection reuse scans
    the pool, which costs more per request as the pool grows (httpx issue 3215); batching
    keeps the request rate low enough that this does not limit throughput (measured by
    ``benchmarks/model_serving.py``).
    """

    def __init__(self, connections: int) -> None:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
        )
        self._client = httpx.AsyncClient(limits=limits, timeout=None, trust_env=False)

    async def request(
        self, method: str, url: str, body: bytes | None = None, *, timeout: float
    ) -> HttpResponse:
        """Send one request; connection failures and timeouts become :class:`TransportError`."""
        headers = {"content-type": "application/json"} if body is not None else None
        try:
            response = await self._client.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(timeout, pool=None),
            )
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"{method} {url}: no answer within {timeout:g} s", timeout=True
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        return HttpResponse(
            response.status_code, response.content, response.headers.get("content-type", "")
        )

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.aclose()
