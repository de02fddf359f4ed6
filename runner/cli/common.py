"""What every ``flow`` command shares: the blueprint argument, ``--config``/``--set``,
verify-or-exit and how problems are printed."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from blueprint import (
    ConfigOverrides,
    OverrideSyntaxError,
    Problem,
    Severity,
    Verification,
    VerifiedBlueprint,
    load_overrides,
    verify,
)
from streamlets.errors import StreamletsError

__all__ = [
    "BLUEPRINT",
    "config_options",
    "fail_with_problems",
    "format_problem",
    "load_overrides_or_fail",
    "show_problems",
    "summary",
    "usage_error",
    "verified_or_exit",
    "verify_path",
]

F = TypeVar("F", bound=Callable[..., Any])

_COLOURS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}

#: The BLUEPRINT argument of every command that reads one.
BLUEPRINT = click.Path(exists=True, dir_okay=False, readable=True)

_CONFIG_HELP = "YAML file of config overrides: 'streamlet-name: {key: value}'."


def config_options(config_help: str = _CONFIG_HELP) -> Callable[[F], F]:
    """``--config FILE`` and ``--set NAME.KEY=VALUE``, as every blueprint command takes them
    (``config_help`` says what else the command reads from the file)."""

    def decorate(func: F) -> F:
        func = click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="NAME.KEY=VALUE",
            help="Override one config value of one streamlet (repeatable); VALUE is read as YAML.",
        )(func)
        return click.option(
            "--config",
            "config_file",
            type=click.Path(exists=True, dir_okay=False, readable=True),
            help=config_help,
        )(func)

    return decorate


def usage_error(exc: StreamletsError) -> click.UsageError:
    """A settings error of the runner as the usage error (exit 2) the command ends with."""
    return click.UsageError(str(exc))


def load_overrides_or_fail(config_file: str | None, sets: Sequence[str]) -> ConfigOverrides:
    """The ``--config`` file and ``--set`` values; a usage error when they cannot be read."""
    try:
        return load_overrides(config_file, sets)
    except OverrideSyntaxError as exc:
        raise click.BadParameter(str(exc), param_hint="'--set'") from None
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {exc.filename}: {exc.strerror}", param_hint="'--config'"
        ) from None


def verify_path(path: str, overrides: ConfigOverrides) -> Verification:
    """Verify the blueprint at ``path``; a usage error when the file cannot be read."""
    try:
        return verify(path, overrides)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="'BLUEPRINT'"
        ) from None


def format_problem(problem: Problem) -> str:
    """One problem as a compiler-style line, coloured when the output is a terminal."""
    where = f"{problem.location}: " if problem.location else ""
    severity = click.style(f"{problem.severity.value}", fg=_COLOURS[problem.severity], bold=True)
    code = click.style(f"[{problem.code}]", fg=_COLOURS[problem.severity])
    hint = click.style(f" (hint: {problem.hint})", dim=True) if problem.hint else ""
    return f"{click.style(where, bold=True)}{severity}{code} {problem.message}{hint}"


def summary(problems: Sequence[Problem]) -> str:
    """``"2 errors, 1 warning"``: how many problems of each severity."""
    counts = Counter(p.severity for p in problems)
    parts = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.NOTE):
        n = counts.get(severity, 0)
        if n:
            parts.append(f"{n} {severity.value}{'s' if n != 1 else ''}")
    return ", ".join(parts)


def show_problems(problems: Iterable[Problem], severities: Iterable[Severity]) -> None:
    """Print the problems of the given severities on standard error."""
    wanted = set(severities)
    for problem in problems:
        if problem.severity in wanted:
            click.echo(format_problem(problem), err=True)


def fail_with_problems(problems: Sequence[Problem]) -> NoReturn:
    """Print every problem and exit 1: the blueprint is invalid."""
    for problem in problems:
        click.echo(format_problem(problem), err=True)
    click.echo(
        click.style(f"blueprint is invalid: {summary(problems)}", fg="red", bold=True), err=True
    )
    sys.exit(1)


def verified_or_exit(
    path: str,
    overrides: ConfigOverrides,
    *,
    show: Iterable[Severity] = (Severity.WARNING,),
) -> VerifiedBlueprint:
    """The verified blueprint at ``path``, its problems of the ``show`` severities printed;
    when it has errors, every problem is printed and the command exits 1."""
    verification = verify_path(path, overrides)
    if verification.blueprint is None:
        fail_with_problems(verification.problems)
    show_problems(verification.problems, show)
    return verification.blueprint
