"""How one streamlet process runs on Kafka: its options, their defaults, and the ``runner:``
section of a config file that sets them.

The defaults live here once; ``flow run-streamlet``'s options, the ``runner:`` section and
``flow deploy`` read them from here. Malformed settings raise :class:`RunnerSettingsError`
(a :class:`~streamlets.errors.StreamletsError`), which the command line turns into a usage
error.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.kafka.settings import KafkaSettings
from runner.runtime.registry import RegistryConfig, RegistryError, registry_config
from streamlets.errors import StreamletsError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_COMMIT_INTERVAL",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_METRICS_HOST",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_STATE_DIR",
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

#: Where a process keeps its keyed state unless told (``<dir>/<app>/<streamlet>-<replica>``):
#: a local disk that outlives the process on the same host, as Kafka Streams' default
#: does. The stores are a cache of the changelog topics: a fresh directory is rebuilt.
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "streamlets-state"

#: Environment variable with ``--set`` values as a JSON list of ``"NAME.KEY=VALUE"``
#: strings: how ``flow run-local --kafka`` hands them to its processes, since a command
#: line is readable by every user of the host (``ps``) and the values may be secrets.
SETS_ENV = "STREAMLETS_SETS"

#: Keys of the ``runner:`` section of a config file that the runners read.
RUNNER_KEYS: Mapping[str, type] = {
    "dead_letter_topic": str,
    "grace_period": float,
    "commit_interval": float,
    "batch_size": int,
    "metrics_port": int,
    # flow run-local's (both modes): see runner/runtime/dead_letter_summary.py
    "max_dead_letter_ratio": float,
}
#: Of those, the ones that are not options of one streamlet process.
_RUN_KEYS = frozenset({"max_dead_letter_ratio"})


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
    #: The root of this process's state directory (see :data:`DEFAULT_STATE_DIR`).
    state_dir: Path = DEFAULT_STATE_DIR
    #: Set by ``flow run-local --kafka``, which restarts its processes itself: 1 for the
    #: first process of a replica, then counting up. ``None``: not supervised (a platform
    #: may restart the process without saying so).
    attempt: int | None = None
    #: The end-of-input file of ``flow run-local --kafka`` (see
    #: :mod:`runner.kafka.end_of_input`): when it appears, the windows close and emit.
    end_of_input: Path | None = None
    #: The ``schema_registry:`` section: every Avro topic in the Confluent wire format.
    registry: RegistryConfig | None = None

    @classmethod
    def layered(cls, section: Mapping[str, Any], **given: Any) -> ProcessOptions:
        """Options from the ``runner:`` section, each overridden by a ``given`` value that is
        not ``None`` (the command line's); the defaults fill the rest. ``metrics_port`` is
        the port to serve on (``given`` as ``None`` means "not set"); pass
        ``metrics=False`` to serve no metrics at all."""
        metrics = given.pop("metrics", True)
        values: dict[str, Any] = {
            k: v for k, v in section.items() if k in RUNNER_KEYS and k not in _RUN_KEYS
        }
        if section.get("registry") is not None:
            values["registry"] = section["registry"]
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
    ratio = found.get("max_dead_letter_ratio")
    if ratio is not None and not 0 <= ratio <= 1:
        raise RunnerSettingsError(
            f"runner.max_dead_letter_ratio is the share of a streamlet's records that may go "
            f"to dead letters, from 0 to 1 (1: any number); got {ratio!r}"
        )
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


def load_runner_sections(
    sections: Mapping[str, Any],
    *,
    bootstrap: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], KafkaSettings]:
    """The ``runner:`` section and the Kafka settings of a config file's runner sections,
    checked as every Kafka command checks them. Raises :class:`RunnerSettingsError` or
    :class:`~runner.kafka.settings.KafkaSettingsError` saying what is wrong; a
    ``schema_registry:`` section, validated, is the ``registry`` of the returned runner
    section (:attr:`ProcessOptions.registry`)."""
    section = runner_section(sections.get("runner"))
    try:
        registry = registry_config(sections.get("schema_registry"))
    except RegistryError as exc:
        raise RunnerSettingsError(str(exc)) from None
    if registry is not None:
        section["registry"] = registry
    settings = KafkaSettings.load(sections.get("kafka"), bootstrap=bootstrap, environ=environ)
    return section, settings
