"""`flow ui`: a live view of streamlet processes that run elsewhere, from their /metrics."""

from __future__ import annotations

import click

from runner.cli.common import BLUEPRINT, config_options, load_overrides_or_fail, verified_or_exit
from runner.cli.run_local import ui_address_options
from runner.ui import linger, start_view
from runner.ui.launch import UiOptions
from runner.ui.metrics_source import MetricsSource

__all__ = ["ui_command"]


@click.command("ui")
@click.argument("blueprint", type=BLUEPRINT)
@click.option(
    "--metrics",
    "urls",
    multiple=True,
    required=True,
    metavar="URL",
    help="A streamlet process's metrics endpoint (http://HOST:PORT, with or without "
    "/metrics); once per process.",
)
@ui_address_options
@config_options()
def ui_command(
    blueprint: str,
    urls: tuple[str, ...],
    ui_host: str,
    ui_port: int,
    config_file: str | None,
    sets: tuple[str, ...],
) -> None:
    """Serve a live view of running streamlet processes, read from their /metrics.

    Each --metrics URL is one process of the blueprint (as 'flow run-streamlet' serves
    them, in a pod or on another machine); its labels say which streamlet and replica it
    is. The view shows the blueprint's graph with each streamlet's health (unreachable
    when no URL answers for it), rates, errors, dead letters and consumer lag, until
    Ctrl-C. The errors' and dead letters' contents are not in the metrics: use
    'flow dead-letters' for those.
    """
    result = verified_or_exit(blueprint, load_overrides_or_fail(config_file, sets), show=())
    source = MetricsSource(result, urls)
    try:
        server = start_view(result, source, UiOptions(ui_host, ui_port))
        linger(server, f"watching {len(urls)} process{'es' if len(urls) != 1 else ''}")
    finally:
        source.close()
