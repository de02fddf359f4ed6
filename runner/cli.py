"""The ``flow`` command line: verify, graph (and, as they land, run and deploy) blueprints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from blueprint import (
    ConfigOverrides,
    OverrideSyntaxError,
    Problem,
    Severity,
    VerifiedBlueprint,
    load_overrides,
    verify,
)
from blueprint.graph import to_dot, to_mermaid
from streamlets import __version__

__all__ = ["cli", "main"]

_COLOURS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}

BLUEPRINT = click.Path(exists=True, dir_okay=False, readable=True)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    help="YAML file of config overrides: 'streamlet-name: {key: value}'.",
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Override one config value of one streamlet (repeatable); VALUE is read as YAML.",
)


def _overrides(config_file: str | None, sets: Sequence[str]) -> ConfigOverrides:
    try:
        return load_overrides(config_file, sets)
    except OverrideSyntaxError as exc:
        raise click.BadParameter(str(exc), param_hint="'--set'") from None
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {exc.filename}: {exc.strerror}", param_hint="'--config'"
        ) from None


def _verify(path: str, overrides: ConfigOverrides) -> VerifiedBlueprint | tuple[Problem, ...]:
    try:
        return verify(path, overrides)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="'BLUEPRINT'"
        ) from None


def _format_problem(problem: Problem) -> str:
    where = f"{problem.location}: " if problem.location else ""
    severity = click.style(f"{problem.severity.value}", fg=_COLOURS[problem.severity], bold=True)
    code = click.style(f"[{problem.code}]", fg=_COLOURS[problem.severity])
    hint = click.style(f" (hint: {problem.hint})", dim=True) if problem.hint else ""
    return f"{click.style(where, bold=True)}{severity}{code} {problem.message}{hint}"


def _summary(problems: Sequence[Problem]) -> str:
    counts = Counter(p.severity for p in problems)
    parts = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.NOTE):
        n = counts.get(severity, 0)
        if n:
            parts.append(f"{n} {severity.value}{'s' if n != 1 else ''}")
    return ", ".join(parts)


def _fail_with_problems(problems: Sequence[Problem]) -> NoReturn:
    for problem in problems:
        click.echo(_format_problem(problem), err=True)
    click.echo(
        click.style(f"blueprint is invalid: {_summary(problems)}", fg="red", bold=True), err=True
    )
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(
    __version__, "--version", "-V", prog_name="flow", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Build, verify and run streaming applications made of typed streamlets.

    A blueprint file names the streamlets of an application and the Kafka topics that
    connect them. Start with 'flow verify BLUEPRINT'.
    """


@cli.command("verify")
@click.argument("blueprint", type=BLUEPRINT)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Problems as compiler-style lines or as a JSON list.",
)
@config_option
@set_option
def verify_command(
    blueprint: str, output_format: str, config_file: str | None, sets: tuple[str, ...]
) -> None:
    """Check a blueprint and print every problem found.

    Checks that the YAML is well formed, that every streamlet class imports, that every
    port exists and is used in the right direction, that every inlet is connected, that
    each consumer can read what each producer of its topic writes (Avro schema
    resolution) and that every config validates.

    Exit status: 0 when the blueprint is valid (warnings and notes allowed), 1 when it has
    errors, 2 for usage errors such as a missing file.
    """
    result = _verify(blueprint, _overrides(config_file, sets))
    problems = result.problems if isinstance(result, VerifiedBlueprint) else result
    if output_format == "json":
        click.echo(json.dumps([p.to_dict() for p in problems], indent=2, ensure_ascii=False))
        sys.exit(0 if isinstance(result, VerifiedBlueprint) else 1)
    for problem in problems:
        click.echo(_format_problem(problem))
    if isinstance(result, VerifiedBlueprint):
        extra = f" ({_summary(problems)})" if problems else ""
        n_s, n_t = len(result.streamlets), len(result.topics)
        click.echo(
            click.style("ok", fg="green", bold=True)
            + f" {result.name}: {n_s} streamlet{'s' if n_s != 1 else ''}, "
            f"{n_t} topic{'s' if n_t != 1 else ''}, blueprint is valid{extra}"
        )
        return
    click.echo(click.style(f"blueprint is invalid: {_summary(problems)}", fg="red", bold=True))
    sys.exit(1)


@cli.command("graph")
@click.argument("blueprint", type=BLUEPRINT)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
    help="Mermaid flowchart, Graphviz DOT, or SVG (rendered by Graphviz 'dot').",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@click.option("--classes/--no-classes", default=False, help="Show each streamlet's class.")
@config_option
@set_option
def graph_command(
    blueprint: str,
    output_format: str,
    output: str | None,
    classes: bool,
    config_file: str | None,
    sets: tuple[str, ...],
) -> None:
    """Draw a verified blueprint: streamlets as boxes, topics between them."""
    result = _verify(blueprint, _overrides(config_file, sets))
    if not isinstance(result, VerifiedBlueprint):
        _fail_with_problems(result)
    names = {n: s.cls.__name__ for n, s in result.streamlets.items()} if classes else None
    if output_format == "mermaid":
        text: str | bytes = to_mermaid(result.graph, names)
    else:
        text = to_dot(result.graph, names)
        if output_format == "svg":
            text = _render_svg(text)
    _write(text, output)


@cli.command("run-local")
@click.argument("blueprint", type=BLUEPRINT)
@config_option
@set_option
@click.option("-q", "--quiet", is_flag=True, help="No live progress and no summary table.")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, writable=True),
    help="Directory for this run's files (dead letters). Default: ./runs/APP-TIMESTAMP.",
)
@click.option(
    "--kafka",
    is_flag=True,
    help="Run one 'flow run-streamlet' process per replica against Kafka (an embedded broker "
    "unless --bootstrap is given).",
)
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap servers for --kafka (default: start an embedded broker).",
)
def run_local_command(
    blueprint: str,
    config_file: str | None,
    sets: tuple[str, ...],
    quiet: bool,
    run_dir: str | None,
    kafka: bool,
    bootstrap: str | None,
) -> None:
    """Run a blueprint in this process (asyncio, no broker).

    Topics are bounded in-memory channels that encode records with the topic's codec, so
    what passes here passes on Kafka. The run ends with exit status 0 once every bounded
    source has ended and every record has drained. Ctrl-C (or SIGTERM) stops the sources,
    drains what is in flight, runs teardown() and exits 0; a second Ctrl-C stops at once.
    Topics without producers in the blueprint are empty in a local run.

    With --kafka, each streamlet replica runs as its own 'flow run-streamlet' process
    against Kafka (an embedded Tansu broker unless --bootstrap is given); the run ends once
    every bounded source has ended and every consumer group has caught up.
    """
    from runner.run_local import run_local

    overrides = _overrides(config_file, sets)
    result = _verify(blueprint, overrides)
    if not isinstance(result, VerifiedBlueprint):
        _fail_with_problems(result)
    for problem in result.problems:
        if problem.severity is not Severity.NOTE:
            click.echo(_format_problem(problem), err=True)
    if bootstrap and not kafka:
        raise click.UsageError("--bootstrap needs --kafka")
    if kafka:
        from runner.supervisor import run_kafka_command

        sys.exit(
            run_kafka_command(
                result, blueprint, config_file, sets, overrides.sections, bootstrap, quiet, run_dir
            )
        )
    sys.exit(run_local(result, quiet=quiet, run_dir=run_dir))


def _render_svg(dot_source: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise click.ClickException(
            "SVG needs Graphviz's 'dot' program, which is not on PATH; install Graphviz "
            "(e.g. 'apt-get install graphviz') or use '--format dot' or '--format mermaid'"
        )
    proc = subprocess.run(
        [dot, "-Tsvg"], input=dot_source.encode(), capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise click.ClickException(
            f"Graphviz 'dot' failed: {proc.stderr.decode(errors='replace').strip()}"
        )
    return proc.stdout


def _write(text: str | bytes, output: str | None) -> None:
    if output is None:
        if isinstance(text, bytes):
            sys.stdout.buffer.write(text)
            sys.stdout.flush()
        else:
            click.echo(text, nl=False)
        return
    mode = "wb" if isinstance(text, bytes) else "w"
    try:
        with open(output, mode) as fh:
            fh.write(text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}", err=True)


def _add_kafka_commands() -> None:
    from runner.kafka_cli import run_streamlet_command

    cli.add_command(run_streamlet_command)


_add_kafka_commands()


def _add_kubernetes_commands() -> None:
    from runner.k8s_cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_add_kubernetes_commands()


def main(argv: Sequence[str] | None = None) -> Any:
    """Console-script entry point of ``flow``."""
    return cli.main(args=list(argv) if argv is not None else None, prog_name="flow")
