"""The model-serving HTTP transports (streams, aiohttp, httpx) on a raw loopback server:
headers they send (bearer token, Host for IPv6), the response-size cap, and what the
streamlet does with an answer over the cap."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from runner.testkit import run_streamlet
from streamlets.errors import ConfigError
from streamlets.serving import StreamsTransport
from streamlets.serving.errors import ResponseTooLarge
from streamlets.serving.transport import AiohttpTransport, HttpxTransport, Transport
from tests.streamlets.test_serving import Score, check_scored, pairs

KINDS: dict[str, Callable[..., Transport]] = {
    "streams": StreamsTransport,
    "aiohttp": AiohttpTransport,
    "httpx": HttpxTransport,
}

Answer = Callable[[bytes, bytes], bytes]


async def _serve(
    answer: Answer, host: str, scenario: Callable[[int, list[bytes]], Awaitable[Any]]
) -> tuple[Any, list[bytes]]:
    """Run ``scenario(port, heads)`` against a server that answers each request head with
    ``answer(head)``; ``heads`` collects the request heads."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = b""
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    head += line
                if not head:
                    return
                heads.append(head)
                length = next(
                    (
                        int(h.split(b":")[1])
                        for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                data = answer(head, body)
                writer.write(data)
                await writer.drain()
                if b"\r\nConnection: close\r\n" in data.split(b"\r\n\r\n")[0] + b"\r\n":
                    return  # the answer ends at the end of the connection
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await scenario(port, heads), heads
    finally:
        server.close()


def _ok(body: bytes = b"{}") -> Answer:
    return lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


@pytest.mark.parametrize("kind", KINDS)
def test_every_request_carries_the_configured_headers(kind: str) -> None:
    async def scenario(port: int, heads: list[bytes]) -> int:
        transport = KINDS[kind](2, headers={"Authorization": "Bearer s3cret"})
        try:
            await transport.request("GET", f"http://127.0.0.1:{port}/ready", timeout=5)
            response = await transport.request(
                "POST", f"http://127.0.0.1:{port}/infer", b"{}", timeout=5
            )
            return response.status
        finally:
            await transport.aclose()

    status, heads = asyncio.run(_serve(_ok(), "127.0.0.1", scenario))
    assert status == 200 and len(heads) == 2
    assert all(_header(h, b"authorization") == b"Bearer s3cret" for h in heads)


def _ipv6() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("kind", KINDS)
def test_the_host_header_of_an_ipv6_address_is_in_brackets(kind: str) -> None:
    async def scenario(port: int, heads: list[bytes]) -> int:
        transport = KINDS[kind](1)
        try:
            return (await transport.request("GET", f"http://[::1]:{port}/x", timeout=5)).status
        finally:
            await transport.aclose()

    status, heads = asyncio.run(_serve(_ok(), "::1", scenario))
    port = int(heads[0].split(b"]:")[-1].split(b"\r\n")[0])
    assert status == 200 and _header(heads[0], b"host") == b"[::1]:%d" % port


BIG = b"x" * 5000
FRAMINGS = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BIG), BIG),
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"3e8\r\n" + BIG[:1000] + b"\r\n" for _ in range(5))
    + b"0\r\n\r\n",
    "until-eof": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BIG,
}


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_an_answer_over_the_cap_is_refused_without_being_read_whole(
    kind: str, framing: str
) -> None:
    async def scenario(port: int, heads: list[bytes]) -> list[Any]:
        outcomes: list[Any] = []
        for cap in (4096, 8192):  # over the cap, then within it
            transport = KINDS[kind](1, max_response_bytes=cap)
            try:
                response = await transport.request("GET", f"http://127.0.0.1:{port}/", timeout=5)
                outcomes.append(len(response.body))
            except ResponseTooLarge as exc:
                outcomes.append(str(exc))
            finally:
                await transport.aclose()
        return outcomes

    answer = FRAMINGS[framing]
    (refused, read), _ = asyncio.run(_serve(lambda head, body: answer, "127.0.0.1", scenario))
    assert "over max_response_bytes (4096)" in refused and "send smaller batches" in refused
    assert read == len(BIG)


def test_the_streamlet_sends_its_token_and_splits_a_batch_whose_answer_is_too_large() -> None:
    """V1 answers of ~600 bytes a row: over a 4 KiB cap from 7 rows on, so a batch of 16
    is split down to halves that fit; without the token the server answers 401."""
    rows_seen: list[int] = []

    def answer(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"GET"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        if _header(head, b"authorization") != b"Bearer t0ken":
            return b'HTTP/1.1 401 No\r\nContent-Length: 19\r\n\r\n{"error": "no auth"}'
        rows = json.loads(body)["instances"]
        rows_seen.append(len(rows))
        data = json.dumps(
            {"predictions": [r[0] + r[1] for r in rows], "pad": "x" * 600 * len(rows)}
        )
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data.encode())

    async def scenario(port: int, heads: list[bytes]) -> Any:
        config = {
            "url": f"http://127.0.0.1:{port}",
            "model": "m",
            "auth_token": "t0ken",
            "batch_size": 16,
            "max_response_bytes": 4096,
            "transport": "aiohttp",
        }
        return await asyncio.to_thread(run_streamlet, Score, {"records": pairs(16)}, config=config)

    result, _ = asyncio.run(_serve(answer, "127.0.0.1", scenario))
    assert not result.dead_letters
    check_scored(result.outputs["results"], list(range(16)))
    assert sorted(rows_seen) == [4, 4, 4, 4, 8, 8, 16]  # 16 and 8 were too large, halved


def test_an_unknown_transport_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="transport"):
        Score({"url": "http://x", "model": "m", "transport": "curl"})
