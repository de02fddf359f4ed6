"""HTTP sink: POSTs each batch of records as a JSON array to a URL.

The HTTP client is the model-serving transport on aiohttp
(:class:`streamlets.serving.transport.AiohttpTransport`): HTTP clients live in
``streamlets/serving/`` only (DESIGN §2), and this sink uses that one through its
:class:`~streamlets.serving.transport.Transport` interface.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from streamlets.library.files import _json_default
from streamlets.library.sinks import (
    BatchSink,
    BatchSinkConfig,
    SinkError,
    SinkRecordError,
    SinkUnavailable,
)
from streamlets.serving.errors import ResponseTooLarge, TransportError
from streamlets.serving.transport import AiohttpTransport, HttpResponse, Transport

__all__ = ["HttpSink", "HttpSinkConfig", "HttpSinkError"]

#: Answers that mean "not now": the batch waits and is sent again, without a limit.
_UNAVAILABLE = frozenset({408, 425, 429, 502, 503, 504})


class HttpSinkError(SinkError):
    """The server answered a batch with an error status (``status``)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class HttpSinkConfig(BatchSinkConfig):
    """Config of :class:`HttpSink`."""

    url: str = Field(description="where each batch is POSTed (http:// or https://)")
    auth_token: SecretStr | None = Field(
        None, description="bearer token sent as 'Authorization: Bearer ...' (secret)"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="more headers sent with every request"
    )
    timeout_s: float = Field(30.0, gt=0, description="seconds to wait for an answer")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class HttpSink(BatchSink):
    """POSTs every batch of records it receives as one JSON array to ``url``.

    Records are written as JSON objects (a pydantic model by its field aliases, bytes as
    text). The answer decides (see :mod:`streamlets.library.sinks`): any ``2xx`` means
    written; ``408``, ``425``, ``429``, ``502``, ``503``, ``504`` and a server out of reach
    mean unavailable: the batch waits and is sent again, for as long as it takes; another
    ``5xx`` is retried ``retries`` times; a ``4xx`` means the data: the batch's records are
    sent one by one (arrays of one) and those the server still refuses go to the error
    policy with its answer. At-least-once: after a restart the records after the last
    commit are sent again, so the receiver should be idempotent (give records an id).
    """

    Config = HttpSinkConfig
    config: HttpSinkConfig

    _transport: Transport | None = None

    def make_transport(self) -> Transport:
        """The HTTP client (override to swap it, e.g. in tests)."""
        headers = dict(self.config.headers)
        if self.config.auth_token is not None:
            headers["Authorization"] = f"Bearer {self.config.auth_token.get_secret_value()}"
        return AiohttpTransport(1, headers=headers, max_response_bytes=1 << 20)

    def destination(self) -> str:
        """The URL without its query (which may hold credentials)."""
        return self.config.url.split("?", 1)[0]

    async def write_batch(self, records: Sequence[Any]) -> None:
        """POST ``records`` as one JSON array."""
        try:
            body = json.dumps(
                [_json_of(record) for record in records], default=_json_default
            ).encode()
        except (TypeError, ValueError) as exc:
            raise SinkRecordError(f"cannot write the record as JSON: {exc}") from exc
        if self._transport is None:
            self._transport = self.make_transport()
        try:
            response = await self._transport.request(
                "POST", self.config.url, body, timeout=self.config.timeout_s
            )
        except (TransportError, ResponseTooLarge) as exc:
            raise SinkUnavailable(str(exc)) from exc
        if 200 <= response.status < 300:
            return
        message = f"{self.destination()} answered HTTP {response.status}: {_said(response)}"
        if response.status in _UNAVAILABLE:
            raise SinkUnavailable(message)
        if 400 <= response.status < 500:
            raise SinkRecordError(message)
        raise HttpSinkError(message, status=response.status)

    async def teardown(self) -> None:
        """Close the connections."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()


def _json_of(record: Any) -> Any:
    if isinstance(record, BaseModel):
        return record.model_dump(mode="json", by_alias=True)
    return record


def _said(response: HttpResponse) -> str:
    """The start of the server's answer, as one line."""
    text = " ".join(response.text().split())
    return text[:300] or "(no body)"
