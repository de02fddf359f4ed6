"""`flow run-local`: run a blueprint in-process (progress, signals, a summary), or with
``--kafka`` as one process per replica against Kafka."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from blueprint import VerifiedBlueprint, user_code_path
from runner.cli.common import (
    BLUEPRINT,
    config_options,
    load_overrides_or_fail,
    usage_error,
    verified_or_exit,
)
from runner.cli.run_streamlet import kafka_sections_or_fail
from runner.kafka.options import RunnerSettingsError, runner_section
from runner.kafka.settings import KafkaSettings
from runner.kafka.supervisor import Supervisor, run_supervised
from runner.local import LocalRunner, RunResult
from runner.runtime.dead_letter_summary import (
    DEFAULT_MAX_DEAD_LETTER_RATIO,
    RUNNING_MIN_RECORDS,
    Excess,
    excesses,
    summary_lines,
)
from runner.runtime.errors import StreamletFailed
from runner.runtime.lifecycle import LifecycleError
from runner.runtime.progress import Progress, summary_table
from runner.runtime.run_dir import default_run_dir
from runner.runtime.stop_signals import stop_signals
from runner.ui import LocalSource, UiServer, linger, start_view
from runner.ui.kafka_source import KafkaSource
from runner.ui.launch import UiOptions

__all__ = ["log_level", "run_local", "run_local_command", "ui_address_options", "ui_options"]

log = logging.getLogger("streamlets.runner")


async def _watch_dead_letters(
    runner: LocalRunner, max_ratio: float | None, found: list[Excess]
) -> None:
    """Stop the run once a streamlet has dead-lettered more than ``max_ratio`` of at least
    :data:`RUNNING_MIN_RECORDS` records (what it found goes into ``found``)."""
    while not found:
        await asyncio.sleep(0.25)
        over = excesses(
            runner.blueprint, runner.snapshot(), max_ratio, min_records=RUNNING_MIN_RECORDS
        )
        if over:
            found.extend(over)
            runner.stop()


async def _run(
    runner: LocalRunner, quiet: bool, max_ratio: float | None, found: list[Excess]
) -> RunResult:
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
        watch = asyncio.create_task(_watch_dead_letters(runner, max_ratio, found))
        try:
            return await runner.run()
        finally:
            for task in (progress, watch):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)


def ui_address_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--ui-host`` and ``--ui-port``."""
    command = click.option(
        "--ui-port",
        type=click.IntRange(0, 65535),
        default=0,
        help="Port of the live view. Default: a free port.",
    )(command)
    return click.option(
        "--ui-host",
        default="127.0.0.1",
        show_default=True,
        help="Address the live view listens on (anything but loopback is reachable from "
        "other machines: a warning says so).",
    )(command)


def ui_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--ui``, ``--ui-host`` and ``--ui-port``."""
    return click.option(
        "--ui",
        is_flag=True,
        help="Serve a live view of the run in the browser (the URL is printed); once the run "
        "has finished or failed it stays up until Ctrl-C.",
    )(ui_address_options(command))


def log_level(verbose: int) -> int:
    """The logging level of ``-v`` given ``verbose`` times: warnings, info, debug."""
    return (logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG


def run_local(
    blueprint: VerifiedBlueprint,
    *,
    quiet: bool = False,
    run_dir: str | None = None,
    state_dir: str | None = None,
    max_dead_letter_ratio: float | None = DEFAULT_MAX_DEAD_LETTER_RATIO,
    verbose: int = 0,
    ui: UiOptions | None = None,
    fuse: bool = False,
) -> int:
    """Run ``blueprint`` in-process; returns the exit status (0 ok, 1 failed, 130 aborted).

    With ``fuse``, hops whose both sides have the same pydantic model hand records on as
    objects instead of Avro (see :mod:`runner.runtime.fused`).

    With ``ui``, the live view serves the run while it runs, and once it has ended by
    itself (finished or failed) until Ctrl-C; a run stopped by a signal takes it along.

    With ``state_dir``, keyed state is kept there (RocksDB), so a later run continues it.
    The run fails when a streamlet sends more than ``max_dead_letter_ratio`` of its records
    to dead letters (``None``: never); it stops early when that happens on a streamlet's
    first :data:`RUNNING_MIN_RECORDS` records or later.
    """
    logging.basicConfig(level=log_level(verbose), format="%(levelname)s %(name)s: %(message)s")
    directory = Path(run_dir) if run_dir else default_run_dir(blueprint)
    runner = LocalRunner(
        blueprint,
        run_dir=directory,
        keep_dead_letters=False,
        state_dir=Path(state_dir) if state_dir else None,
        fuse=fuse,
    )
    found: list[Excess] = []
    source = LocalSource(runner) if ui is not None else None
    server = start_view(blueprint, source, ui) if source is not None and ui is not None else None
    try:
        with user_code_path(blueprint.directory):
            result = asyncio.run(_run(runner, quiet, max_dead_letter_ratio, found))
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("aborted: stopped at once; records in flight were not drained", err=True)
        if server is not None:
            server.stop()
        return 130
    status = _report(blueprint, runner, result, quiet, max_dead_letter_ratio, found)
    if source is not None and server is not None:
        source.finished(
            "failed" if status else ("stopped" if result.stopped else "finished"),
            _failure_text(result, excesses(blueprint, result.stats, max_dead_letter_ratio)),
        )
        if result.stopped:  # Ctrl-C or SIGTERM asked for the end: the view goes too
            server.stop()
        else:
            linger(server, "the run has " + ("failed" if status else "ended"))
    return status


def _failure_text(result: RunResult, over: list[Excess]) -> str | None:
    if result.error is not None:
        return f"{type(result.error).__name__}: {result.error}"
    return over[0].message() if over else None


def _report(
    blueprint: VerifiedBlueprint,
    runner: LocalRunner,
    result: RunResult,
    quiet: bool,
    max_dead_letter_ratio: float | None,
    found: list[Excess],
) -> int:
    """The summary of a run on standard error; returns its exit status."""
    console = Console(file=sys.stderr)
    if not quiet:
        state = "stopped" if result.stopped else "finished"
        title = f"{blueprint.name}: {state} in {result.duration:.1f} s"
        console.print(summary_table(result.stats, result.duration, title))
    for line in summary_lines(
        blueprint, result.stats, runner.first_dead_letters, result.dead_letter_file
    ):
        click.echo(line, err=True)
    # Judged on the final counts (a run stopped early counted fewer when it stopped).
    over = excesses(blueprint, result.stats, max_dead_letter_ratio) or found
    for excess in over:
        click.echo(click.style(f"error: {excess.message()}", fg="red"), err=True)
    if result.error is not None:
        error = result.error
        if isinstance(error, (LifecycleError, StreamletFailed)):
            click.echo(click.style(f"error: {error}", fg="red"), err=True)
        else:
            click.echo(
                click.style(f"error: the run failed: {type(error).__name__}: {error}", fg="red"),
                err=True,
            )
            log.debug("run failed", exc_info=error)
        return 1
    return 1 if over else 0


@click.command("run-local")
@click.argument("blueprint", type=BLUEPRINT)
@config_options()
@click.option("-q", "--quiet", is_flag=True, help="No live progress and no summary table.")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, writable=True),
    help="Directory for this run's files (dead letters). Default: ./runs/APP-TIMESTAMP.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, writable=True),
    help="Keep keyed state in this directory (RocksDB), so that the next run with the same "
    "directory continues where this one stopped. Default: state lives in memory for the run.",
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
@click.option(
    "--fuse",
    is_flag=True,
    help="Hand records on as objects, not Avro, between streamlets whose outlet and inlet "
    "have the same pydantic model and where one streamlet reads the topic (faster; a run "
    "then does not prove that the records survive Avro: see the README).",
)
@click.option(
    "--max-dead-letter-ratio",
    type=click.FloatRange(0, 1),
    help="Fail the run when a streamlet sends more than this share of its records to dead "
    "letters (1: never fail). Default: runner.max_dead_letter_ratio of --config, else "
    f"{DEFAULT_MAX_DEAD_LETTER_RATIO:g}.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log more: -v the streamlets' and the runner's info lines, -vv debug lines.",
)
@ui_options
def run_local_command(
    blueprint: str,
    config_file: str | None,
    sets: tuple[str, ...],
    quiet: bool,
    run_dir: str | None,
    state_dir: str | None,
    kafka: bool,
    bootstrap: str | None,
    fuse: bool,
    max_dead_letter_ratio: float | None,
    verbose: int,
    ui: bool,
    ui_host: str,
    ui_port: int,
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

    With --ui, a live view of the run is served on http://127.0.0.1:PORT/ (printed when
    it starts) while it runs, and once it has finished or failed until Ctrl-C.
    """
    overrides = load_overrides_or_fail(config_file, sets)
    result = verified_or_exit(blueprint, overrides)
    if bootstrap and not kafka:
        raise click.UsageError("--bootstrap needs --kafka")
    if fuse and kafka:
        raise click.UsageError(
            "--fuse is for the in-process runner; under --kafka every record crosses the "
            "broker as Avro"
        )
    if state_dir and kafka:
        raise click.UsageError(
            "--state-dir is for the in-process runner; under --kafka each process keeps its "
            "state in its own directory, restored from the changelog topics"
        )
    if (ui_host != "127.0.0.1" or ui_port) and not ui:
        raise click.UsageError("--ui-host and --ui-port need --ui")
    view = UiOptions(ui_host, ui_port) if ui else None
    if kafka:
        section, settings = kafka_sections_or_fail(overrides, bootstrap=bootstrap)
    else:
        try:
            section = runner_section(overrides.sections.get("runner"))
        except RunnerSettingsError as exc:
            raise usage_error(exc) from None
    ratio = max_dead_letter_ratio
    if ratio is None:
        ratio = section.get("max_dead_letter_ratio", DEFAULT_MAX_DEAD_LETTER_RATIO)
    if kafka:
        sys.exit(
            _supervised_with_view(
                view,
                blueprint,
                result,
                settings,
                config_file,
                sets,
                section,
                quiet,
                run_dir,
                ratio,
                verbose,
            )
        )
    sys.exit(
        run_local(
            result,
            quiet=quiet,
            run_dir=run_dir,
            state_dir=state_dir,
            max_dead_letter_ratio=ratio,
            verbose=verbose,
            ui=view,
            fuse=fuse,
        )
    )


def _supervised_with_view(
    view: UiOptions | None,
    blueprint: str,
    result: VerifiedBlueprint,
    settings: KafkaSettings,
    config_file: str | None,
    sets: tuple[str, ...],
    section: Mapping[str, Any],
    quiet: bool,
    run_dir: str | None,
    ratio: float | None,
    verbose: int,
) -> int:
    """`run-local --kafka`, with the live view over the supervisor when ``view`` is given."""
    watched: list[tuple[KafkaSource, UiServer]] = []

    def prepare(supervisor: Supervisor) -> None:
        if view is not None:
            source = KafkaSource(supervisor)
            watched.append((source, start_view(result, source, view)))

    code = run_supervised(
        result,
        blueprint,
        settings=settings,
        config_file=config_file,
        sets=sets,
        dead_letter_template=section.get("dead_letter_topic"),
        quiet=quiet,
        run_dir=run_dir,
        max_dead_letter_ratio=ratio,
        verbose=verbose,
        prepare=prepare,
    )
    for source, server in watched:
        supervisor = source.supervisor
        if code == 130 or supervisor.stopped:  # Ctrl-C or SIGTERM: the view goes too
            server.stop()
            continue
        source.finished("failed" if code else "finished", supervisor.error)
        linger(server, f"the run has {'failed' if code else 'ended'}")
    return code
