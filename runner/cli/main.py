"""The ``flow`` command group: every command module is added here, and only here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from runner.cli.completion import completion_command
from runner.cli.dead_letters import dead_letters_command
from runner.cli.graph import graph_command
from runner.cli.k8s import COMMANDS as KUBERNETES_COMMANDS
from runner.cli.new import new_command
from runner.cli.run_local import run_local_command
from runner.cli.run_streamlet import run_streamlet_command
from runner.cli.ui import ui_command
from runner.cli.verify import verify_command
from streamlets import __version__

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(
    __version__, "--version", "-V", prog_name="flow", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Build, verify and run streaming applications made of typed streamlets.

    A blueprint file names the streamlets of an application and the Kafka topics that
    connect them. Start with 'flow verify BLUEPRINT'.
    """


for _command in (
    new_command,
    verify_command,
    graph_command,
    run_local_command,
    run_streamlet_command,
    ui_command,
    dead_letters_command,
    *KUBERNETES_COMMANDS,
    completion_command,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> Any:
    """Console-script entry point of ``flow``."""
    return cli.main(args=list(argv) if argv is not None else None, prog_name="flow")
