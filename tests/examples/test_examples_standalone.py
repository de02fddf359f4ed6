"""The examples are what a user copies into a project of their own: they must not need
this repository's tests, and their helper scripts must fail clearly."""

from __future__ import annotations

import ast
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FLOW = str(Path(sys.executable).with_name("flow"))


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_no_example_imports_the_repositorys_tests_or_benchmarks() -> None:
    modules = sorted(EXAMPLES.rglob("*.py"))
    assert modules
    for path in modules:
        assert not _imported(path) & {"tests", "benchmarks"}, path


def test_the_mlserver_helper_of_both_model_examples_is_one_file() -> None:
    first = (EXAMPLES / "model-serving" / "mlserver_local.py").read_text()
    assert (EXAMPLES / "batch-scoring" / "mlserver_local.py").read_text() == first


@pytest.mark.parametrize(
    ("script", "args"),
    [("model-serving/serve.py", ["--port"]), ("batch-scoring/prepare.py", ["--serve", "--port"])],
)
def test_a_model_server_script_on_a_taken_port_fails_at_once(
    script: str, args: list[str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        copy = tmp_path / "example"
        shutil.copytree(EXAMPLES / script.split("/", maxsplit=1)[0], copy)
        proc = subprocess.run(
            [sys.executable, str(copy / script.split("/")[1]), *args, str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: port {port} on 127.0.0.1 is taken" in proc.stderr
    assert "serves" not in proc.stdout  # it never says it serves


def test_the_model_serving_example_verifies_and_writes_its_models_outside_the_repository(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "model-serving"
    shutil.copytree(
        EXAMPLES / "model-serving", copy, ignore=shutil.ignore_patterns("models", "output")
    )
    done = subprocess.run(
        [sys.executable, "serve.py", "--embedded"], cwd=copy, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (copy / "models" / "iris-v1.joblib").exists()
    verified = subprocess.run(
        [FLOW, "verify", "blueprint.yaml"], cwd=copy, capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("example", ["sensors", "fraud-counters", "sensor-stats"])
def test_an_example_copied_out_of_the_repository_verifies_and_runs(
    example: str, tmp_path: Path
) -> None:
    """Its blueprint finds its package and its data next to it, wherever it is."""
    copy = tmp_path / example
    shutil.copytree(EXAMPLES / example, copy, ignore=shutil.ignore_patterns("output"))
    run = ["run-local", "blueprint.yaml", "-q", "--run-dir", str(tmp_path / "run")]
    for command in (["verify", "blueprint.yaml"], run):
        done = subprocess.run(
            [FLOW, *command], cwd=copy, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    outputs = list((copy / "output").glob("*.jsonl"))
    assert outputs and all(path.read_text().strip() for path in outputs)
