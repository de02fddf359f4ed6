"""Kafka client settings: ``--bootstrap``, the ``kafka:`` config section and ``STREAMLETS_KAFKA_*``.

Every key is a librdkafka property passed through unchanged, so SASL and TLS settings work
as librdkafka documents them. ``consumer:``, ``producer:`` and ``admin:`` subsections of the
``kafka:`` section apply to one kind of client only. Precedence, lowest first: the config
file, the environment, ``--bootstrap``.

Environment variables: ``STREAMLETS_KAFKA_SASL_MECHANISM=PLAIN`` sets ``sasl.mechanism``
(the name lower-cased, ``_`` becomes ``.``, ``__`` becomes a literal ``_``);
``STREAMLETS_KAFKA_CONSUMER_SESSION_TIMEOUT_MS=6000`` sets ``session.timeout.ms`` of the
consumer only (likewise ``_PRODUCER_`` and ``_ADMIN_``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlets.errors import StreamletsError

__all__ = ["ENV_PREFIX", "KafkaSettings", "KafkaSettingsError", "redact"]

ENV_PREFIX = "STREAMLETS_KAFKA_"
_SUBSECTIONS = ("consumer", "producer", "admin")
_SECRET_WORDS = ("password", "secret", "key", "token", "jaas", "credential")


class KafkaSettingsError(StreamletsError):
    """The Kafka client settings are missing or malformed."""


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    if lowered.endswith((".location", ".id")):  # a key file's path is not the key
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` fit for logs: secret values replaced by ``***``."""
    return {k: ("***" if _is_secret(k) else v) for k, v in config.items()}


def _env_key(name: str) -> str:
    return name.lower().replace("__", "\0").replace("_", ".").replace("\0", "_")


def _flatten(section: Mapping[str, Any], where: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in section.items():
        if isinstance(value, Mapping):
            raise KafkaSettingsError(
                f"{where}: {key!r} must be a librdkafka property with a scalar value, "
                f"got a mapping (only {', '.join(_SUBSECTIONS)} may be sections)"
            )
        if isinstance(value, bool):
            flat[str(key)] = "true" if value else "false"
        elif value is None:
            continue
        else:
            flat[str(key)] = str(value)
    return flat


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """librdkafka properties for every client, and per kind of client."""

    common: Mapping[str, str] = field(default_factory=dict)
    consumer: Mapping[str, str] = field(default_factory=dict)
    producer: Mapping[str, str] = field(default_factory=dict)
    admin: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        section: Any = None,
        *,
        bootstrap: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> KafkaSettings:
        """Merge the ``kafka:`` section, ``STREAMLETS_KAFKA_*`` variables and ``--bootstrap``."""
        common: dict[str, str] = {}
        parts: dict[str, dict[str, str]] = {name: {} for name in _SUBSECTIONS}
        if section is not None:
            if not isinstance(section, Mapping):
                raise KafkaSettingsError(
                    "the 'kafka:' section of the config file must be a mapping of librdkafka "
                    "properties, e.g. 'kafka: {bootstrap.servers: \"kafka:9092\"}'"
                )
            plain = {k: v for k, v in section.items() if k not in _SUBSECTIONS}
            common.update(_flatten(plain, "kafka"))
            for name in _SUBSECTIONS:
                sub = section.get(name)
                if sub is None:
                    continue
                if not isinstance(sub, Mapping):
                    raise KafkaSettingsError(f"kafka.{name} must be a mapping of properties")
                parts[name].update(_flatten(sub, f"kafka.{name}"))
        env = os.environ if environ is None else environ
        for name, value in env.items():
            if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
                continue
            rest = name[len(ENV_PREFIX) :]
            kind, _, prop = rest.partition("_")
            if kind.lower() in _SUBSECTIONS and prop:
                parts[kind.lower()][_env_key(prop)] = value
            else:
                common[_env_key(rest)] = value
        if bootstrap:
            common["bootstrap.servers"] = bootstrap
        return cls(common, parts["consumer"], parts["producer"], parts["admin"])

    @property
    def bootstrap(self) -> str | None:
        """The ``bootstrap.servers`` value, when set."""
        return self.common.get("bootstrap.servers")

    def with_bootstrap(self, bootstrap: str) -> KafkaSettings:
        """A copy whose ``bootstrap.servers`` is ``bootstrap`` (like ``--bootstrap``)."""
        common = {**self.common, "bootstrap.servers": bootstrap}
        return KafkaSettings(common, self.consumer, self.producer, self.admin)

    def require_bootstrap(self) -> str:
        """The bootstrap servers, or a clear error saying how to give them."""
        found = self.bootstrap
        if not found:
            raise KafkaSettingsError(
                "no Kafka broker given: use --bootstrap HOST:PORT, set 'bootstrap.servers' in "
                "the 'kafka:' section of the --config file, or set "
                f"{ENV_PREFIX}BOOTSTRAP_SERVERS"
            )
        return found

    def for_consumer(self, **defaults: Any) -> dict[str, Any]:
        """Consumer properties: ``defaults`` overridden by the user's settings."""
        return {**defaults, **self.common, **self.consumer}

    def for_producer(self, **defaults: Any) -> dict[str, Any]:
        """Producer properties: ``defaults`` overridden by the user's settings."""
        return {**defaults, **self.common, **self.producer}

    def for_admin(self) -> dict[str, Any]:
        """Admin client properties (the common ones plus ``kafka.admin``)."""
        return {**self.common, **self.admin}
