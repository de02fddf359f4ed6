"""`flow run-local`: run a verified blueprint in-process with progress, signals and a summary."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
from rich.console import Console

from blueprint import VerifiedBlueprint
from runner.core import StreamletFailed
from runner.local import LocalRunner, RunResult, default_run_dir
from runner.progress import Progress, summary_table
from runner.stop_signals import stop_signals

__all__ = ["run_local"]

log = logging.getLogger("streamlets.runner")


async def _run(runner: LocalRunner, quiet: bool) -> RunResult:
    main = asyncio.current_task()

    def drain(name: str) -> None:
        click.echo(
            f"\n{name}: stopping the sources and draining (press Ctrl-C again to stop at once)",
            err=True,
        )
        runner.stop()

    def abort() -> None:
        if main is not None:
            main.cancel()

    with stop_signals(drain, abort):
        progress = None if quiet else asyncio.create_task(Progress(runner.snapshot).run())
        try:
            return await runner.run()
        finally:
            if progress is not None:
                progress.cancel()
                await asyncio.gather(progress, return_exceptions=True)


def run_local(
    blueprint: VerifiedBlueprint, *, quiet: bool = False, run_dir: str | None = None
) -> int:
    """Run ``blueprint`` in-process; returns the exit status (0 ok, 1 failed, 130 aborted)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    directory = Path(run_dir) if run_dir else default_run_dir(blueprint)
    runner = LocalRunner(blueprint, run_dir=directory, keep_dead_letters=False)
    try:
        result = asyncio.run(_run(runner, quiet))
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("aborted: stopped at once; records in flight were not drained", err=True)
        return 130
    console = Console(file=sys.stderr)
    if not quiet:
        state = "stopped" if result.stopped else "finished"
        title = f"{blueprint.name}: {state} in {result.duration:.1f} s"
        console.print(summary_table(result.stats, result.duration, title))
    if result.dead_letter_file is not None:
        click.echo(
            f"{runner.dead_letter_count} record(s) went to dead letters: {result.dead_letter_file}",
            err=True,
        )
    if result.error is not None:
        if isinstance(result.error, StreamletFailed):
            click.echo(click.style(f"error: {result.error}", fg="red"), err=True)
        else:
            error = result.error
            click.echo(
                click.style(f"error: the run failed: {type(error).__name__}: {error}", fg="red"),
                err=True,
            )
            log.debug("run failed", exc_info=error)
        return 1
    return 0
