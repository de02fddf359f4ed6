"""How one streamlet process runs on Kafka: its options, their defaults, and the ``runner:``
section of a config file that sets them.

The defaults live here once; ``flow run-streamlet``'s options, the ``runner:`` section and
``flow deploy`` read them from here. Malformed settings raise :class:`RunnerSettingsError`
(a :class:`~streamlets.errors.StreamletsError`), which the command line turns into a usage
error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.kafka.settings import KafkaSettings
from streamlets.codecs import SCHEMA_HEADER
from streamlets.errors import StreamletsError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_COMMIT_INTERVAL",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_METRICS_HOST",
    "DEFAULT_METRICS_PORT",
    "RUNNER_KEYS",
    "SETS_ENV",
    "ProcessOptions",
    "RunnerSettingsError",
    "load_runner_sections",
    "runner_section",
    "sets_from_environ",
]

#: Records consumed and processed per batch at most.
DEFAULT_BATCH_SIZE = 500
#: Seconds between offset commits (or transactions).
DEFAULT_COMMIT_INTERVAL = 1.0
#: Seconds SIGTERM allows to finish, flush and commit.
DEFAULT_GRACE_PERIOD = 30.0
#: Port of ``/metrics``, ``/healthz`` and ``/readyz``.
DEFAULT_METRICS_PORT = 9090
#: Address they bind: loopback, so that a process started by hand exposes nothing; a pod
#: is given ``--metrics-host 0.0.0.0`` by ``flow deploy`` (its probes come from outside).
DEFAULT_METRICS_HOST = "127.0.0.1"

#: Environment variable with ``--set`` values as a JSON list of ``"NAME.KEY=VALUE"``
#: strings: how ``flow run-local --kafka`` hands them to its processes, since a command
#: line is readable by every user of the host (``ps``) and the values may be secrets.
SETS_ENV = "STREAMLETS_SETS"

#: Keys of the ``runner:`` section of a config file that the Kafka runner reads.
RUNNER_KEYS: Mapping[str, type] = {
    "dead_letter_topic": str,
    "grace_period": float,
    "commit_interval": float,
    "batch_size": int,
    "metrics_port": int,
}


class RunnerSettingsError(StreamletsError):
    """A runner section of the config file (``runner:``, ``schema_registry:``) is malformed
    or not supported."""


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """How one streamlet process runs (everything but the Kafka client settings)."""

    replica: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    poll_timeout: float = 0.1
    commit_interval: float = DEFAULT_COMMIT_INTERVAL
    grace_period: float = DEFAULT_GRACE_PERIOD
    dead_letter_template: str | None = None
    create_topics: bool = True
    metrics_port: int | None = None  # None: no HTTP server; 0: any free port
    metrics_host: str = DEFAULT_METRICS_HOST
    status_file: Path | None = None
    status_interval: float = 0.5
    #: Set by ``flow run-local --kafka``, which restarts its processes itself: 1 for the
    #: first process of a replica, then counting up. ``None``: not supervised (a platform
    #: may restart the process without saying so).
    attempt: int | None = None
    #: The end-of-input file of ``flow run-local --kafka`` (see
    #: :mod:`runner.kafka.end_of_input`): when it appears, the windows close and emit.
    end_of_input: Path | None = None

    @classmethod
    def layered(cls, section: Mapping[str, Any], **given: Any) -> ProcessOptions:
        """Options from the ``runner:`` section, each overridden by a ``given`` value that is
        not ``None`` (the command line's); the defaults fill the rest. ``metrics_port`` is
        the port to serve on (``given`` as ``None`` means "not set"); pass
        ``metrics=False`` to serve no metrics at all."""
        metrics = given.pop("metrics", True)
        values: dict[str, Any] = {k: v for k, v in section.items() if k in RUNNER_KEYS}
        if "dead_letter_topic" in values:
            values["dead_letter_template"] = values.pop("dead_letter_topic")
        values.update({k: v for k, v in given.items() if v is not None})
        if not metrics:
            values["metrics_port"] = None
        elif values.get("metrics_port") is None:
            values["metrics_port"] = DEFAULT_METRICS_PORT
        return cls(**values)


def runner_section(section: Any) -> dict[str, Any]:
    """The validated ``runner:`` section of a config file (empty when there is none)."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise RunnerSettingsError("the 'runner:' section of the config file must be a mapping")
    found: dict[str, Any] = {}
    for key, value in section.items():
        kind = RUNNER_KEYS.get(str(key))
        if kind is None:
            raise RunnerSettingsError(
                f"unknown key {key!r} in the 'runner:' section of the config file "
                f"(known: {', '.join(sorted(RUNNER_KEYS))})"
            )
        try:
            found[str(key)] = kind(value)
        except (TypeError, ValueError):
            raise RunnerSettingsError(
                f"runner.{key} must be a {kind.__name__}, got {value!r}"
            ) from None
    return found


def sets_from_environ(environ: Mapping[str, str]) -> list[str]:
    """The ``--set`` values in :data:`SETS_ENV` (none when it is unset or empty)."""
    raw = environ.get(SETS_ENV, "")
    if not raw:
        return []
    try:
        values = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RunnerSettingsError(
            f'${SETS_ENV} must be a JSON list of "NAME.KEY=VALUE" strings, '
            "e.g. '[\"store.path=out.jsonl\"]'; unset it or fix it"
        )
    return values


def _refuse_schema_registry(section: Any) -> None:
    """The Confluent wire format is not written or read yet; running anyway would put plain
    schemaless Avro on topics whose other clients expect registry-framed records."""
    if section is None:
        return
    raise RunnerSettingsError(
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
    checked as every Kafka command checks them. Raises :class:`RunnerSettingsError` or
    :class:`~runner.kafka.settings.KafkaSettingsError` saying what is wrong; a
    ``schema_registry:`` section is refused."""
    section = runner_section(sections.get("runner"))
    _refuse_schema_registry(sections.get("schema_registry"))
    settings = KafkaSettings.load(sections.get("kafka"), bootstrap=bootstrap, environ=environ)
    return section, settings
