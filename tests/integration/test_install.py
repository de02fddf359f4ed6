"""A new user's first steps, in fresh virtualenvs outside the clone: the README's install
commands, mypy --strict on every README snippet, the image's install steps (a generated
Dockerfile's, run without docker), and the wheel `make dist` builds.

Each test installs the framework from scratch (about a minute: the packages come from the
same index and pip cache as the clone's .venv).
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.venvs import ROOT, Venv, fresh_venv

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
FLOW = str(Path(sys.executable).with_name("flow"))


def _readme_block_after(heading: str) -> str:
    """The first fenced block after ``heading`` in the README."""
    text = README.read_text()
    start = text.index(heading)
    match = re.search(r"^```[a-z]*\n(.*?)^```", text[start:], re.S | re.M)
    assert match is not None, f"no code block after {heading!r}"
    return match.group(1)


def _python_snippets() -> list[str]:
    """Every ```python block of the README, dedented (blocks inside list items too)."""
    found = re.findall(r"^( *)```python\n(.*?)^\1```", README.read_text(), re.S | re.M)
    return [textwrap.dedent(body) for _, body in found]


# What the snippets use without defining it: the types of the README's prose.
CONTEXT = """
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from streamlets import Inlet, Meta, Outlet, Routed, Streamlet


class Reading(BaseModel):
    sensor_id: str
    temperature: float
    at: datetime | None = None


class Alert(BaseModel):
    sensor_id: str
    temperature: float
    limit: float


class Invalid(BaseModel):
    sensor_id: str
    reason: str


class Order(BaseModel):
    id: str
    customer: str
    amount: float


class Customer(BaseModel):
    id: str
    name: str


class EnrichedOrder(BaseModel):
    id: str
    customer_name: str
    amount: float


class Transaction(BaseModel):
    id: str
    amount: float
    age: float


class ScoredTransaction(BaseModel):
    id: str
    fraud: bool
    model: str
    version: str | None = None


class Payment(BaseModel):
    customer: str
    amount: float


class Total(BaseModel):
    customer: str | None
    total: float


class Stats(BaseModel):
    sensor_id: str
    minute: datetime
    avg: float | None
    hi: float | None
    n: int


class Seen(BaseModel):
    count: int
"""


def _unbound_names(code: str) -> set[str]:
    """Names ``code`` reads that it neither defines nor imports (nor are builtins)."""
    tree = ast.parse(code)
    bound: set[str] = set(dir(builtins))
    loaded: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return loaded - bound


def _snippet_modules(directory: Path) -> list[Path]:
    """Each README snippet as a module of ``directory``, importing from the context what it
    uses without defining."""
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    (directory / "readme_context.py").write_text(CONTEXT)
    # name -> the import that gives it: the context's classes, or what the context imports
    source: dict[str, str] = {}
    for node in ast.parse(CONTEXT).body:
        if isinstance(node, ast.ClassDef):
            source[node.name] = f"from readme_snippets.readme_context import {node.name}"
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                source[alias.asname or alias.name] = f"from {node.module} import {alias.name}"
    paths = []
    for n, code in enumerate(_python_snippets(), 1):
        missing = sorted(_unbound_names(code))
        unknown = [name for name in missing if name not in source]
        assert not unknown, f"README snippet {n} uses {unknown}, which the test's context lacks"
        head = "from __future__ import annotations\n\n"
        head += "".join(f"{source[name]}\n" for name in missing) + "\n"
        path = directory / f"snippet_{n}.py"
        path.write_text(head + code)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Venv]:
    """The README's install commands, run as they are written (with the clone's path for
    /path/to/streamlets) in an empty directory outside the clone."""
    base = tmp_path_factory.mktemp("user")
    commands = _readme_block_after("## Your own project")
    script = "set -euo pipefail\n" + commands.replace("/path/to/streamlets", shlex.quote(str(ROOT)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        ["bash", "-c", script], cwd=base, env=env, capture_output=True, text=True,
        timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    shop = base / "shop"
    assert "2 passed" in done.stdout  # plain pytest ran the skeleton's tests
    assert "Success: no issues found" in done.stdout  # mypy --strict
    return shop, Venv(shop / ".venv")


def test_the_framework_is_installed_from_the_clone_not_imported_from_it(
    project: tuple[Path, Venv],
) -> None:
    shop, venv = project
    where = venv.run(["python", "-c", "import streamlets; print(streamlets.__file__)"], cwd=shop)
    assert where.stdout.strip().startswith(str(venv.path)), where.stdout


def test_every_readme_snippet_passes_mypy_strict_outside_the_clone(
    project: tuple[Path, Venv],
) -> None:
    shop, venv = project
    snippets = _snippet_modules(shop / "readme_snippets")
    assert any("meta: Meta" in p.read_text() for p in snippets)  # a handler with Meta
    assert any(".emit(" in p.read_text() for p in snippets)  # a router
    # The testkit example imports the sensors example's module, as its README says.
    shutil.copytree(ROOT / "examples" / "sensors" / "sensors", shop / "sensors")
    done = venv.run(
        ["mypy", "--strict", *[str(p.relative_to(shop)) for p in snippets]], cwd=shop, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _dockerfile_steps(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of each line of a Dockerfile, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    steps = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def test_the_dockerfile_install_steps_give_an_image_that_runs_the_app(tmp_path: Path) -> None:
    """`flow new`'s Dockerfile, step by step, in a fresh venv: a directory stands in for
    the image's filesystem (the container's absolute paths are mapped into it)."""
    made = subprocess.run(
        [FLOW, "new", "shop"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    context = tmp_path / "shop"
    # The app needs a package: written down, and the Dockerfile made again, as a user does.
    (context / "requirements.txt").write_text("# what the app needs\nsix\n")
    again = subprocess.run(
        [FLOW, "dockerfile", "blueprint.yaml", "-o", "Dockerfile"],
        cwd=context, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "RUN pip install -r /app/requirements.txt" in (context / "Dockerfile").read_text()
    image = tmp_path / "image"
    venv = fresh_venv(image / "venv")

    def mapped(path: str) -> Path:
        return image / path.lstrip("/")

    def rewrite(command: str) -> str:
        return re.sub(r"(?<![\w.])(/(?:app|tmp|opt)\S*)", lambda m: str(mapped(m[1])), command)

    env: dict[str, str] = {}
    workdir = image
    seen = set()
    for instruction, args in _dockerfile_steps((context / "Dockerfile").read_text()):
        seen.add(instruction)
        if instruction == "COPY":
            *sources, target = args.split()
            destination = mapped(target)
            for source in sources:
                src = context / source
                if src.is_dir():
                    shutil.copytree(
                        src, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".venv")
                    )
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, destination / src.name)
        elif instruction == "RUN" and args.startswith("pip install"):
            for part in rewrite(args).split("&&"):
                words = shlex.split(part)
                if words[:2] == ["pip", "install"]:
                    venv.pip_install(*words[2:], cwd=workdir)
                elif words[:2] == ["rm", "-rf"]:
                    shutil.rmtree(words[2], ignore_errors=True)
                else:
                    raise AssertionError(f"a step this test does not know: {part}")
        elif instruction == "RUN":
            assert args.startswith("groupadd"), f"a step this test does not know: {args}"
        elif instruction == "WORKDIR":
            workdir = mapped(args)
        elif instruction == "ENV":
            for key, value in (pair.split("=", 1) for pair in shlex.split(args)):
                env[key] = rewrite(value)
        elif instruction == "ENTRYPOINT":
            assert args == '["flow"]'
            assert venv.bin("flow").exists()
    assert {"COPY", "RUN", "ENV", "WORKDIR", "ENTRYPOINT"} <= seen
    env.pop("HOME", None)
    # The framework comes from the wheel (not the clone), the app from /app.
    which = venv.run(
        ["python", "-c", "import streamlets, shop.streamlets, six; print(streamlets.__file__)"],
        cwd=workdir,
        **env,
    )
    assert which.stdout.strip().startswith(str(venv.path)), which.stdout
    verified = venv.run(["flow", "verify", "blueprint.yaml"], cwd=workdir, **env)
    assert "blueprint is valid" in verified.stdout
    ran = venv.run(["flow", "run-local", "blueprint.yaml", "-q"], cwd=workdir, **env)
    assert len(ran.stdout.splitlines()) == 3, ran.stdout  # the console sink's invoices


def test_make_dist_builds_the_wheel_the_dockerfile_would_carry(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    made = subprocess.run(
        ["make", "dist", f"DIST={dist}"], cwd=ROOT, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Warning" not in made.stderr and "deprecated" not in made.stderr, made.stderr
    (built,) = dist.glob("streamlets-*-py3-none-any.whl")
    ours = subprocess.run(
        [FLOW, "new", "shop"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert ours.returncode == 0, ours.stderr
    (carried,) = (tmp_path / "shop" / "wheels").glob("*.whl")
    assert carried.name == built.name

    def modules(path: Path) -> set[str]:
        with zipfile.ZipFile(path) as wheel:
            return {n for n in wheel.namelist() if not n.endswith(("RECORD", "WHEEL"))}

    assert modules(carried) == modules(built)
