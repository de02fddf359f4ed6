"""The run lifecycle under `flow run-local`, as a user runs it: stops answered while a
source waits or blocks, teardown() called, hook failures named."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from blueprint import user_code_path, verify
from runner.kafka.broker import free_port
from runner.local import LocalRunner, RunResult

HERE = Path(__file__).resolve().parent
FLOW = Path(sys.executable).parent / "flow"


def write_app(directory: Path, streamlets: str, topics: str) -> Path:
    """A blueprint next to a copy of lifecycle_app.py."""
    shutil.copy(HERE / "lifecycle_app.py", directory / "lifecycle_app.py")
    path = directory / "blueprint.yaml"
    text = "name: lifecycle\nstreamlets:\n" + textwrap.indent(textwrap.dedent(streamlets), "  ")
    text += "topics:\n" + textwrap.indent(textwrap.dedent(topics), "  ")
    path.write_text(text)
    return path


def rows(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def start(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(FLOW), "run-local", "blueprint.yaml", "--quiet", *args],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_and_time(proc: subprocess.Popen[str], sig: int) -> tuple[int, float, str]:
    """Send ``sig``; the exit status, the seconds until the process exited, its stderr."""
    started = time.monotonic()
    os.kill(proc.pid, sig)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise AssertionError(f"did not stop within 30 s: {stderr}") from None
    return proc.returncode, time.monotonic() - started, stderr


def post(port: int, body: object) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(answer.status)


def post_ticks(port: int, indexes: range) -> int | None:
    """POST one request of ticks; the status, or None when no answer came (server gone)."""
    body = [{"source": "http", "index": i, "at": 0.0} for i in indexes]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/", json.dumps(body), {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    except OSError:
        return None
    finally:
        conn.close()


def post_while_stopping(
    port: int, stop: Callable[[], None], *, records: int = 1000, per_request: int = 10
) -> tuple[set[int], list[int | None]]:
    """POST ``records`` ticks (index = id) in requests of ``per_request``, 16 at a time, and
    call ``stop()`` once half of the requests are answered, while the others are still
    being sent; then go on, a request at a time, until one is not accepted. The ids of
    every record of every 202 answer, and each request's status."""
    requests = [range(i, i + per_request) for i in range(0, records, per_request)]
    statuses: list[int | None] = [None] * len(requests)
    answered = 0
    stopped = False

    def one(n: int) -> None:
        nonlocal answered, stopped
        statuses[n] = post_ticks(port, requests[n])
        answered += 1
        if answered >= len(requests) // 2 and not stopped:
            stopped = True
            stop()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(len(requests))))
    # Then go on until the stop shows: requests that still get 202 must be delivered too.
    deadline = time.monotonic() + 10
    while statuses[-1] == 202 and time.monotonic() < deadline:
        n = len(requests)
        requests.append(range(records + n * per_request, records + (n + 1) * per_request))
        statuses.append(post_ticks(port, requests[n]))
    accepted = {i for n, status in enumerate(statuses) if status == 202 for i in requests[n]}
    return accepted, statuses


def wait_until_accepting(port: int, proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait for the ingress on ``port`` to answer /healthz."""

    def up() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()[1]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return int(r.status) == 200
        except OSError:
            return False

    wait_for(up, timeout=60)


def test_sigterm_stops_a_waiting_http_ingress_with_teardown(tmp_path: Path) -> None:
    port = free_port()
    marker = tmp_path / "teardown.txt"
    write_app(
        tmp_path,
        f"""
        ingress:
          class: lifecycle_app:MarkedIngress
          config: {{schema: lifecycle_app:Tick, port: {port}, marker: {marker}}}
        store:
          class: lifecycle_app:Recorder
          config: {{path: {tmp_path / "out.jsonl"}, marker: {marker}}}
        """,
        """
        ticks: {producers: [ingress.out], consumers: [store.ticks]}
        """,
    )
    proc = start(tmp_path)
    try:

        def accepted() -> bool:
            try:
                return post(port, {"source": "http", "index": 0, "at": time.time()}) == 202
            except OSError:
                return False

        wait_for(accepted)
        wait_for(lambda: len(rows(tmp_path / "out.jsonl")) == 1)
        # The ingress now waits for its next request, which never comes.
        code, seconds, stderr = stop_and_time(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, stderr
    assert seconds < 5, seconds  # not the grace period of a stuck source: at once
    assert sorted(marker.read_text().split("\n")[:-1]) == ["teardown ingress", "teardown store"]


@pytest.mark.serial
def test_a_blocking_sync_source_neither_delays_the_others_nor_a_ctrl_c(tmp_path: Path) -> None:
    marker = tmp_path / "teardown.txt"
    write_app(
        tmp_path,
        f"""
        slow:
          class: lifecycle_app:SlowSource
          config: {{sleep_s: 0.5, marker: {marker}}}
        fast:
          class: lifecycle_app:SlowSource
          config: {{sleep_s: 0.02, count: 100}}
        slow-store:
          class: lifecycle_app:Recorder
          config: {{path: {tmp_path / "slow.jsonl"}}}
        fast-store:
          class: lifecycle_app:Recorder
          config: {{path: {tmp_path / "fast.jsonl"}}}
        """,
        """
        slow-ticks: {producers: [slow.out], consumers: [slow-store.ticks]}
        fast-ticks: {producers: [fast.out], consumers: [fast-store.ticks]}
        """,
    )
    proc = start(tmp_path)
    try:
        wait_for(lambda: len(rows(tmp_path / "fast.jsonl")) == 100)
        wait_for(lambda: len(rows(tmp_path / "slow.jsonl")) >= 2)
        # While the slow source sleeps between its records, the fast one's records reach
        # their sink as they are made: a source that blocked the loop would hold each of
        # them for up to the slow source's 0.5 s.
        delays = sorted(r["delay"] for r in rows(tmp_path / "fast.jsonl"))
        assert delays[len(delays) // 2] < 0.1, delays
        assert delays[-1] < 0.45, delays
        # Ctrl-C while the slow source is inside its time.sleep(0.5).
        code, seconds, stderr = stop_and_time(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, stderr
    assert seconds < 1.5, seconds
    assert marker.read_text() == "teardown slow\n"


def test_a_failing_teardown_fails_the_run_with_its_streamlet_hook_and_line(
    tmp_path: Path,
) -> None:
    write_app(
        tmp_path,
        f"""
        ticks:
          class: lifecycle_app:SlowSource
          config: {{sleep_s: 0, count: 5}}
        store:
          class: lifecycle_app:Recorder
          config: {{path: {tmp_path / "out.jsonl"}, fail_teardown: true}}
        """,
        """
        ticks: {producers: [ticks.out], consumers: [store.ticks]}
        """,
    )
    proc = subprocess.run(
        [str(FLOW), "run-local", "blueprint.yaml", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert len(rows(tmp_path / "out.jsonl")) == 5  # every record got there first
    lines = [line for line in proc.stderr.splitlines() if "teardown() failed" in line]
    assert len(lines) == 1, proc.stderr  # said once
    assert "streamlet 'store': teardown() failed at lifecycle_app.py:" in lines[0]
    assert "RuntimeError: cannot flush the sink" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("hook", ["setup", "generate"])
def test_a_failing_hook_names_the_streamlet_the_hook_and_the_line(
    tmp_path: Path, hook: str
) -> None:
    forbidden = "/proc/forbidden/out.jsonl"
    if hook == "setup":
        source, store = "{sleep_s: 0, count: 1}", f"{{path: {forbidden}}}"
    else:  # a negative sleep makes time.sleep raise inside generate()
        source, store = "{sleep_s: -1, count: 1}", f"{{path: {tmp_path / 'o.jsonl'}}}"
    write_app(
        tmp_path,
        f"""
        ticks:
          class: lifecycle_app:SlowSource
          config: {source}
        store:
          class: lifecycle_app:Recorder
          config: {store}
        """,
        """
        ticks: {producers: [ticks.out], consumers: [store.ticks]}
        """,
    )
    proc = subprocess.run(
        [str(FLOW), "run-local", "blueprint.yaml", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    name = "store" if hook == "setup" else "ticks"
    assert f"error: streamlet '{name}': {hook}() failed at lifecycle_app.py:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_source_with_on_stop_hands_over_what_it_accepted_before_it_ends(
    tmp_path: Path,
) -> None:
    path = write_app(
        tmp_path,
        """
        accepted:
          class: lifecycle_app:DrainingSource
          config: {count: 20, every_s: 0.05}
        """,
        """
        ticks: {producers: [accepted.out]}
        """,
    )
    blueprint = verify(path).unwrap()

    async def run() -> RunResult:
        runner = LocalRunner(blueprint, collect=["ticks"])
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.2)  # a few records out, most still held by the source
        runner.stop()
        return await task

    with user_code_path(str(tmp_path)):
        result = asyncio.run(run())
    assert result.error is None and result.stopped
    assert len(result.collected["ticks"]) == 20  # none of the accepted records lost


def test_a_cycle_that_no_source_feeds_ends_instead_of_waiting_for_ever(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        f"""
        loop:
          class: lifecycle_app:Echo
        store:
          class: lifecycle_app:Recorder
          config: {{path: {tmp_path / "out.jsonl"}}}
        """,
        """
        ticks: {producers: [loop.out], consumers: [loop.ticks, store.ticks]}
        """,
    )
    proc = subprocess.run(
        [str(FLOW), "run-local", "blueprint.yaml", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert rows(tmp_path / "out.jsonl") == []


def test_every_record_of_every_202_answer_reaches_the_sink_after_sigterm(tmp_path: Path) -> None:
    """SIGTERM while 1,000 records are being POSTed: what got 202 is delivered, nothing
    else is, and the run exits 0."""
    port, out = free_port(), tmp_path / "out.jsonl"
    write_app(
        tmp_path,
        f"""
        ingress:
          class: streamlets.library:HttpIngress
          config: {{schema: lifecycle_app:Tick, port: {port}, queue_size: 1000}}
        store:
          class: lifecycle_app:Recorder
          config: {{path: {out}}}
        """,
        """
        ticks: {producers: [ingress.out], consumers: [store.ticks]}
        """,
    )
    proc = start(tmp_path)
    try:
        wait_until_accepting(port, proc)
        accepted, statuses = post_while_stopping(port, lambda: os.kill(proc.pid, signal.SIGTERM))
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert len(accepted) >= 500, statuses  # half of the requests were answered before the stop
    assert set(statuses) <= {202, 503, None}, statuses  # 503: stopping; None: closed by then
    delivered = [int(row["index"]) for row in rows(out)]
    assert sorted(delivered) == sorted(accepted)  # every accepted record, once; no other
