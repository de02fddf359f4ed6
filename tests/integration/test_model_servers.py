"""The model-serving streamlet against real model servers installed by the test suite.

MLServer (Open Inference Protocol V2) and KServe's scikit-learn server (V1) each run in
their own virtualenv (see ``model_servers.py``; the first run installs them, later runs
reuse ``.cache/model-servers``), on free loopback ports, serving scikit-learn models
trained here on the iris data set that ships with scikit-learn.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from runner.testkit import run_blueprint, run_streamlet
from tests.integration.conftest import alive
from tests.integration.model_servers import ModelServer, ServedModel, running
from tests.integration.model_serving_app import Flower, ScoreFlowers, iris_rows

pytestmark = pytest.mark.slow

APP = Path(__file__).with_name("model_serving_app.py")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different iris classifiers saved with joblib."""
    folder = tmp_path_factory.mktemp("models")
    x, y = load_iris(return_X_y=True)
    paths = {
        "logistic": folder / "logistic.joblib",
        "tree": folder / "tree.joblib",
    }
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), paths["logistic"])
    joblib.dump(DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y), paths["tree"])
    return paths


def expected(path: Path, count: int) -> list[int]:
    """What the model in ``path`` predicts in-process for the first ``count`` flowers."""
    rows = iris_rows()
    predictions = joblib.load(path).predict([rows[i % len(rows)] for i in range(count)])
    return [int(p) for p in predictions]


@pytest.fixture(scope="module")
def mlserver(
    models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServer]:
    """MLServer serving iris v1 (logistic regression) and iris v2 (decision tree)."""
    served = (
        ServedModel("iris", models["logistic"], "v1"),
        ServedModel("iris", models["tree"], "v2"),
    )
    with running("mlserver", served, tmp_path_factory.mktemp("mlserver")) as server:
        yield server


@pytest.fixture(scope="module")
def kserve(
    models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServer]:
    """KServe's sklearnserver serving the decision tree as ``iris``."""
    with running("kserve", {"iris": models["tree"]}, tmp_path_factory.mktemp("kserve")) as server:
        yield server


def flowers(count: int) -> list[Flower]:
    rows = iris_rows()
    return [Flower(id=i, features=rows[i % len(rows)]) for i in range(count)]


def test_mlserver_v2_predictions_match_the_in_process_model_in_order(
    mlserver: ModelServer, models: dict[str, Path]
) -> None:
    config = {
        "url": mlserver.url,
        "model": "iris",
        "version": "v1",
        "protocol": "v2",
        "outputs": ["predict"],
        "batch_size": 32,
        "concurrency": 4,
    }
    result = run_streamlet(ScoreFlowers, {"records": flowers(3000)}, config=config)
    assert result.error is None and result.dead_letters == []
    out = result.outputs["results"]
    assert [r.id for r in out] == list(range(3000))
    assert [r.label for r in out] == expected(models["logistic"], 3000)
    assert {(r.model, r.version, r.protocol) for r in out} == {("iris", "v1", "v2")}
    sizes = [r.batch_size for r in out]
    assert max(sizes) == 32
    assert sum(sizes) / len(sizes) > 16  # records really went in batches


def test_mlserver_serves_the_version_asked_for(
    mlserver: ModelServer, models: dict[str, Path]
) -> None:
    config = {"url": mlserver.url, "model": "iris", "version": "v2", "protocol": "v2"}
    config["outputs"] = ["predict"]
    result = run_streamlet(ScoreFlowers, {"records": flowers(300)}, config=config)
    assert [r.label for r in result.outputs["results"]] == expected(models["tree"], 300)
    assert {r.version for r in result.outputs["results"]} == {"v2"}


def test_kserve_v1_predictions_match_the_in_process_model_in_order(
    kserve: ModelServer, models: dict[str, Path]
) -> None:
    config = {"url": kserve.url, "model": "iris", "protocol": "v1", "batch_size": 50}
    result = run_streamlet(ScoreFlowers, {"records": flowers(2000)}, config=config)
    assert result.error is None and result.dead_letters == []
    out = result.outputs["results"]
    assert [r.id for r in out] == list(range(2000))
    assert [r.label for r in out] == expected(models["tree"], 2000)
    assert max(r.batch_size for r in out) == 50


@pytest.mark.parametrize("server_name", ["mlserver", "kserve"])
def test_a_malformed_record_is_dead_lettered_with_the_servers_message(
    server_name: str, request: pytest.FixtureRequest, models: dict[str, Path]
) -> None:
    server: ModelServer = request.getfixturevalue(server_name)
    records = flowers(200)
    records[77] = Flower(id=77, features=[5.1, 3.5, 1.4])
    config: dict[str, Any] = {"url": server.url, "model": "iris", "protocol": server.protocol}
    if server.protocol == "v2":
        config.update(version="v1", outputs=["predict"])
    result = run_streamlet(ScoreFlowers, {"records": records}, config=config)
    out = result.outputs["results"]
    assert [r.id for r in out] == [i for i in range(200) if i != 77]
    (dead,) = result.dead_letters
    assert dead.error_class == "ModelRejected"
    assert "X has 3 features, but" in dead.error_message
    assert "expecting 4 features as input" in dead.error_message
    assert b"5.1" in dead.original.value or dead.original.value  # the original record is kept


def write_blueprint(folder: Path, text: str) -> Path:
    shutil.copy(APP, folder / "model_serving_app.py")
    path = folder / "blueprint.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_control_switches_servers_mid_stream_without_loss_or_duplicates(
    mlserver: ModelServer, kserve: ModelServer, models: dict[str, Path], tmp_path: Path
) -> None:
    blueprint = write_blueprint(
        tmp_path,
        f"""
        name: switch-servers
        streamlets:
          flowers:
            class: model_serving_app:FlowerSource
            config: {{count: 4000, per_second: 4000}}
          switch:
            class: model_serving_app:SwitchAfter
            config: {{after: 2000, url: "{kserve.url}", model: iris, protocol: v1}}
          score:
            class: model_serving_app:ScoreFlowers
            config:
              url: "{mlserver.url}"
              model: iris
              version: v1
              protocol: v2
              outputs: [predict]
              batch_size: 16
        topics:
          flowers: {{producers: [flowers.out], consumers: [score.records]}}
          control: {{producers: [switch.out], consumers: [score.control]}}
          scored: {{producers: [score.results]}}
        """,
    )
    result = run_blueprint(blueprint, collect=["scored"])
    assert result.error is None and result.dead_letters == []
    out = result.topics["scored"]
    assert [r.id for r in out] == list(range(4000))
    protocols = [r.protocol for r in out]
    switch_at = protocols.index("v1")
    assert 1000 < switch_at <= 2600  # about when the control record came
    assert protocols == ["v2"] * switch_at + ["v1"] * (4000 - switch_at)
    logistic, tree = expected(models["logistic"], 4000), expected(models["tree"], 4000)
    assert [r.label for r in out] == logistic[:switch_at] + tree[switch_at:]


@pytest.mark.parametrize("protocol", ["v2", "v2-grpc"])
def test_server_killed_and_restarted_mid_stream_loses_nothing(
    models: dict[str, Path], tmp_path: Path, protocol: str
) -> None:
    server = ModelServer("mlserver", (ServedModel("iris", models["logistic"], "v1"),), tmp_path)
    server.start()
    count = 3000
    url = server.grpc_url if protocol == "v2-grpc" else server.url
    blueprint = write_blueprint(
        tmp_path,
        f"""
        name: restart-server
        streamlets:
          flowers:
            class: model_serving_app:FlowerSource
            config: {{count: {count}, per_second: 1500}}
          score:
            class: model_serving_app:ScoreFlowers
            config: {{url: "{url}", model: iris, protocol: {protocol}, outputs: [predict]}}
        topics:
          flowers: {{producers: [flowers.out], consumers: [score.records]}}
          control: {{consumers: [score.control]}}
          scored: {{producers: [score.results]}}
        """,
    )
    seen: dict[str, Any] = {}

    def app_module() -> Any:
        """The copy of model_serving_app this run loaded (from tmp_path)."""
        while True:
            module = sys.modules.get("model_serving_app")
            # A module is in sys.modules before its body has run: wait for PROGRESS too.
            if (
                module is not None
                and str(tmp_path) in str(getattr(module, "__file__", ""))
                and isinstance(getattr(module, "PROGRESS", None), dict)
            ):
                return module
            time.sleep(0.005)

    def kill_and_restart() -> None:
        progress = app_module().PROGRESS
        while progress["produced"] < 800:
            time.sleep(0.005)
        server.kill()
        seen["at_kill"] = progress["produced"]
        time.sleep(1.0)
        server.start()
        seen["back_up"] = progress["produced"]

    def run() -> None:
        seen["result"] = run_blueprint(blueprint, collect=["scored"])

    runner = threading.Thread(target=run, daemon=True)
    chaos = threading.Thread(target=kill_and_restart, daemon=True)
    try:
        runner.start()
        chaos.start()
        runner.join(180)
        chaos.join(60)
    finally:
        server.stop()
    result: Any = seen["result"]
    assert result.error is None and result.dead_letters == []
    out = result.topics["scored"]
    assert [r.id for r in out] == list(range(count))
    assert [r.label for r in out] == expected(models["logistic"], count)
    assert seen["at_kill"] < count  # it was killed mid-stream
    # Backpressure: while the server was down the source was held back, not buffered.
    assert seen["back_up"] - seen["at_kill"] < 1000


def test_embedded_model_matches_the_served_model(
    mlserver: ModelServer, models: dict[str, Path]
) -> None:
    records = flowers(1000)
    embedded = run_streamlet(
        ScoreFlowers, {"records": records}, config={"path": str(models["logistic"])}
    )
    served = run_streamlet(
        ScoreFlowers,
        {"records": records},
        config={"url": mlserver.url, "model": "iris", "version": "v1", "protocol": "v2"}
        | {"outputs": ["predict"]},
    )
    assert embedded.dead_letters == [] and served.dead_letters == []
    assert [r.label for r in embedded.outputs["results"]] == [
        r.label for r in served.outputs["results"]
    ]
    assert {r.protocol for r in embedded.outputs["results"]} == {"embedded"}
    assert {r.model for r in embedded.outputs["results"]} == {"logistic"}


def test_the_model_serving_example_runs_with_flow_run_local(
    mlserver: ModelServer, tmp_path: Path
) -> None:
    """examples/model-serving end to end, as its README says, against the same models."""
    blueprint = (
        Path(__file__).resolve().parents[2] / "examples" / "model-serving" / "blueprint.yaml"
    )
    out = tmp_path / "scored.jsonl"
    flow = Path(sys.executable).parent / "flow"
    command = [
        str(flow),
        "run-local",
        str(blueprint),
        "-q",
        "--run-dir",
        str(tmp_path / "run"),
        "--set",
        f"score.url={mlserver.url}",
        "--set",
        f"switch.url={mlserver.url}",
        "--set",
        f"store.path={out}",
        "--set",
        "switch.after_s=1.0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in results] == list(range(3000))
    versions = [r["version"] for r in results]
    switch_at = versions.index("v2")
    assert 0 < switch_at < 3000
    assert versions == ["v1"] * switch_at + ["v2"] * (3000 - switch_at)


def test_the_batch_scoring_example_with_two_replicas(tmp_path: Path) -> None:
    """examples/batch-scoring: a data file through two scorer replicas into a result file."""
    example = Path(__file__).resolve().parents[2] / "examples" / "batch-scoring"
    sys.path.insert(0, str(example))
    try:
        import prepare  # the example's own data and model preparation
    finally:
        sys.path.remove(str(example))
    model = prepare.prepare(2000, tmp_path)
    out = tmp_path / "scored.jsonl"
    with running("mlserver", (ServedModel("digits", model, "1"),), tmp_path) as server:
        config = {
            "read": {"path": str(tmp_path / "data" / "digits.jsonl")},
            "score": {"url": server.url},
            "write": {"path": str(out)},
        }
        result = run_blueprint(example / "blueprint.yaml", config=config)
    assert result.error is None and result.dead_letters == []
    assert result.stats["score"].records_out == 2000
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in scored) == list(range(2000))  # replicas interleave
    digits = joblib.load(model)
    from sklearn.datasets import load_digits

    x = load_digits().data
    truth = {i: int(p) for i, p in enumerate(digits.predict([x[i % len(x)] for i in range(2000)]))}
    assert all(r["digit"] == truth[r["id"]] for r in scored)
    assert {r["version"] for r in scored} == {"1"}


def _children(pid: int) -> list[int]:
    """The PIDs of ``pid``'s child processes (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_ctrl_c_while_a_server_starts_stops_it(models: dict[str, Path], tmp_path: Path) -> None:
    """serve_until_interrupted() (the examples' serve loop) stops a server still starting."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from tests.integration.model_servers import ModelServer, ServedModel
        from runner.kafka.broker import free_port
        served = (ServedModel("iris", Path({str(models["tree"])!r}), "v1"),)
        server = ModelServer("mlserver", served, Path({str(tmp_path)!r}), port=free_port())
        server.serve_until_interrupted("ready")
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    server = 0
    try:
        deadline = time.monotonic() + 120  # the first start may install MLServer
        while not _children(parent.pid):
            assert parent.poll() is None, parent.communicate()
            assert time.monotonic() < deadline, "the server process never started"
            time.sleep(0.02)
        (server,) = _children(parent.pid)
        parent.send_signal(signal.SIGINT)  # before "ready": still starting
        out, _err = parent.communicate(timeout=30)
        assert "ready" not in out.split(), "the server got ready before the interrupt"
        deadline = time.monotonic() + 15
        while alive(server):
            assert time.monotonic() < deadline, f"server {server} still runs after Ctrl-C"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if server and alive(server):  # the test failed: do not leave the server behind
            os.killpg(server, signal.SIGKILL)


# -- V2 over gRPC (protocol: v2-grpc) ----------------------------------------------------------


def test_mlserver_v2_grpc_predictions_match_the_in_process_model_in_order(
    mlserver: ModelServer, models: dict[str, Path]
) -> None:
    config = {
        "url": mlserver.grpc_url,
        "model": "iris",
        "version": "v2",
        "protocol": "v2-grpc",
        "outputs": ["predict"],
        "batch_size": 32,
        "concurrency": 4,
    }
    result = run_streamlet(ScoreFlowers, {"records": flowers(3000)}, config=config)
    assert result.error is None and result.dead_letters == []
    out = result.outputs["results"]
    assert [r.id for r in out] == list(range(3000))
    assert [r.label for r in out] == expected(models["tree"], 3000)
    assert {(r.model, r.version, r.protocol) for r in out} == {("iris", "v2", "v2-grpc")}
    assert max(r.batch_size for r in out) == 32


def test_mlserver_v2_grpc_dead_letters_a_malformed_record_with_the_servers_message(
    mlserver: ModelServer,
) -> None:
    records = flowers(100)
    records[41] = Flower(id=41, features=[5.1, 3.5, 1.4])
    config = {"url": mlserver.grpc_url, "model": "iris", "version": "v1", "protocol": "v2-grpc"}
    result = run_streamlet(ScoreFlowers, {"records": records}, config=config)
    assert [r.id for r in result.outputs["results"]] == [i for i in range(100) if i != 41]
    (dead,) = result.dead_letters
    assert dead.error_class == "ModelRejected"
    assert "X has 3 features, but" in dead.error_message


def test_a_control_record_switches_from_rest_to_grpc_mid_stream(
    mlserver: ModelServer, models: dict[str, Path], tmp_path: Path
) -> None:
    """The same MLServer's REST port, then, after a control record, its gRPC port."""
    blueprint = write_blueprint(
        tmp_path,
        f"""
        name: switch-to-grpc
        streamlets:
          flowers:
            class: model_serving_app:FlowerSource
            config: {{count: 3000, per_second: 4000}}
          switch:
            class: model_serving_app:SwitchAfter
            config:
              after: 1500
              url: "{mlserver.grpc_url}"
              model: iris
              version: v2
              protocol: v2-grpc
              outputs: [predict]
          score:
            class: model_serving_app:ScoreFlowers
            config:
              url: "{mlserver.url}"
              model: iris
              version: v1
              protocol: v2
              outputs: [predict]
              batch_size: 16
        topics:
          flowers: {{producers: [flowers.out], consumers: [score.records]}}
          control: {{producers: [switch.out], consumers: [score.control]}}
          scored: {{producers: [score.results]}}
        """,
    )
    result = run_blueprint(blueprint, collect=["scored"])
    assert result.error is None and result.dead_letters == []
    out = result.topics["scored"]
    assert [r.id for r in out] == list(range(3000))
    protocols = [r.protocol for r in out]
    switch_at = protocols.index("v2-grpc")
    assert protocols == ["v2"] * switch_at + ["v2-grpc"] * (3000 - switch_at)
    logistic, tree = expected(models["logistic"], 3000), expected(models["tree"], 3000)
    assert [r.label for r in out] == logistic[:switch_at] + tree[switch_at:]
