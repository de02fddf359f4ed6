"""`flow run-streamlet`: run one streamlet of a blueprint on Kafka (the container entrypoint)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from blueprint import Severity, VerifiedBlueprint

if TYPE_CHECKING:
    from runner.kafka.settings import KafkaSettings

__all__ = [
    "RUNNER_KEYS",
    "load_runner_sections",
    "refuse_schema_registry",
    "run_streamlet_command",
    "runner_section",
]

log = logging.getLogger("streamlets.runner.kafka")

#: Keys of the ``runner:`` section of a config file that the Kafka runner reads.
RUNNER_KEYS = {
    "dead_letter_topic": str,
    "grace_period": float,
    "commit_interval": float,
    "batch_size": int,
    "metrics_port": int,
}


def runner_section(section: Any) -> dict[str, Any]:
    """The validated ``runner:`` section of a config file (a UsageError when malformed)."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise click.UsageError("the 'runner:' section of the config file must be a mapping")
    found: dict[str, Any] = {}
    for key, value in section.items():
        kind = RUNNER_KEYS.get(str(key))
        if kind is None:
            raise click.UsageError(
                f"unknown key {key!r} in the 'runner:' section of the config file "
                f"(known: {', '.join(sorted(RUNNER_KEYS))})"
            )
        try:
            found[str(key)] = kind(value)
        except (TypeError, ValueError):
            raise click.UsageError(
                f"runner.{key} must be a {kind.__name__}, got {value!r}"
            ) from None
    return found


def refuse_schema_registry(section: Any) -> None:
    """A UsageError when the config file has a ``schema_registry:`` section.

    The Confluent wire format is not written or read yet; running anyway would put plain
    schemaless Avro on topics whose other clients expect registry-framed records.
    """
    if section is None:
        return
    from runner.core import SCHEMA_HEADER

    raise click.UsageError(
        "the 'schema_registry:' section of the config file is not supported yet: "
        "streamlets write schemaless Avro with the writer schema's fingerprint in the "
        f"'{SCHEMA_HEADER}' header, not the Confluent wire format; remove the section "
        "(clients outside streamlets can read topics with 'codec: json')"
    )


def load_runner_sections(
    sections: Mapping[str, Any],
    *,
    bootstrap: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], KafkaSettings]:
    """The ``runner:`` section and the Kafka settings of a config file's runner sections,
    checked as every Kafka command checks them: a UsageError says what is wrong, and a
    ``schema_registry:`` section is refused (see :func:`refuse_schema_registry`)."""
    from runner.kafka.settings import KafkaSettings, KafkaSettingsError

    section = runner_section(sections.get("runner"))
    refuse_schema_registry(sections.get("schema_registry"))
    try:
        settings = KafkaSettings.load(sections.get("kafka"), bootstrap=bootstrap, environ=environ)
    except KafkaSettingsError as exc:
        raise click.UsageError(str(exc)) from None
    return section, settings


def _install_signals(stop: Any) -> None:
    from runner.stop_signals import install_stop_signals

    def drain(name: str) -> None:
        log.info(
            "%s: finishing in-flight records, flushing and committing "
            "(send it again to exit at once)",
            name,
        )
        stop()

    install_stop_signals(drain, lambda: os._exit(130))


@click.command("run-streamlet")
@click.argument("blueprint", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.argument("name")
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap servers (else 'bootstrap.servers' of the 'kafka:' config section "
    "or $STREAMLETS_KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    help="YAML config file: streamlet config overrides, and 'kafka:' (librdkafka properties) "
    "and 'runner:' sections.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Override one config value of one streamlet (repeatable); VALUE is read as YAML.",
)
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
    help="Port of /metrics, /healthz and /readyz (0: any free port). Default: 9090.",
)
@click.option("--no-metrics", is_flag=True, help="Do not serve /metrics, /healthz, /readyz.")
@click.option(
    "--metrics-host", default="0.0.0.0", show_default=True, help="Address the HTTP server binds."
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    help="Seconds SIGTERM allows to finish, flush and commit. Default: 30.",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0),
    help="Seconds between offset commits (or transactions). Default: 1.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Records consumed and processed per batch at most. Default: 500.",
)
@click.option(
    "--dead-letter-topic",
    metavar="TOPIC",
    help="Dead-letter topic; may use {app} and {streamlet}. "
    "Default: {app}.{streamlet}.dead-letters.",
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
    create_topics: bool,
    log_format: str,
    verbose: bool,
    status_file: str | None,
) -> None:
    """Run streamlet NAME of BLUEPRINT against Kafka until stopped.

    The streamlet joins the consumer group '<app>.<streamlet>' (replicas share its
    partitions), reads its inlet topics, and writes its outlet topics; failed records go to
    '<app>.<streamlet>.dead-letters'. Delivery is at-least-once unless the blueprint says
    'processing: exactly-once'. A source streamlet exits 0 when its generate() ends.

    SIGTERM or Ctrl-C: stop fetching, finish in-flight records, flush, commit and exit 0
    within the grace period; a second signal exits at once (nothing committed is lost).
    """
    from runner.cli import _fail_with_problems, _format_problem, _overrides, _verify
    from runner.kafka.logs import configure_logging
    from runner.kafka.process import ProcessOptions, StreamletProcess
    from runner.kafka.settings import KafkaSettingsError

    configure_logging(
        log_format,
        logging.DEBUG if verbose else logging.INFO,
        {"streamlet": name, "replica": replica},
    )
    overrides = _overrides(config_file, sets)
    result = _verify(blueprint, overrides)
    if not isinstance(result, VerifiedBlueprint):
        _fail_with_problems(result)
    if name not in result.streamlets:
        known = ", ".join(sorted(result.streamlets))
        raise click.BadParameter(
            f"blueprint '{result.name}' has no streamlet '{name}' (it has: {known})",
            param_hint="'NAME'",
        )
    for problem in result.problems:
        if problem.severity is Severity.WARNING:
            click.echo(_format_problem(problem), err=True)
    section, settings = load_runner_sections(overrides.sections, bootstrap=bootstrap)
    try:
        settings.require_bootstrap()
    except KafkaSettingsError as exc:
        raise click.UsageError(str(exc)) from None
    port: int | None = metrics_port if metrics_port is not None else section.get("metrics_port")
    if port is None:
        port = 9090
    options = ProcessOptions(
        replica=replica,
        batch_size=batch_size or section.get("batch_size", 500),
        commit_interval=(
            commit_interval if commit_interval is not None else section.get("commit_interval", 1.0)
        ),
        grace_period=(
            grace_period if grace_period is not None else section.get("grace_period", 30.0)
        ),
        dead_letter_template=dead_letter_topic or section.get("dead_letter_topic"),
        create_topics=create_topics,
        metrics_port=None if no_metrics else port,
        metrics_host=metrics_host,
        status_file=Path(status_file) if status_file else None,
    )
    process = StreamletProcess(result, name, settings, options)
    _install_signals(process.stop)
    try:
        code = process.run()
    except OSError as exc:  # e.g. the metrics port is taken
        raise click.ClickException(
            f"cannot start streamlet '{name}': cannot serve metrics on "
            f"{options.metrics_host}:{options.metrics_port}: {exc.strerror}; choose another "
            "--metrics-port (0 picks a free one) or use --no-metrics"
        ) from None
    sys.exit(code)


if __name__ == "__main__":  # `python -m runner.kafka_cli`: how `flow run-local --kafka` starts it
    run_streamlet_command(prog_name="flow run-streamlet")
