"""`flow new` and `flow completion`, driven through the command line as a user drives them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = str(Path(sys.executable).with_name("flow"))
PYTEST = str(Path(sys.executable).with_name("pytest"))


def flow(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_a_new_project_verifies_runs_and_passes_its_tests_with_plain_pytest(
    tmp_path: Path,
) -> None:
    made = flow("new", "my-shop", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "my-shop"
    assert "created the project 'my-shop' in my-shop" in made.stdout
    expected = {
        "my_shop/__init__.py",
        "my_shop/streamlets.py",
        "blueprint.yaml",
        "tests/test_streamlets.py",
        "data/orders.jsonl",
        "pyproject.toml",
        "requirements.txt",
        "README.md",
        "Dockerfile",
        ".dockerignore",
        ".gitignore",
    }
    written = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    assert expected <= written
    assert any(p.startswith("wheels/streamlets-") and p.endswith(".whl") for p in written)

    verified = flow("verify", "blueprint.yaml", cwd=project)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    ran = flow("run-local", "blueprint.yaml", "-q", cwd=project)
    assert ran.returncode == 0, ran.stderr
    invoices = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(i["id"], i["tax"]) for i in invoices] == [("o-1", 24.0), ("o-2", 7.1), ("o-3", 1.6)]

    # Plain `pytest` (not `python -m pytest`) in the project: it imports my_shop/ by itself.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tested = subprocess.run(
        [PYTEST, "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout


def test_new_writes_into_an_existing_directory_but_never_over_a_file(tmp_path: Path) -> None:
    (tmp_path / ".venv").mkdir()  # what a user has made already
    made = flow("new", "shop", ".", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "shop" / "streamlets.py").exists()
    assert "next: flow run-local blueprint.yaml && pytest" in made.stdout
    again = flow("new", "shop", ".", cwd=tmp_path)
    assert again.returncode == 1
    assert "already has" in again.stderr and "nothing was written" in again.stderr


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("Shop", "cannot name an application"),
        ("1shop", "is not one; start the name with a letter"),
        ("json", "would hide the module of that name"),
        ("streamlets", "would hide the module of that name"),
    ],
)
def test_new_refuses_a_name_that_would_not_work(name: str, said: str, tmp_path: Path) -> None:
    made = flow("new", name, cwd=tmp_path)
    assert made.returncode == 2
    assert said in made.stderr
    assert not any(tmp_path.iterdir())


def test_bash_completes_commands_and_options_with_the_script_flow_prints(
    tmp_path: Path,
) -> None:
    script = flow("completion", "bash", cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    (tmp_path / "flow-completion.bash").write_text(script.stdout)
    env = {**os.environ, "PATH": f"{Path(FLOW).parent}{os.pathsep}{os.environ['PATH']}"}

    def complete(words: str) -> list[str]:
        line = (
            f"source flow-completion.bash; COMP_WORDS=({words}); "
            "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _flow_completion flow; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(
            [bash, "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert "dead-letters" in complete("flow dead")
    assert complete("flow run-lo") == ["run-local"]
    assert "--max-dead-letter-ratio" in complete("flow run-local --max")


@pytest.mark.parametrize(("shell", "found"), [("zsh", "#compdef flow"), ("fish", "complete")])
def test_completion_scripts_of_other_shells(shell: str, found: str, tmp_path: Path) -> None:
    script = flow("completion", shell, cwd=tmp_path)
    assert script.returncode == 0 and found in script.stdout
    assert "_FLOW_COMPLETE" in script.stdout
    assert flow("completion", "tcsh", cwd=tmp_path).returncode == 2
