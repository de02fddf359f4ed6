"""`flow run-local --kafka`: one process per replica, same results as the in-process runner."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import FLOW, KafkaApp, alive

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sensors"


def _pids(run_dir: Path) -> list[int]:
    return [json.loads(p.read_text())["pid"] for p in (run_dir / "status").glob("*.json")]


def test_sensors_example_on_kafka_gives_the_local_runners_output(tmp_path: Path) -> None:
    app = tmp_path / "sensors"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("output", "runs", "__pycache__"))
    alerts = app / "output" / "alerts.jsonl"

    local = subprocess.run(
        [FLOW, "run-local", "blueprint.yaml", "-q", "--run-dir", str(tmp_path / "local")],
        check=False,
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert local.returncode == 0, local.stderr
    expected = sorted(alerts.read_text().splitlines())
    assert expected, "the example should raise some alerts"
    alerts.unlink()

    on_kafka = subprocess.run(
        [FLOW, "run-local", "blueprint.yaml", "--kafka", "--run-dir", str(tmp_path / "kafka")],
        check=False,
        cwd=app,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert on_kafka.returncode == 0, on_kafka.stderr
    assert sorted(alerts.read_text().splitlines()) == expected
    err = on_kafka.stderr
    assert "embedded Kafka broker (Tansu)" in err
    # Logs of every replica, merged and prefixed; both threshold replicas took partitions.
    for label in ("ingest-0", "threshold-0", "threshold-1", "store-0"):
        assert f"[{label}]" in err, err
    assert "[threshold-0]" in err and "[threshold-1]" in err
    assert "finished in" in err  # the summary table
    # The embedded broker and every streamlet process are gone.
    assert not any(alive(pid) for pid in _pids(tmp_path / "kafka"))


SLOW_PIPELINE = """
streamlets:
  numbers: {class: ktapp:Numbers, config: {count: 1200}}
  pass:
    class: ktapp:Passthrough
    config: {delay: 0.003}
  store:
    class: ktapp:ItemFile
    config: {path: ids.txt}
topics:
  items:
    name: "{app}-items"
    producers: [numbers.out]
    consumers: [pass.inp]
    partitions: 2
  out:
    name: "{app}-out"
    producers: [pass.out]
    consumers: [store.inp]
"""


def _wait_for_status(run_dir: Path, label: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted((run_dir / "status").glob(f"{label}.*.json")):
            try:
                data: dict[str, object] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            stats = data.get("stats")
            if isinstance(stats, dict) and int(stats.get("records_in", 0)) > 100:
                return data
        time.sleep(0.1)
    raise AssertionError(f"{label} did not get going")


def _run_local_on_kafka(app: KafkaApp, run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """Start `flow run-local --kafka` for `app` on the test broker; output merged into stdout."""
    return subprocess.Popen(
        [
            FLOW,
            "run-local",
            str(app.blueprint),
            "--kafka",
            "--bootstrap",
            app.bootstrap,
            "--config",
            str(app.config),
            "--run-dir",
            str(run_dir),
            *extra,
        ],
        cwd=app.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


FILE_COPY = """
name: file-copy
streamlets:
  read:
    class: streamlets.library:FileSource
    config: {path: items.jsonl, schema: "tests.integration.conftest:Item"}
  write:
    class: streamlets.library:FileSink
    config: {path: copy.jsonl, schema: "tests.integration.conftest:Item"}
topics:
  items:
    producers: [read.out]
    consumers: [write.records]
"""


def test_a_second_run_in_the_same_run_directory_starts_with_empty_state(tmp_path: Path) -> None:
    """The embedded broker starts empty each run: the stores a run before left in the run
    directory go too (the source's position among them), so the file is read again."""
    (tmp_path / "bp.yaml").write_text(FILE_COPY)
    lines = [json.dumps({"id": i, "payload": "p"}) for i in range(500)]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    run = [FLOW, "run-local", "bp.yaml", "--kafka", "-q", "--run-dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for attempt in (1, 2):
        done = subprocess.run(
            run, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
        )
        assert done.returncode == 0, (attempt, done.stderr)
        copied = (tmp_path / "copy.jsonl").read_text().splitlines()
        assert [json.loads(line)["id"] for line in copied] == list(range(500)), attempt
        assert "ends at offset" not in done.stderr, done.stderr


def test_a_crashed_process_is_restarted_and_nothing_is_lost(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    app = kafka_app(SLOW_PIPELINE)
    run_dir = tmp_path / "run"
    supervisor = _run_local_on_kafka(app, run_dir, "-q")
    try:
        status = _wait_for_status(run_dir, "pass-0")
        os.kill(int(status["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
        output, _ = supervisor.communicate(timeout=150)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, output
    assert "pass-0: crashed (signal 9); restarting" in output
    ids = {int(line) for line in (app.directory / "ids.txt").read_text().split()}
    assert ids == set(range(1200))  # at-least-once: duplicates allowed, losses not


def test_ctrl_c_stops_every_process_cleanly(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    app = kafka_app(SLOW_PIPELINE.replace("count: 1200", "count: 100000"))
    run_dir = tmp_path / "run"
    supervisor = _run_local_on_kafka(app, run_dir)
    try:
        _wait_for_status(run_dir, "pass-0")
        supervisor.send_signal(signal.SIGINT)
        output, _ = supervisor.communicate(timeout=60)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, output
    assert "SIGINT: stopping every streamlet process" in output
    assert "stopped in" in output
    assert "Traceback" not in output
    assert not any(alive(pid) for pid in _pids(run_dir))


SECRET_MODULE = '''
from pydantic import BaseModel, SecretStr

from streamlets import Inlet, Streamlet
from ktapp import Item


class TokenFile(Streamlet):
    """Writes its token, then each item id, to a file (the token has no default)."""

    inp = Inlet(Item)

    class Config(BaseModel):
        path: str
        token: SecretStr

    def setup(self) -> None:
        self._file = open(self.config.path, "a", encoding="utf-8")
        self._file.write(f"token {self.config.token.get_secret_value()}\\n")

    def process(self, item: Item) -> None:
        self._file.write(f"{item.id}\\n")
        self._file.flush()

    def teardown(self) -> None:
        self._file.close()
'''


def test_set_values_reach_the_processes_but_not_their_command_lines(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    app = kafka_app(
        """
        streamlets:
          numbers: {class: ktapp:Numbers, config: {count: 20000}}
          pass: {class: ktapp:Passthrough}
          store: {class: secretapp:TokenFile, config: {path: ids.txt}}
        topics:
          items: {name: "{app}-items", producers: [numbers.out], consumers: [pass.inp]}
          out: {name: "{app}-out", producers: [pass.out], consumers: [store.inp]}
        """
    )
    (app.directory / "secretapp.py").write_text(SECRET_MODULE, encoding="utf-8")
    secret = "s3cr3t-" + os.urandom(6).hex()
    run_dir = tmp_path / "run"
    supervisor = _run_local_on_kafka(
        app, run_dir, "-q", "--set", f"store.token={secret}", "--set", "numbers.count=300"
    )
    command_lines: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 60
        while len(command_lines) < 3 and supervisor.poll() is None:
            assert time.monotonic() < deadline, "the processes did not start"
            for pid in _pids(run_dir) if (run_dir / "status").exists() else []:
                with contextlib.suppress(OSError):
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if raw:
                        command_lines.setdefault(pid, raw.replace(b"\0", b" ").decode())
            time.sleep(0.05)
        output, _ = supervisor.communicate(timeout=120)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, output
    assert len(command_lines) == 3, command_lines
    assert all("run-streamlet" in line for line in command_lines.values()), command_lines
    assert not any(secret in line for line in command_lines.values()), command_lines
    assert secret not in output
    lines = (app.directory / "ids.txt").read_text().split("\n")
    assert lines[0] == f"token {secret}"  # the value reached the process
    assert {int(n) for n in lines[1:] if n} == set(range(300))  # so did numbers.count
