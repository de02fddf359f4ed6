"""`flow new NAME [DIRECTORY]`: a project skeleton that verifies, runs, tests and builds."""

from __future__ import annotations

import keyword
import os
import sys
from pathlib import Path

import click

from blueprint.names import dns_label_problem, suggest_dns_label
from runner.cli.skeleton import SKELETON
from runner.k8s.dockerfile import WHEELS_DIR, dockerfile, plan_image
from runner.k8s.framework_wheel import FrameworkWheelError, write_framework_wheel

__all__ = ["new_command", "package_name"]

#: Package names a project must not take: they would hide the framework or a module of
#: the standard library from its own imports.
_TAKEN = frozenset({"streamlets", "blueprint", "runner", "tests", "test", "data"})


def package_name(app: str) -> str:
    """The Python package of the application ``app``: its name with ``-`` as ``_``.

    Raises :class:`click.BadParameter` when ``app`` is not a DNS-1123 label (an application
    name) or its package would not be importable or would hide another module.
    """
    problem = dns_label_problem(app)
    if problem is not None:
        raise click.BadParameter(
            f"{app!r} cannot name an application: {problem} (e.g. {suggest_dns_label(app)!r})",
            param_hint="'NAME'",
        )
    package = app.replace("-", "_")
    if not package.isidentifier() or keyword.iskeyword(package):
        raise click.BadParameter(
            f"{app!r} makes the Python package name {package!r}, which is not one; "
            "start the name with a letter",
            param_hint="'NAME'",
        )
    if package in _TAKEN or package in sys.stdlib_module_names:
        raise click.BadParameter(
            f"{app!r} makes the package {package!r}, which would hide the module of that "
            f"name; pick another, e.g. {f'{app}-app'!r}",
            param_hint="'NAME'",
        )
    return package


@click.command("new")
@click.argument("name")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def new_command(name: str, directory: str | None) -> None:
    """Create a project for the application NAME in DIRECTORY (default: ./NAME).

    It holds a streamlet with its record types (NAME/streamlets.py, with '-' as '_'), a
    blueprint that runs it between a file source and a console sink, a test with
    runner.testkit that plain 'pytest' runs, tool settings (pytest, mypy --strict) in
    pyproject.toml, a Dockerfile and the framework's wheel it installs. DIRECTORY may exist
    (say '.' for the current one) as long as none of these files is in it yet.
    """
    package = package_name(name)
    root = Path(directory if directory is not None else name)
    files = {
        path.replace("$package", package): template.substitute(app=name, package=package)
        for path, template in SKELETON.items()
    }
    existing = sorted(p for p in [*files, "Dockerfile", WHEELS_DIR] if (root / p).exists())
    if existing:
        raise click.ClickException(
            f"{root} already has {', '.join(existing)}; nothing was written (flow new makes "
            "a new project: pick a new or an empty directory)"
        )
    try:
        for path, text in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        plan = plan_image(name, str(root), str(root))
        if plan.framework_wheel is not None:
            write_framework_wheel(root / WHEELS_DIR)
        (root / "Dockerfile").write_text(dockerfile(plan), encoding="utf-8")
    except FrameworkWheelError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename}: {exc.strerror}") from None
    where = os.path.relpath(root)
    cd = "" if where == "." else f"cd {where} && "
    click.echo(
        f"created the project '{name}' in {where}: {package}/streamlets.py, blueprint.yaml, "
        f"tests/, Dockerfile\nnext: {cd}flow run-local blueprint.yaml && pytest"
    )
