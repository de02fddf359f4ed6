"""HttpSink against a real HTTP server on a loopback port (the standard library's, in a
thread): batches as JSON arrays with the bearer token, 4xx isolating the bad record, 503
and a server away waited for."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import BaseModel

from runner.testkit import run_streamlet
from streamlets import Inlet
from streamlets.library import HttpSink


class Event(BaseModel):
    id: int
    name: str


class EventSink(HttpSink):
    records = Inlet(Event)


class Receiver(ThreadingHTTPServer):
    """Keeps the batches it accepts; refuses (422) a batch holding the id ``poison``;
    answers 503 to the first ``busy`` requests; wants ``token`` when it is set."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.batches: list[list[dict[str, Any]]] = []
        self.requests = 0
        self.poison: int | None = None
        self.busy = 0
        self.token: str | None = None
        self.url = f"http://127.0.0.1:{self.server_address[1]}/events"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests += 1
        if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
            return self._answer(401, {"error": "who are you?"})
        if server.busy > 0:
            server.busy -= 1
            return self._answer(503, {"error": "busy"})
        if server.poison is not None and any(e["id"] == server.poison for e in body):
            return self._answer(422, {"error": f"event {server.poison} is not welcome"})
        server.batches.append(body)
        return self._answer(200, {"ok": True})

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def events(n: int) -> list[Event]:
    return [Event(id=i, name=f"e{i}") for i in range(n)]


def test_batches_are_posted_as_json_arrays_with_the_token(receiver: Receiver) -> None:
    receiver.token = "t0ken"
    config = {"url": receiver.url, "auth_token": "t0ken", "batch_size": 8}
    result = run_streamlet(EventSink, {"records": events(20)}, config=config)
    assert result.error is None and not result.dead_letters
    assert [e for batch in receiver.batches for e in batch] == [
        {"id": i, "name": f"e{i}"} for i in range(20)
    ]
    assert max(len(batch) for batch in receiver.batches) <= 8


def test_a_refused_record_is_dead_lettered_alone_with_the_answer(receiver: Receiver) -> None:
    receiver.poison = 5
    result = run_streamlet(EventSink, {"records": events(10)}, config={"url": receiver.url})
    (dead,) = result.dead_letters
    assert dead.error_class == "SinkRecordError"
    assert (
        "answered HTTP 422" in dead.error_message and "event 5 is not welcome" in dead.error_message
    )
    assert sorted(e["id"] for batch in receiver.batches for e in batch) == [
        i for i in range(10) if i != 5
    ]


def test_a_busy_server_is_waited_for_and_nothing_is_lost(receiver: Receiver) -> None:
    receiver.busy = 4
    config = {"url": receiver.url, "retries": 0, "backoff_initial_s": 0.01, "backoff_max_s": 0.02}
    result = run_streamlet(EventSink, {"records": events(5)}, config=config)
    assert not result.dead_letters and receiver.requests == 5
    assert receiver.batches == [[{"id": i, "name": f"e{i}"} for i in range(5)]]


def test_a_wrong_token_is_a_client_error_for_each_record(receiver: Receiver) -> None:
    receiver.token = "right"
    config = {"url": receiver.url, "auth_token": "wrong"}
    result = run_streamlet(EventSink, {"records": events(2)}, config=config)
    assert len(result.dead_letters) == 2 and "HTTP 401" in result.dead_letters[0].error_message
    assert "wrong" not in result.dead_letters[0].error_message


def test_the_url_must_be_http() -> None:
    with pytest.raises(Exception, match="not an http:// or https:// URL"):
        EventSink({"url": "ftp://x"})
