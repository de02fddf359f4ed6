"""HttpIngress under bad and hostile requests, in-process: each gets a 4xx within a bound
(or its connection is closed), and the log holds no traceback.

Requests a client library would refuse to send go over raw sockets. The ingress runs on
an event loop in a thread of its own, so that a test can hold its records back (to fill
the queue) and read what aiohttp and the ingress logged (caplog).
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import http.client
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from streamlets.library import HttpIngress

BOUND = 10.0  # seconds within which every bad request is answered
VALID = b'{"id": 1, "name": "a"}'  # a body that fits: a 400 is about the rest of the request


class Row(BaseModel):
    id: int
    name: str


class Kind(enum.Enum):
    A = "a"
    B = "b"


class Event(BaseModel):
    at: datetime.datetime
    ref: uuid.UUID
    kind: Kind


ROW_AVRO = {
    "type": "record",
    "name": "Row",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}


@dataclass
class Served:
    """An HttpIngress serving on a loop in a thread; ``taken`` holds what generate() yielded."""

    ingress: HttpIngress
    loop: asyncio.AbstractEventLoop
    taken: list[Any] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)  # set: take nothing more

    @property
    def port(self) -> int:
        assert self.ingress.bound_port is not None
        return self.ingress.bound_port


@pytest.fixture
def no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Fails the test if anything logged a traceback (at any level)."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    for record in records:
        assert record.exc_info is None and record.exc_text is None, (
            f"{record.name} logged a traceback: {record.getMessage()}"
        )
        assert "Traceback" not in record.getMessage(), record.getMessage()


@pytest.fixture
def serve(no_traceback: pytest.LogCaptureFixture) -> Iterator[Any]:
    """``serve(**config)`` starts an HttpIngress (schema Row unless given) on a free port."""
    started: list[tuple[Served, threading.Thread, list[BaseException | None]]] = []

    def start(**config: Any) -> Served:
        ingress = HttpIngress({"schema": Row, "port": 0, **config}, name="ingress")
        ready = threading.Event()
        box: list[Served] = []

        async def pump(served: Served) -> None:
            async for record in ingress.generate():
                served.taken.append(record)
                while served.hold.is_set():
                    await asyncio.sleep(0.01)

        async def main() -> None:
            served = Served(ingress, asyncio.get_running_loop())
            box.append(served)
            task = asyncio.ensure_future(pump(served))
            while ingress.bound_port is None and not task.done():
                await asyncio.sleep(0.01)
            ready.set()
            await task

        done: list[BaseException | None] = []

        def run() -> None:
            # As the runners do: asyncio.run() also finishes the tasks aiohttp leaves.
            try:
                asyncio.run(main())
                done.append(None)
            except BaseException as exc:  # reported by the fixture's teardown
                done.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert ready.wait(10), "the ingress did not start listening"
        started.append((box[0], thread, done))
        return box[0]

    yield start
    for served, thread, done in started:
        served.hold.clear()
        if thread.is_alive():  # not ended by the test already
            asyncio.run_coroutine_threadsafe(served.ingress.on_stop(), served.loop).result(5)
        thread.join(15)
        assert not thread.is_alive(), "generate() did not end after on_stop()"
        assert done == [None], done


# -- clients ---------------------------------------------------------------------------------


@dataclass
class Answer:
    status_line: str
    body: bytes
    seconds: float

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def json(self) -> Any:
        return json.loads(self.body)


def _read_answer(sock: socket.socket, data: bytes = b"") -> bytes:
    """Read one HTTP answer (head and Content-Length body), or until the server closes."""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) >= length:
                return data
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


def exchange(port: int, *parts: bytes, pause: float = 0.0, timeout: float = 30.0) -> Answer:
    """Send ``parts`` over a raw socket (``pause`` s apart) and read the answer.

    Sending stops as soon as the server answers or closes (it may answer a request before
    the client has sent all of it).
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        early = b""
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.setblocking(False)
            try:
                early = sock.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            finally:
                sock.settimeout(timeout)
            if early:
                break
            if pause:
                time.sleep(pause)
        data = _read_answer(sock, early)
    seconds = time.monotonic() - started
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return Answer(status_line.decode("latin-1"), body, seconds)


def request(
    port: int,
    body: bytes | Any,
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str = "/",
) -> tuple[int, dict[str, str], Any]:
    """A well-formed request through http.client: status, headers and the JSON answer."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=BOUND)
    try:
        conn.request(method, path, payload, {"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        answer = response.read()
        return response.status, dict(response.getheaders()), json.loads(answer)
    finally:
        conn.close()


def head(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join(["POST / HTTP/1.1", "Host: localhost", *lines]) + "\r\n\r\n").encode(
        "latin-1"
    ) + body


# -- the contract ----------------------------------------------------------------------------


def test_accepts_one_record_or_an_array_and_answers_health(serve: Any) -> None:
    served = serve()
    assert request(served.port, {"id": 1, "name": "a"})[::2] == (202, {"accepted": 1})
    rows = [{"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    assert request(served.port, rows)[::2] == (202, {"accepted": 2})
    status, _, body = request(served.port, b"", method="GET", path="/healthz")
    assert (status, body) == (200, {"status": "ok"})
    assert request(served.port, b"", method="GET", path="/readyz")[0] == 200
    status, _, body = request(served.port, b"", method="GET", path="/")
    assert status == 405 and "POST" in body["error"]
    deadline = time.monotonic() + 5
    while len(served.taken) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.taken == [Row(id=1, name="a"), Row(id=2, name="b"), Row(id=3, name="c")]


def test_a_full_queue_answers_503_with_retry_after_and_takes_nothing(serve: Any) -> None:
    served = serve(queue_size=4)
    served.hold.set()  # the pipeline takes one record, then stalls
    assert request(served.port, [{"id": i, "name": "x"} for i in range(4)])[0] == 202
    status, headers, body = request(served.port, [{"id": 9, "name": "y"}] * 2)
    assert status == 503 and headers["Retry-After"] == "1" and "retry" in body["error"]
    served.hold.clear()
    deadline = time.monotonic() + 5
    while len(served.taken) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.id for r in served.taken] == [0, 1, 2, 3]  # nothing of the 503 request


def test_a_body_over_max_body_bytes_gets_413(serve: Any) -> None:
    served = serve(max_body_bytes=100)
    status, _, body = request(served.port, [{"id": i, "name": "x" * 10} for i in range(10)])
    assert status == 413 and body["limit"] == 100 and "max_body_bytes" in body["error"]


def test_on_stop_answers_503_and_hands_over_every_queued_record_before_ending(
    serve: Any,
) -> None:
    served = serve()
    served.hold.set()  # the pipeline takes one record, then stalls with the rest queued
    for n in range(5):
        assert request(served.port, [{"id": n * 10 + i, "name": "x"} for i in range(10)])[0] == 202
    asyncio.run_coroutine_threadsafe(served.ingress.on_stop(), served.loop).result(5)
    status, headers, body = request(served.port, {"id": 99, "name": "late"})
    assert status == 503 and headers["Retry-After"] == "1" and "stopping" in body["error"]
    assert headers["Connection"] == "close"  # reconnect: perhaps to another replica
    assert request(served.port, b"", method="GET", path="/readyz")[0] == 503
    assert request(served.port, b"", method="GET", path="/healthz")[0] == 200
    served.hold.clear()
    deadline = time.monotonic() + 5
    while served.ingress.bound_port is not None and time.monotonic() < deadline:
        try:
            request(served.port, b"", method="GET", path="/healthz")
        except OSError:
            break  # generate() ended and closed the server
        time.sleep(0.05)
    assert [r.id for r in served.taken] == list(range(50))  # every accepted record, in order


# -- hostile and malformed requests ------------------------------------------------------------


def test_a_negative_content_length_gets_400(serve: Any) -> None:
    answer = exchange(serve().port, head("Content-Length: -1", body=VALID))
    assert answer.status == 400, answer
    assert b"Content-Length" in answer.body
    assert answer.seconds < BOUND


def test_a_100_kib_header_line_gets_400(serve: Any) -> None:
    line = "X-Padding: " + "a" * 100 * 1024
    answer = exchange(serve().port, head(line, f"Content-Length: {len(VALID)}", body=VALID))
    assert answer.status == 400, answer
    assert b"8190 bytes" in answer.body
    assert answer.seconds < BOUND


def test_200_000_headers_are_refused_with_400(serve: Any) -> None:
    port = serve().port
    start = b"POST / HTTP/1.1\r\nHost: localhost\r\n"
    blocks = [
        b"".join(b"X-H%06d: %s\r\n" % (i, b"v" * 40) for i in range(j, j + 2_000))
        for j in range(0, 200_000, 2_000)
    ]
    assert sum(map(len, blocks)) >= 10_000_000  # 10 MB of headers
    answer = exchange(port, start, *blocks, b"Content-Length: %d\r\n\r\n%s" % (len(VALID), VALID))
    assert answer.status == 400, answer
    assert b"Too many headers" in answer.body
    assert answer.seconds < BOUND


def test_json_nested_100_000_deep_gets_400(serve: Any) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    answer = exchange(
        serve().port,
        head("Content-Type: application/json", f"Content-Length: {len(body)}", body=body),
    )
    assert answer.status == 400, answer
    assert "not JSON" in answer.json()["error"]
    assert answer.seconds < BOUND


def test_a_content_length_larger_than_the_body_gets_408(serve: Any) -> None:
    body = b'{"id": 1, "name": "a"}'
    served = serve()
    answer = exchange(
        served.port, head("Content-Type: application/json", "Content-Length: 1000", body=body)
    )
    assert answer.status == 408, answer
    assert "Content-Length" in answer.json()["error"]
    assert answer.seconds < BOUND
    assert served.taken == []


def test_slowloris_connections_are_closed_within_30_s(serve: Any) -> None:
    """Three at once: one that sends nothing, one that trickles its head, one its body."""
    port = serve().port
    results: dict[str, tuple[bytes, float]] = {}

    def slow(name: str, first: bytes, drip: bytes) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=40) as sock:
            data = b""
            try:
                if first:
                    sock.sendall(first)
                while time.monotonic() - started < 40:
                    sock.settimeout(1.0)
                    try:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break  # closed by the server
                        data += chunk
                        continue
                    except TimeoutError:
                        pass
                    if drip:
                        sock.sendall(drip)
            except (BrokenPipeError, ConnectionResetError):
                pass
        results[name] = (data, time.monotonic() - started)

    cases = {
        "silent": (b"", b""),
        "head": (b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", b"a"),
        "body": (head("Content-Type: application/json", "Content-Length: 100000"), b" "),
    }
    threads = [threading.Thread(target=slow, args=(n, *c)) for n, c in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for name, (_, seconds) in results.items():
        assert seconds < 30, f"{name}: open for {seconds:.1f} s"
    assert set(results) == set(cases)
    # The one that reached its body is told why (the head of a request is never answered).
    assert results["body"][0].startswith(b"HTTP/1.1 408"), results["body"][0][:100]


def test_an_array_larger_than_queue_size_gets_413_naming_the_limit(serve: Any) -> None:
    served = serve(queue_size=8)
    status, _, body = request(served.port, [{"id": i, "name": "x"} for i in range(9)])
    assert status == 413 and body["limit"] == 8 and "queue_size" in body["error"]
    assert request(served.port, [{"id": i, "name": "x"} for i in range(8)])[0] == 202


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=latin-1", 415),
        ("application/json", 202),
        ("application/json; charset=utf-8", 202),
        ("Application/JSON;charset=UTF-8", 202),
        ("application/vnd.rows+json", 202),
        (None, 202),  # no Content-Type: read as JSON
    ],
)
def test_content_type(serve: Any, content_type: str | None, status: int) -> None:
    body = b'{"id": 1, "name": "a"}'
    lines = [f"Content-Length: {len(body)}", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    answer = exchange(serve().port, head(*lines, body=body))
    assert answer.status == status, answer
    if status == 415:
        assert "JSON" in answer.json()["error"]


def test_a_compressed_body_gets_415(serve: Any) -> None:
    status, _, body = request(serve().port, b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    assert status == 415 and "uncompressed" in body["error"]


@pytest.mark.parametrize("schema", [Row, ROW_AVRO], ids=["pydantic", "avro"])
@pytest.mark.parametrize(
    "value", [True, "1", 1.0, 1.5, None], ids=["bool", "string", "float", "fraction", "null"]
)
def test_json_is_read_strictly(serve: Any, schema: Any, value: Any) -> None:
    served = serve(schema=schema)
    status, _, body = request(served.port, [{"id": 1, "name": "a"}, {"id": value, "name": "b"}])
    assert status == 400, body
    assert body["index"] == 1 and body["field"] == "id", body
    assert served.taken == []


@pytest.mark.parametrize("schema", [Row, ROW_AVRO], ids=["pydantic", "avro"])
def test_a_body_that_is_not_json_gets_400(serve: Any, schema: Any) -> None:
    status, _, body = request(serve(schema=schema).port, b"{not json")
    assert status == 400 and "not JSON" in body["error"] and body["index"] is None


def test_strict_json_still_reads_what_json_can_only_spell_as_strings(serve: Any) -> None:
    """Datetimes, UUIDs and enums come as strings in JSON; strict mode takes them."""
    served = serve(schema=Event)
    record = {"at": "2024-05-01T12:00:00Z", "ref": "12345678-1234-5678-1234-567812345678"}
    assert request(served.port, {**record, "kind": "b"})[0] == 202
    status, _, body = request(served.port, {**record, "kind": "z"})
    assert status == 400 and body["field"] == "kind"


def test_mutated_requests_get_an_answer_below_500_or_a_closed_connection(serve: Any) -> None:
    """A bounded fuzz: 300 mutations of a valid request (bytes flipped, inserted, cut,
    lines repeated), each answered 2xx/4xx or closed within a few seconds."""
    served = serve(read_timeout=0.5, body_timeout=1.0, idle_timeout=1.0)
    rng = random.Random(12)
    body = json.dumps([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]).encode()
    valid = head("Content-Type: application/json", f"Content-Length: {len(body)}", body=body)
    statuses: set[int] = set()
    for _ in range(300):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(["flip", "insert", "cut", "repeat"])
            at = rng.randrange(len(data))
            if kind == "flip":
                data[at] = rng.randrange(256)
            elif kind == "insert":
                data[at:at] = rng.choice([b"\r\n", b":", b" ", b"\x00", b"[", b"{", b"9" * 20])
            elif kind == "cut":
                del data[at : at + rng.randint(1, 20)]
            else:
                lines = bytes(data).split(b"\r\n")
                n = rng.randrange(len(lines))
                lines[n:n] = [lines[n]] * rng.randint(1, 3)
                data = bytearray(b"\r\n".join(lines))
        answer = exchange(served.port, bytes(data), timeout=5)
        assert answer.seconds < 5, (bytes(data), answer)
        if answer.status_line:
            assert answer.status < 500, (bytes(data), answer)
            statuses.add(answer.status)
    assert {202, 400} <= statuses  # the mutations reached both the parser and the handler
