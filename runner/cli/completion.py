"""`flow completion SHELL`: the script that makes a shell complete flow's commands."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ["COMPLETE_VAR", "completion_command"]

#: The environment variable through which the shell asks ``flow`` for completions.
COMPLETE_VAR = "_FLOW_COMPLETE"
_SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(_SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the completion script of SHELL (bash, zsh or fish) for flow.

    Completes commands, options, their choices and file names. Load it in your shell's
    start-up file, e.g. for bash: eval "$(flow completion bash)" in ~/.bashrc, or save it:
    flow completion bash > ~/.local/share/bash-completion/completions/flow
    """
    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None  # every choice has a class in click
    script = cls(root.command, {}, "flow", COMPLETE_VAR).source()
    click.echo(script)
