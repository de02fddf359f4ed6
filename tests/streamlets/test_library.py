"""The built-in streamlets: files, console, generator and HTTP ingress."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import fastavro
import pytest
from pydantic import BaseModel

from runner.testkit import run_streamlet
from streamlets.errors import ConfigError
from streamlets.library import ConsoleSink, Counter, FileSink, FileSource, GeneratorSource
from streamlets.library.files import file_format

FLOW = Path(sys.executable).parent / "flow"


class Row(BaseModel):
    name: str
    n: int
    ok: bool = True


ROW_PATH = f"{__name__}:Row"
AVRO_ROW = {
    "type": "record",
    "name": "Row",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "n", "type": "long"},
        {"name": "ok", "type": "boolean", "default": True},
    ],
}


def make_row(index: int) -> Row:
    return Row(name=f"r{index}", n=index * index)


def test_jsonl_source_reads_records_and_rejects_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"name": "a", "n": 1}\n\n{"name": "b", "n": "x"}\nnot json\n{"name": "c", "n": 3}\n'
    )
    result = run_streamlet(FileSource, config={"path": path, "schema": ROW_PATH})
    assert [r.name for r in result.outputs["out"]] == ["a", "c"]
    first, second = result.dead_letters
    assert first.original.value == b'{"name": "b", "n": "x"}'
    assert f"{path}:3" in first.error_message and "'n'" in first.error_message
    assert second.original.value == b"not json" and second.error_class == "JSONDecodeError"
    assert f"{path}:4" in second.error_message


def test_csv_source_with_a_model_and_with_an_avro_schema(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("name,n,ok\na,1,true\nb,two,false\nc,3,false\n")
    by_model = run_streamlet(FileSource, config={"path": path, "schema": ROW_PATH})
    assert by_model.outputs["out"] == [Row(name="a", n=1, ok=True), Row(name="c", n=3, ok=False)]
    assert len(by_model.dead_letters) == 1 and f"{path}:3" in by_model.dead_letters[0].error_message
    by_avro = run_streamlet(FileSource, config={"path": path, "schema": AVRO_ROW})
    assert by_avro.outputs["out"] == [
        {"name": "a", "n": 1, "ok": True},
        {"name": "c", "n": 3, "ok": False},
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".avro"])
def test_file_sink_then_source_round_trip(tmp_path: Path, suffix: str) -> None:
    rows = [make_row(i) for i in range(25)]
    path = tmp_path / "out" / f"rows{suffix}"
    written = run_streamlet(FileSink, {"records": rows}, config={"path": path, "schema": ROW_PATH})
    assert written.error is None and written.stats.records_in == 25
    read = run_streamlet(FileSource, config={"path": path, "schema": ROW_PATH})
    assert read.outputs["out"] == rows and read.dead_letters == []


def test_file_sink_append_mode(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    config = {"path": path, "schema": ROW_PATH, "mode": "append"}
    run_streamlet(FileSink, {"records": [make_row(1)]}, config=config)
    run_streamlet(FileSink, {"records": [make_row(2)]}, config=config)
    assert len(path.read_text().splitlines()) == 2
    run_streamlet(FileSink, {"records": [make_row(3)]}, config={**config, "mode": "overwrite"})
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".avro"])
def test_file_sink_append_cuts_a_record_torn_by_a_crash(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rows{suffix}"
    config = {"path": path, "schema": ROW_PATH, "mode": "append"}
    # Two flushes (an Avro file gets a block each), then a crash tears the last write.
    run_streamlet(FileSink, {"records": [make_row(i) for i in range(50)]}, config=config)
    run_streamlet(FileSink, {"records": [make_row(i) for i in range(50, 100)]}, config=config)
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size - 5)
    run_streamlet(FileSink, {"records": [make_row(1000)]}, config=config)
    read = run_streamlet(FileSource, config={"path": path, "schema": ROW_PATH})
    assert read.dead_letters == []  # nothing half-written is left in the file
    indexes = [int(row.name[1:]) for row in read.outputs["out"]]
    # What was written whole stays; the torn write is gone (its records, not committed
    # when the crash came, are written again after the restart).
    assert indexes[-1] == 1000 and indexes[:-1] == list(range(len(indexes) - 1))
    assert len(indexes) > 50


def test_file_sink_flush_makes_the_writes_durable_and_overwrite_cannot_restart(
    tmp_path: Path,
) -> None:
    sink = FileSink(FileSink.Config(path=tmp_path / "o.jsonl", schema=ROW_PATH), name="store")
    assert "mode: append" in (sink.restart_problem() or "")
    appending = FileSink(
        FileSink.Config(path=tmp_path / "a.jsonl", schema=ROW_PATH, mode="append"), name="store"
    )
    assert appending.restart_problem() is None
    appending.setup()
    appending.process(make_row(1))
    appending.flush()  # what a commit waits for: on disk, not in a buffer
    assert (tmp_path / "a.jsonl").read_text().count("\n") == 1
    appending.teardown()


def test_a_resumed_file_sink_keeps_what_the_crashed_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    run_streamlet(FileSink, {"records": [make_row(1)]}, config={"path": path, "schema": ROW_PATH})
    resumed = FileSink(FileSink.Config(path=path, schema=ROW_PATH), name="store")
    resumed.resuming = True  # what run-local --kafka says to a restarted process
    resumed.setup()
    resumed.process(make_row(2))
    resumed.teardown()
    assert len(path.read_text().splitlines()) == 2


def test_avro_file_written_by_the_sink_is_a_standard_container(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    run_streamlet(
        FileSink,
        {"records": [make_row(i) for i in range(3)]},
        config={"path": path, "schema": AVRO_ROW},
    )
    with path.open("rb") as fh:
        assert [r["n"] for r in fastavro.reader(fh)] == [0, 1, 4]


def test_unknown_suffix_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set 'format'"):
        file_format(tmp_path / "rows.txt", None)
    assert file_format(tmp_path / "rows.txt", "csv") == "csv"


def test_subclass_with_a_fixed_schema_needs_no_schema_parameter(tmp_path: Path) -> None:
    from streamlets import Outlet

    class RowFile(FileSource):
        out = Outlet(Row)

    path = tmp_path / "in.jsonl"
    path.write_text('{"name": "a", "n": 1}\n')
    assert run_streamlet(RowFile, config={"path": path}).outputs["out"] == [Row(name="a", n=1)]


def test_console_sink_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    run_streamlet(
        ConsoleSink, {"records": [make_row(2)]}, config={"schema": ROW_PATH, "prefix": "row: "}
    )
    assert capsys.readouterr().out == 'row: {"name":"r2","n":4,"ok":true}\n'


def test_generator_default_counter_and_factory() -> None:
    counters = run_streamlet(GeneratorSource, config={"count": 5}).outputs["out"]
    assert [c.index for c in counters] == [0, 1, 2, 3, 4]
    assert all(isinstance(c, Counter) for c in counters)
    rows = run_streamlet(
        GeneratorSource,
        config={"count": 3, "schema": ROW_PATH, "factory": f"{__name__}:make_row"},
    ).outputs["out"]
    assert rows == [make_row(0), make_row(1), make_row(2)]


def test_generator_rate_paces_the_records() -> None:
    started = time.monotonic()
    run_streamlet(GeneratorSource, config={"count": 21, "rate": 100})
    # 21 records at 100/s take at least 0.2 s (a lower bound: never an upper one).
    assert time.monotonic() - started >= 0.2


# -- HTTP ingress, through `flow run-local` --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(port: int, body: Any) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", "/", payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_http_ingress_accepts_rejects_and_pushes_back(tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "rows.py").write_text(
        "from pydantic import BaseModel\n\n\nclass Row(BaseModel):\n    name: str\n    n: int\n"
    )
    (tmp_path / "blueprint.yaml").write_text(
        textwrap.dedent(
            f"""
            name: ingress
            streamlets:
              http:
                class: streamlets.library:HttpIngress
                config: {{schema: "rows:Row", port: {port}, queue_size: 10}}
              store:
                class: streamlets.library:FileSink
                config: {{schema: "rows:Row", path: out/rows.jsonl}}
            topics:
              rows: {{producers: [http.out], consumers: [store.records]}}
            """
        )
    )
    proc = subprocess.Popen(
        [str(FLOW), "run-local", "blueprint.yaml", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _post(port, {"name": "a", "n": 1})
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert (status, body) == (202, {"accepted": 1})
        assert _post(port, [{"name": "b", "n": 2}, {"name": "c", "n": 3}]) == (
            202,
            {"accepted": 2},
        )
        status, body = _post(port, [{"name": "d", "n": 4}, {"name": "e", "n": "five"}])
        assert status == 400 and body["field"] == "n" and body["index"] == 1
        status, body = _post(port, b"{not json")
        assert status == 400 and "not JSON" in body["error"]
        # More records than the queue holds can never be taken at once: 413 names the limit.
        status, body = _post(port, [{"name": "f", "n": i} for i in range(11)])
        assert status == 413 and body["limit"] == 10 and "smaller arrays" in body["error"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    stored = [
        json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()
    ]
    # Only whole accepted requests went in: nothing of the rejected ones.
    assert [r["name"] for r in stored] == ["a", "b", "c"]
