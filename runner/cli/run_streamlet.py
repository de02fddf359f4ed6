"""`flow run-streamlet`: run one streamlet of a blueprint on Kafka (the container entrypoint)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from blueprint import ConfigOverrides, user_code_path
from runner.cli.common import (
    BLUEPRINT,
    config_options,
    load_overrides_or_fail,
    usage_error,
    verified_or_exit,
)
from runner.kafka.logs import configure_logging
from runner.kafka.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_METRICS_HOST,
    DEFAULT_METRICS_PORT,
    DEFAULT_STATE_DIR,
    SETS_ENV,
    ProcessOptions,
    RunnerSettingsError,
    load_runner_sections,
    sets_from_environ,
)
from runner.kafka.process import StreamletProcess
from runner.kafka.settings import KafkaSettings, KafkaSettingsError
from runner.runtime.stop_signals import install_stop_signals

__all__ = ["kafka_sections_or_fail", "run_streamlet_command"]

log = logging.getLogger("streamlets.runner.kafka")

_CONFIG_HELP = (
    "YAML config file: streamlet config overrides, and 'kafka:' (librdkafka properties) "
    "and 'runner:' sections."
)


def kafka_sections_or_fail(
    overrides: ConfigOverrides,
    *,
    bootstrap: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], KafkaSettings]:
    """The ``runner:`` section and the Kafka settings of the config file; a usage error
    (exit 2) that says what is wrong when they are malformed."""
    try:
        return load_runner_sections(overrides.sections, bootstrap=bootstrap, environ=environ)
    except (RunnerSettingsError, KafkaSettingsError) as exc:
        raise usage_error(exc) from None


def _sets_from_environment() -> list[str]:
    """The ``--set`` values handed over in the environment (``flow run-local --kafka`` does,
    to keep them off the command line); taken out of it, so that processes the streamlet
    starts do not inherit them."""
    try:
        return sets_from_environ(os.environ)
    except RunnerSettingsError as exc:
        raise usage_error(exc) from None
    finally:
        os.environ.pop(SETS_ENV, None)


def _install_signals(stop: Callable[[], None], *, supervised: bool = False) -> None:
    # Under `flow run-local --kafka` the supervisor stops its processes this way at every
    # normal end, and says so itself: the process does not repeat it once per replica.
    level = logging.DEBUG if supervised else logging.INFO

    def drain(name: str) -> None:
        log.log(
            level,
            "%s: finishing in-flight records, flushing and committing "
            "(send it again to exit at once)",
            name,
        )
        stop()

    install_stop_signals(drain, lambda: os._exit(130))


@click.command("run-streamlet")
@click.argument("blueprint", type=BLUEPRINT)
@click.argument("name")
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap servers (else 'bootstrap.servers' of the 'kafka:' config section "
    "or $STREAMLETS_KAFKA_BOOTSTRAP_SERVERS).",
)
@config_options(_CONFIG_HELP)
@click.option(
    "--replica",
    type=click.IntRange(min=0),
    default=0,
    envvar="STREAMLETS_REPLICA",
    show_default=True,
    help="Index of this replica (names its client id and transactional id).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    envvar="STREAMLETS_METRICS_PORT",
    help=f"Port of /metrics, /healthz and /readyz (0: any free port). "
    f"Default: {DEFAULT_METRICS_PORT}.",
)
@click.option("--no-metrics", is_flag=True, help="Do not serve /metrics, /healthz, /readyz.")
@click.option(
    "--metrics-host",
    default=DEFAULT_METRICS_HOST,
    envvar="STREAMLETS_METRICS_HOST",
    show_default=True,
    help="Address /metrics, /healthz and /readyz bind (loopback by default; 0.0.0.0 in a pod, "
    "which 'flow deploy' sets, so that probes and Prometheus reach them).",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    help=f"Seconds SIGTERM allows to finish, flush and commit. Default: {DEFAULT_GRACE_PERIOD:g}.",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0),
    help=f"Seconds between offset commits (or transactions). Default: {DEFAULT_COMMIT_INTERVAL:g}.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help=f"Records consumed and processed per batch at most. Default: {DEFAULT_BATCH_SIZE}.",
)
@click.option(
    "--dead-letter-topic",
    metavar="TOPIC",
    help="Dead-letter topic; may use {app} and {streamlet}. "
    "Default: {app}.{streamlet}.dead-letters.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    envvar="STREAMLETS_STATE_DIR",
    help="Directory for keyed state: a RocksDB store per input partition under "
    "DIR/<app>/<streamlet>-<replica>, a cache of the changelog topics (an empty directory "
    f"is rebuilt from them). Default: {DEFAULT_STATE_DIR}.",
)
@click.option(
    "--create-topics/--no-create-topics",
    default=True,
    show_default=True,
    help="Create the topics this streamlet uses when they are missing.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "text", "json"]),
    default="auto",
    show_default=True,
    help="Log lines as text or JSON (auto: JSON unless stderr is a terminal).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("--status-file", type=click.Path(dir_okay=False), hidden=True)
@click.option("--attempt", type=click.IntRange(min=1), default=None, hidden=True)
@click.option("--end-of-input-file", type=click.Path(dir_okay=False), hidden=True)
@click.option("--supervised", is_flag=True, hidden=True)
def run_streamlet_command(
    blueprint: str,
    name: str,
    bootstrap: str | None,
    config_file: str | None,
    sets: tuple[str, ...],
    replica: int,
    metrics_port: int | None,
    no_metrics: bool,
    metrics_host: str,
    grace_period: float | None,
    commit_interval: float | None,
    batch_size: int | None,
    dead_letter_topic: str | None,
    state_dir: str | None,
    create_topics: bool,
    log_format: str,
    verbose: bool,
    status_file: str | None,
    attempt: int | None,
    end_of_input_file: str | None,
    supervised: bool,
) -> None:
    """Run streamlet NAME of BLUEPRINT against Kafka until stopped.

    The streamlet joins the consumer group '<app>.<streamlet>' (replicas share its
    partitions), reads its inlet topics, and writes its outlet topics; failed records go to
    '<app>.<streamlet>.dead-letters'. Delivery is at-least-once unless the blueprint says
    'processing: exactly-once'. A source streamlet exits 0 when its generate() ends.

    SIGTERM or Ctrl-C: stop fetching, finish in-flight records, flush, commit and exit 0
    within the grace period; a second signal exits at once (nothing committed is lost).

    Config overrides may also come in $STREAMLETS_SETS, a JSON list of "NAME.KEY=VALUE"
    strings applied before --set (kept off the command line, which every user can read).
    """
    configure_logging(
        log_format,
        logging.DEBUG if verbose else logging.INFO,
        {"streamlet": name, "replica": replica},
    )
    overrides = load_overrides_or_fail(config_file, _sets_from_environment() + list(sets))
    result = verified_or_exit(blueprint, overrides)
    if name not in result.streamlets:
        known = ", ".join(sorted(result.streamlets))
        raise click.BadParameter(
            f"blueprint '{result.name}' has no streamlet '{name}' (it has: {known})",
            param_hint="'NAME'",
        )
    section, settings = kafka_sections_or_fail(overrides, bootstrap=bootstrap)
    try:
        settings.require_bootstrap()
    except KafkaSettingsError as exc:
        raise usage_error(exc) from None
    options = ProcessOptions.layered(
        section,
        replica=replica,
        batch_size=batch_size,
        commit_interval=commit_interval,
        grace_period=grace_period,
        dead_letter_template=dead_letter_topic,
        create_topics=create_topics,
        metrics=not no_metrics,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        status_file=Path(status_file) if status_file else None,
        attempt=attempt,
        end_of_input=Path(end_of_input_file) if end_of_input_file else None,
        state_dir=Path(state_dir) if state_dir else None,
    )
    process = StreamletProcess(result, name, settings, options)
    _install_signals(process.stop, supervised=supervised)
    try:
        with user_code_path(result.directory):
            code = process.run()
    except OSError as exc:  # e.g. the metrics port is taken
        raise click.ClickException(
            f"cannot start streamlet '{name}': cannot serve metrics on "
            f"{options.metrics_host}:{options.metrics_port}: {exc.strerror}; choose another "
            "--metrics-port (0 picks a free one) or use --no-metrics"
        ) from None
    sys.exit(code)
