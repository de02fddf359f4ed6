"""`flow dead-letters BLUEPRINT [STREAMLET]`: the dead letters of a run, or of the Kafka
dead-letter topics, shown with their error and their original record; ``--replay`` sends
them back to the topics they came from."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from blueprint import VerifiedBlueprint
from blueprint.user_frames import show_path
from runner.cli.common import BLUEPRINT, config_options, load_overrides_or_fail, verified_or_exit
from runner.cli.run_streamlet import kafka_sections_or_fail
from runner.kafka.dead_letter_reader import DeadLetterReader
from runner.kafka.dead_letter_records import decoded_record as _decoded
from runner.kafka.dead_letter_records import jsonable as _jsonable
from runner.kafka.dead_letter_records import raw_text as _raw
from runner.kafka.dead_letter_records import topic_of as _topic
from runner.kafka.naming import dead_letter_topic, kafka_topic
from runner.kafka.resend import ResendError, resend
from runner.kafka.settings import KafkaSettings, KafkaSettingsError
from runner.runtime.dead_letter_file import DEAD_LETTER_FILE, read_dead_letter_file
from runner.runtime.dead_letter_summary import user_location
from runner.runtime.executor import user_headers
from runner.runtime.messages import DeadLetter

__all__ = ["dead_letters_command"]

_STAGES = ("decode", "validate", "process", "encode", "state")


def _kafka_topic_of(blueprint: VerifiedBlueprint, dead: DeadLetter) -> str:
    topic = _topic(blueprint, dead.original.topic)
    return kafka_topic(topic) if topic is not None else dead.original.topic


def _when(ms: int) -> str:
    if ms < 0:
        return "no timestamp"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _show(n: int, dead: DeadLetter, blueprint: VerifiedBlueprint) -> None:
    original = dead.original
    head = f"#{n} {dead.streamlet}" + (f".{dead.inlet}" if dead.inlet else "")
    click.echo(click.style(f"{head}  stage {dead.stage}  {dead.error_class}", bold=True))
    for line in dead.error_message.strip().splitlines()[:6]:
        click.echo(f"  {line}")
    where = user_location(dead, blueprint)
    if where:
        click.echo(f"  at {where}")
    key = "no key" if original.key is None else f"key {_raw(original.key)!r}"
    click.echo(
        f"  from {original.topic} [{original.partition}] @ {original.offset}, {key}, "
        f"{_when(original.timestamp)}"
    )
    headers = dict(user_headers(original.headers))
    if headers:
        click.echo(f"  headers: {json.dumps({k: _raw(v) for k, v in headers.items()})}")
    record, why = _decoded(blueprint, dead)
    if why is None:
        text = json.dumps(_jsonable(record), indent=2, ensure_ascii=False)
        click.echo("  record: " + text.replace("\n", "\n  "))
    else:
        click.echo(f"  value ({why}): {_raw(original.value)[:2000]}")


def _json_line(dead: DeadLetter, blueprint: VerifiedBlueprint) -> str:
    data = dead.as_json()
    record, why = _decoded(blueprint, dead)
    data["record"] = _jsonable(record) if why is None else None
    data["record_error"] = why
    return json.dumps(data, ensure_ascii=False)


def _newest_run_dir(blueprint: VerifiedBlueprint) -> Path:
    found = sorted(
        (p for p in Path("runs").glob(f"{blueprint.name}-*/{DEAD_LETTER_FILE}")),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        raise click.UsageError(
            f"no dead letters of '{blueprint.name}' under ./runs (runs/{blueprint.name}-*/"
            f"{DEAD_LETTER_FILE}): pass --run-dir DIR (flow run-local's --run-dir), or "
            "--bootstrap HOST:PORT to read the dead-letter topics on Kafka"
        )
    return found[-1].parent


def _from_run_dir(directory: Path) -> list[DeadLetter]:
    path = directory / DEAD_LETTER_FILE if directory.is_dir() else directory
    try:
        lines = list(read_dead_letter_file(path))
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror} (a run without dead letters leaves no file)",
            param_hint="'--run-dir'",
        ) from None
    found = []
    for number, item in lines:
        if isinstance(item, str):
            click.echo(f"warning: {path}:{number}: not a dead letter ({item}); left out", err=True)
        else:
            found.append(item)
    return found


def _from_kafka(
    settings: KafkaSettings, blueprint: VerifiedBlueprint, names: Sequence[str], template: Any
) -> tuple[list[DeadLetter], str]:
    topics = [dead_letter_topic(blueprint, name, template) for name in names]
    reader = DeadLetterReader(settings, topics)
    try:
        reader.start()
        found = reader.read_until(None, idle=1.5, timeout=60.0)
    except Exception as exc:  # no broker, refused credentials
        raise click.ClickException(f"cannot read the dead-letter topics: {exc}") from None
    finally:
        reader.close()
    for topic in reader.missing:
        click.echo(f"note: the broker has no topic {topic} (no dead letters yet)", err=True)
    if reader.foreign:
        click.echo(
            f"warning: {reader.foreign} record(s) on {', '.join(topics)} have no dead-letter "
            "headers; left out",
            err=True,
        )
    return found, ", ".join(topics)


def _selected(
    found: Iterable[DeadLetter], streamlet: str | None, stages: Sequence[str]
) -> list[DeadLetter]:
    return [
        d
        for d in found
        if (streamlet is None or d.streamlet == streamlet) and (not stages or d.stage in stages)
    ]


@click.command("dead-letters")
@click.argument("blueprint", type=BLUEPRINT)
@click.argument("streamlet", required=False)
@click.option(
    "--run-dir",
    type=click.Path(exists=True),
    help="The run directory (flow run-local's --run-dir) or its dead-letters.jsonl. "
    "Default: the newest runs/APP-* with dead letters.",
)
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Read the dead-letter topics on this Kafka instead of a run directory (also "
    "bootstrap.servers of the --config file's kafka: section).",
)
@config_options(
    "YAML file of config overrides and runner sections (kafka: for the broker, "
    "runner.dead_letter_topic for the topics' names)."
)
@click.option(
    "--stage", "stages", multiple=True, type=click.Choice(_STAGES), help="Only this stage."
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Show at most this many (0: all). --replay sends all that match.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: for reading; json: one object per line, with the decoded 'record'.",
)
@click.option(
    "--replay",
    is_flag=True,
    help="Send the original records back to the topics they came from (on Kafka: needs "
    "--bootstrap or the kafka: section), with their keys, headers and timestamps.",
)
def dead_letters_command(
    blueprint: str,
    streamlet: str | None,
    run_dir: str | None,
    bootstrap: str | None,
    config_file: str | None,
    sets: tuple[str, ...],
    stages: tuple[str, ...],
    limit: int,
    fmt: str,
    replay: bool,
) -> None:
    """Show the dead letters of BLUEPRINT (of STREAMLET only, when given).

    From a run directory (flow run-local, in-process or --kafka, writes them to
    RUN_DIR/dead-letters.jsonl), or with --bootstrap from the dead-letter topics
    '<app>.<streamlet>.dead-letters'. Each shows its streamlet, stage and error, the line
    of your code it points to, where the record came from, and the original record,
    decoded with the inlet's schema when it can be.

    With --replay the records go back to their topics, for the streamlet to take them again
    once its mistake is fixed (the dead letters themselves stay where they are).
    """
    overrides = load_overrides_or_fail(config_file, sets)
    verified = verified_or_exit(blueprint, overrides)
    if streamlet is not None and streamlet not in verified.streamlets:
        raise click.BadParameter(
            f"blueprint '{verified.name}' has no streamlet '{streamlet}' "
            f"(it has: {', '.join(verified.streamlets)})",
            param_hint="'STREAMLET'",
        )
    section, settings = kafka_sections_or_fail(overrides, bootstrap=bootstrap)
    from_kafka = (
        run_dir is None
        and settings.bootstrap is not None
        and (bootstrap is not None or "kafka" in overrides.sections)
    )
    if from_kafka:
        names = [streamlet] if streamlet else list(verified.streamlets)
        found, source = _from_kafka(settings, verified, names, section.get("dead_letter_topic"))
    else:
        directory = Path(run_dir) if run_dir else _newest_run_dir(verified)
        found, source = _from_run_dir(directory), show_path(str(directory))
    chosen = _selected(found, streamlet, stages)
    shown = chosen if limit == 0 else chosen[:limit]
    for n, dead in enumerate(shown, 1):
        if fmt == "json":
            click.echo(_json_line(dead, verified))
        else:
            _show(n, dead, verified)
            click.echo()
    per = Counter(d.streamlet for d in chosen)
    counts = ", ".join(f"{name} {n:,}" for name, n in per.items()) or "none"
    more = (
        f"; {len(chosen) - len(shown):,} not shown (--limit 0 shows all)"
        if len(shown) < len(chosen)
        else ""
    )
    click.echo(f"{len(chosen):,} dead letter(s) in {source}: {counts}{more}", err=True)
    if replay:
        _replay(settings, verified, chosen)


def _replay(settings: KafkaSettings, verified: VerifiedBlueprint, chosen: list[DeadLetter]) -> None:
    try:
        settings.require_bootstrap()
    except KafkaSettingsError:
        raise click.UsageError(
            "--replay sends the records to Kafka: give --bootstrap HOST:PORT (or "
            "bootstrap.servers in the --config file's kafka: section)"
        ) from None
    cut = [d for d in chosen if d.value_truncated]
    if cut:
        raise click.ClickException(
            f"{len(cut)} dead letter(s) hold only the start of their record (cut to fit the "
            "dead-letter topic); nothing was sent. Their whole records are on their topics "
            "(see 'from ... @ offset'); leave them out with STREAMLET or --stage"
        )
    try:
        sent = resend(settings, chosen, lambda d: _kafka_topic_of(verified, d))
    except ResendError as exc:
        raise click.ClickException(str(exc)) from None
    where = ", ".join(f"{topic} ({n:,})" for topic, n in sent.items()) or "nowhere"
    click.echo(f"replayed {sum(sent.values()):,} record(s) to {where}", err=True)
