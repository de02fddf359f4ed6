"""How KEDA's Kafka scaler authenticates: the ``kafka:`` section, translated.

The pods read librdkafka properties; KEDA's Kafka scaler takes ``sasl`` and ``tls`` in the
trigger's metadata and the credentials from a ``TriggerAuthentication`` that points at
keys of the application's Secret. Supported: SASL PLAIN and SCRAM (``sasl.username``,
``sasl.password``), TLS (``security.protocol`` SSL or SASL_SSL) with an inline CA
(``ssl.ca.pem``), client certificate (``ssl.certificate.pem``) and key (``ssl.key.pem``,
``ssl.key.password``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.kafka.settings import KafkaSettings, KafkaSettingsError

__all__ = ["KafkaAuth", "kafka_auth", "kafka_auth_problem"]

_MECHANISMS = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
}
#: librdkafka property -> (KEDA auth parameter, key in the Secret)
_CREDENTIALS = (
    ("sasl.username", "username", "keda-kafka-username"),
    ("sasl.password", "password", "keda-kafka-password"),
    ("ssl.ca.pem", "ca", "keda-kafka-ca"),
    ("ssl.certificate.pem", "cert", "keda-kafka-cert"),
    ("ssl.key.pem", "key", "keda-kafka-key"),
    ("ssl.key.password", "keyPassword", "keda-kafka-key-password"),
)


@dataclass(frozen=True, slots=True)
class KafkaAuth:
    """What the scaler needs: trigger metadata, and credentials as (parameter, key, value)."""

    metadata: Mapping[str, str]
    credentials: tuple[tuple[str, str, str], ...]


def _properties(section: Any) -> dict[str, str]:
    try:
        return dict(KafkaSettings.load(section, environ={}).for_admin())
    except KafkaSettingsError:
        return {}  # reported when the config file is read


def kafka_auth_problem(section: Any) -> str | None:
    """Why KEDA cannot be given the credentials of ``section`` (``None`` when it can)."""
    mechanism = _properties(section).get("sasl.mechanism", "").upper()
    if mechanism and mechanism not in _MECHANISMS:
        return (
            f"--autoscale: the Kafka cluster uses sasl.mechanism {mechanism}, and only "
            f"{', '.join(_MECHANISMS)} are passed on to KEDA's Kafka scaler; write a "
            "TriggerAuthentication yourself or leave out --autoscale"
        )
    return None


def kafka_auth(section: Any) -> KafkaAuth | None:
    """The scaler's authentication for the ``kafka:`` section (``None``: none needed)."""
    props = _properties(section)
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    mechanism = props.get("sasl.mechanism", "").upper()
    metadata: dict[str, str] = {}
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        metadata["sasl"] = _MECHANISMS.get(mechanism or "PLAIN", "none")
    if protocol in ("SSL", "SASL_SSL"):
        metadata["tls"] = "enable"
    credentials = tuple(
        (parameter, key, props[prop]) for prop, parameter, key in _CREDENTIALS if props.get(prop)
    )
    if not metadata and not credentials:
        return None
    return KafkaAuth(metadata, credentials)
