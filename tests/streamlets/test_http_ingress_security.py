"""HttpIngress with a bearer token and TLS, and a mixed fuzz of hostile requests that
checks the process's memory stays bounded and no accepted (202) record is lost."""

from __future__ import annotations

import http.client
import json
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streamlets.errors import ConfigError
from streamlets.library import HttpIngress
from tests.streamlets import test_http_ingress as _ingress
from tests.streamlets.test_http_ingress import exchange, head, request

# The ingress fixtures of test_http_ingress.py (a server in a thread; no traceback logged).
serve = _ingress.serve
no_traceback = _ingress.no_traceback


def test_a_token_is_required_for_posts_but_not_for_health(serve: Any) -> None:
    served = serve(auth_token="s3cret")
    record = {"id": 1, "name": "a"}
    status, headers, body = request(served.port, record)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["error"] and "s3cret" not in body["error"]
    assert request(served.port, record, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert request(served.port, record, headers={"Authorization": "Basic czNjcmV0"})[0] == 401
    ok = request(served.port, record, headers={"Authorization": "Bearer s3cret"})
    assert ok[::2] == (202, {"accepted": 1})
    assert request(served.port, b"", method="GET", path="/healthz")[0] == 200
    time.sleep(0.2)
    assert served.taken == [served.taken[0]] and served.taken[0].id == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate to test TLS with")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_from_a_certificate_and_key(serve: Any, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = serve(tls_cert=cert, tls_key=key)
    context = ssl.create_default_context(cafile=str(cert))
    connection = http.client.HTTPSConnection("127.0.0.1", served.port, context=context, timeout=10)
    try:
        body = json.dumps({"id": 7, "name": "tls"})
        connection.request("POST", "/", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 202 and json.loads(response.read()) == {"accepted": 1}
    finally:
        connection.close()
    # Plain HTTP to the TLS port gets no answer a client could mistake for one.
    answer = exchange(served.port, head("Content-Length: 2", body=b"{}"), timeout=5)
    assert not answer.status_line.startswith("HTTP/1.1 2")


def test_tls_needs_both_files_and_readable_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS needs both tls_cert and tls_key"):
        HttpIngress({"schema": {"type": "string"}, "tls_cert": tmp_path / "c.pem"})
    ingress = HttpIngress(
        {"schema": {"type": "string"}, "tls_cert": tmp_path / "c", "tls_key": tmp_path / "k"}
    )
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        ingress._tls_context()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _send_huge(port: int, size: int) -> None:
    """A chunked body of ``size`` bytes, sent until the server stops reading."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head("Content-Type: application/json", "Transfer-Encoding: chunked"))
        chunk = b"%x\r\n%s\r\n" % (65536, b"[" * 65536)
        try:
            for _ in range(size // 65536):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass


def test_a_mixed_fuzz_keeps_memory_bounded_and_loses_no_accepted_record(serve: Any) -> None:
    """Bounded loops of malformed, huge, deeply nested, slow and wrong-content-type requests
    among valid ones: each gets a 4xx (or its connection closed), the log holds no
    traceback (the fixture checks), RSS grows by less than 64 MiB, and every record
    answered 202 is handed to the pipeline."""
    served = serve(max_body_bytes=1_000_000, read_timeout=0.3, body_timeout=1.0, idle_timeout=1.0)
    port = served.port
    rng = random.Random(17)
    accepted = 0
    statuses: set[int] = set()
    before = _rss_kib()
    slow = [
        threading.Thread(
            target=exchange,
            args=(port, head("Content-Length: 100"), b'{"id": 1,'),
            kwargs={"pause": 0.5, "timeout": 5},
        )
        for _ in range(20)
    ]
    for thread in slow:
        thread.start()
    for round_ in range(120):
        kind = round_ % 6
        if kind == 0:  # valid: an array of records
            n = rng.randint(1, 20)
            records = [{"id": accepted + i, "name": "v"} for i in range(n)]
            status = request(port, records)[0]
            if status == 202:
                accepted += n
        elif kind == 1:  # huge: 20 MB chunked, and a Content-Length of 50 MB
            _send_huge(port, 20_000_000)
            status = exchange(port, head("Content-Length: 50000000"), timeout=5).status
        elif kind == 2:  # deeply nested
            depth = rng.choice([1000, 100_000, 500_000])
            status = request(port, b"[" * depth + b"]" * depth)[0]
        elif kind == 3:  # wrong content type
            mime = rng.choice(["text/plain", "application/xml", "multipart/form-data"])
            status = request(port, b'{"id": 1, "name": "x"}', headers={"Content-Type": mime})[0]
        elif kind == 4:  # malformed head
            garbage = rng.choice(
                [b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"\x00\xff" * 100 + b"\r\n\r\n",
                 b"POST / HTTP/1.1\r\n" + b"X: y\r\n" * 300 + b"\r\n"]
            )  # fmt: skip
            answer = exchange(port, garbage, timeout=5)
            status = answer.status if answer.status_line else 400
        else:  # a body that is not JSON of the schema
            status = request(port, {"id": "not a number", "name": 3})[0]
        statuses.add(status)
        assert status < 500, (round_, status)
    for thread in slow:
        thread.join(10)
    grown_mib = (_rss_kib() - before) / 1024
    deadline = time.monotonic() + 5
    while len(served.taken) < accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(r.id for r in served.taken) == list(range(accepted))
    assert accepted > 0 and {202, 400, 413, 415} <= statuses
    assert grown_mib < 64, f"RSS grew by {grown_mib:.0f} MiB"
