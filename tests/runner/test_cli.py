"""The `flow` command line, driven as a user drives it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from blueprint import PROBLEM_CODES
from runner.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sensors" / "blueprint.yaml"
BROKEN = ROOT / "examples" / "sensors" / "broken.yaml"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_verify_example_is_valid() -> None:
    code, out = run("verify", str(EXAMPLE))
    assert code == 0, out
    assert "sensor-alerts: 3 streamlets, 2 topics, blueprint is valid" in out
    assert "\x1b[" not in out  # no colour when not on a terminal


def test_verify_broken_example_reports_everything() -> None:
    code, out = run("verify", str(BROKEN))
    assert code == 1
    lines = [line for line in out.splitlines() if "error[" in line]
    found = {re.search(r"error\[([a-z-]+)\]", line).group(1) for line in lines}  # type: ignore[union-attr]
    expected = {
        "invalid-name",
        "invalid-config",
        "invalid-replicas",
        "class-not-found",
        "not-a-streamlet",
        "wrong-direction",
        "unknown-codec",
        "unknown-port",
        "unknown-key",
        "empty-topic",
        "incompatible-schema",
    }
    assert expected <= found, out
    assert all(re.match(rf"{re.escape(str(BROKEN))}:\d+:\d+: error\[", line) for line in lines)
    assert "blueprint is invalid" in out


def test_verify_json() -> None:
    code, out = run("verify", str(BROKEN), "--format", "json")
    assert code == 1
    problems = json.loads(out)
    assert problems and set(problems[0]) == {"code", "severity", "message", "location", "hint"}
    assert {p["code"] for p in problems} <= set(PROBLEM_CODES)
    code, out = run("verify", str(EXAMPLE), "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("verify", str(tmp_path / "missing.yaml"))[0] == 2
    assert run("verify", str(tmp_path))[0] == 2
    assert run("verify", str(EXAMPLE), "--format", "xml")[0] == 2
    code, out = run("verify", str(EXAMPLE), "--set", "threshold")
    assert code == 2 and "streamlet.key=value" in out
    assert run("verify")[0] == 2


def test_set_and_config_overrides(tmp_path: Path) -> None:
    assert run("verify", str(EXAMPLE), "--set", "threshold.limit=25")[0] == 0
    code, out = run("verify", str(EXAMPLE), "--set", "threshold.limit=warm")
    assert code == 1 and "--set threshold.limit=warm" in out and "invalid-config" in out
    config = tmp_path / "local.yaml"
    config.write_text("threshold:\n  limit: [1]\n")
    code, out = run("verify", str(EXAMPLE), "--config", str(config))
    assert code == 1 and f"{config}:2:10" in out


def test_graph_formats(tmp_path: Path) -> None:
    code, out = run("graph", str(EXAMPLE))
    assert code == 0
    assert out.startswith("flowchart LR")
    assert 's_threshold["threshold x2"]' in out
    assert 's_ingest -- "out" --> t_readings' in out
    code, out = run("graph", str(EXAMPLE), "--format", "dot", "--classes")
    assert code == 0 and out.startswith('digraph "sensor-alerts"') and "Threshold" in out
    target = tmp_path / "g.mmd"
    code, _ = run("graph", str(EXAMPLE), "-o", str(target))
    assert code == 0 and target.read_text().startswith("flowchart LR")
    code, out = run("graph", str(BROKEN))
    assert code == 1 and "error[" in out


def test_graph_svg(tmp_path: Path) -> None:
    code, out = run("graph", str(EXAMPLE), "--format", "svg", "-o", str(tmp_path / "g.svg"))
    if shutil.which("dot"):
        assert code == 0 and "<svg" in (tmp_path / "g.svg").read_text()
    else:
        assert code == 1 and "Graphviz" in out


def test_version_and_help() -> None:
    code, out = run("--version")
    assert code == 0 and out.startswith("flow ")
    for args in ([], ["verify"], ["graph"]):
        code, out = run(*args, "--help")
        assert code == 0 and "Usage:" in out


def test_console_script_runs_as_a_user_runs_it() -> None:
    flow = Path(sys.executable).with_name("flow")
    if not flow.exists():
        pytest.skip("the flow console script is not installed in this environment")
    proc = subprocess.run(
        [str(flow), "verify", str(EXAMPLE)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [str(flow), "verify", str(BROKEN)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr


def test_readme_documents_every_problem_code() -> None:
    readme = (ROOT / "README.md").read_text()
    for code, (severity, _) in PROBLEM_CODES.items():
        assert f"| `{code}` | {severity.value} |" in readme, code
    first = [line for line in readme.splitlines() if line.strip()][:4]
    assert first[2].startswith("make demo") and first[3].startswith("make test")
