"""`flow graph`: draw a verified blueprint as Mermaid, Graphviz DOT or SVG."""

from __future__ import annotations

import shutil
import subprocess
import sys

import click

from blueprint.graph import to_dot, to_mermaid
from runner.cli.common import BLUEPRINT, config_options, load_overrides_or_fail, verified_or_exit

__all__ = ["graph_command"]


@click.command("graph")
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
@config_options()
def graph_command(
    blueprint: str,
    output_format: str,
    output: str | None,
    classes: bool,
    config_file: str | None,
    sets: tuple[str, ...],
) -> None:
    """Draw a verified blueprint: streamlets as boxes, topics between them."""
    result = verified_or_exit(blueprint, load_overrides_or_fail(config_file, sets), show=())
    names = {n: s.cls.__name__ for n, s in result.streamlets.items()} if classes else None
    if output_format == "mermaid":
        text: str | bytes = to_mermaid(result.graph, names)
    else:
        text = to_dot(result.graph, names)
        if output_format == "svg":
            text = _render_svg(text)
    _write(text, output)


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
