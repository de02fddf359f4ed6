"""Starting the live view for a command, and keeping it up once the run has ended."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from types import FrameType

import click

from blueprint import VerifiedBlueprint
from runner.ui.server import UiServer, is_loopback
from runner.ui.view import LiveView, Source

__all__ = ["UiOptions", "linger", "start_view"]


@dataclass(frozen=True, slots=True)
class UiOptions:
    """``--ui-host`` and ``--ui-port`` (0: a free port)."""

    host: str = "127.0.0.1"
    port: int = 0


def start_view(blueprint: VerifiedBlueprint, source: Source, options: UiOptions) -> UiServer:
    """Serve the live view of ``source``; says where on standard error (and warns when it
    is reachable from other machines). Raises ``click.ClickException`` when the address
    cannot be had."""
    try:
        server = UiServer(LiveView(blueprint, source), host=options.host, port=options.port)
    except OSError as exc:
        raise click.ClickException(
            f"the live view cannot listen on {options.host}:{options.port}: {exc.strerror}"
        ) from None
    server.start()
    if not is_loopback(options.host):
        click.echo(
            click.style(
                f"warning: the live view listens on {options.host}, not on loopback: anyone "
                "who can reach this machine can read it (the streamlets' config with secrets "
                "masked, their errors and the records in their dead letters)",
                fg="yellow",
            ),
            err=True,
        )
    click.echo(f"live view: {server.url}", err=True)
    return server


def linger(server: UiServer, what: str = "the run has ended") -> None:
    """Keep serving until Ctrl-C (or SIGTERM), so the end of a run can still be looked at."""
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo(f"{what}; the live view stays at {server.url} until Ctrl-C", err=True)
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
