"""``flow verify --registry URL``: each producer's schema against the schema registry's
versions of its topic's subject, under the subject's compatibility level.

The compatibility is worked out here, with verify's own Avro schema-resolution rules
(``blueprint.compatibility``), from the registered schemas and the level the registry
reports for the subject (else its global level): ``BACKWARD`` (the new schema reads what
the latest version wrote), ``FORWARD`` (the latest version reads what the new one
writes), ``FULL`` (both), each ``_TRANSITIVE`` against every version, ``NONE``. A
``mock://`` registry reports no level; it counts as ``BACKWARD``, the registry's default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from blueprint import Problem, Severity, VerifiedBlueprint
from blueprint.compatibility import incompatibilities
from runner.runtime.registry import RegistryConfig, registry_client

__all__ = ["compatibility_problems", "registry_problems"]

#: The registry's own default compatibility level.
DEFAULT_LEVEL = "BACKWARD"


def compatibility_problems(level: str, schema: Any, versions: Sequence[Any]) -> list[str]:
    """Why ``schema`` may not be registered after ``versions`` (oldest first) under
    ``level``, one sentence each (empty: it may)."""
    level = level.upper()
    if level == "NONE" or not versions:
        return []
    against = list(versions) if level.endswith("_TRANSITIVE") else [versions[-1]]
    base = level.removesuffix("_TRANSITIVE")
    found: list[str] = []
    for number, old in enumerate(against, start=len(versions) - len(against) + 1):
        checks = []
        if base in ("BACKWARD", "FULL"):
            checks.append(("it cannot read what version", old, schema))
        if base in ("FORWARD", "FULL"):
            checks.append(("version {n} cannot read what it writes", schema, old))
        for what, writer, reader in checks:
            for reason in incompatibilities(writer, reader):
                sentence = what.format(n=number) if "{n}" in what else f"{what} {number} wrote"
                found.append(f"{sentence}: {reason.path}: {reason.message}")
    return found


def _level(client: Any, subject: str, url: str) -> str:
    from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: PLC0415

    if url.startswith("mock://"):  # the in-process registry keeps no levels
        return DEFAULT_LEVEL
    try:
        return str(client.get_compatibility(subject))
    except SchemaRegistryError as exc:
        if exc.http_status_code != 404:
            raise
    return str(client.get_compatibility() or DEFAULT_LEVEL)


def registry_problems(blueprint: VerifiedBlueprint, config: RegistryConfig) -> list[Problem]:
    """A ``registry-incompatible`` problem per producer whose schema the registry would
    refuse for its topic's subject; one ``registry-unreachable`` when it cannot be asked."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: PLC0415

    client = registry_client(config.client)
    problems: list[Problem] = []
    for key, topic in blueprint.topics.items():
        if topic.codec not in ("avro", "avro-confluent") or not topic.producers:
            continue
        subject = f"{topic.name}-value"
        try:
            numbers = sorted(client.get_versions(subject))
            versions = [
                json.loads(client.get_version(subject, n).schema.schema_str) for n in numbers
            ]
            level = _level(client, subject, config.url)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                continue  # a new subject: any schema may be its first version
            return [*problems, _unreachable(config, exc)]
        except Exception as exc:  # the client's transport errors have no common base
            return [*problems, _unreachable(config, exc)]
        for ref in topic.producers:
            schema = blueprint.streamlets[ref.streamlet].schema(ref.port).avro
            reasons = compatibility_problems(level, schema, versions)
            if reasons:
                problems.append(
                    Problem(
                        "registry-incompatible",
                        Severity.ERROR,
                        f"topic '{key}': {ref.streamlet}.{ref.port} writes a schema that "
                        f"subject '{subject}' (compatibility {level}, {len(versions)} "
                        f"version(s)) in the registry at {config.url} would refuse: "
                        + "; ".join(reasons[:3]),
                        None,
                        "give the new fields defaults (BACKWARD), keep the old ones "
                        "(FORWARD), or change the subject's compatibility level",
                    )
                )
    return problems


def _unreachable(config: RegistryConfig, exc: BaseException) -> Problem:
    return Problem(
        "registry-unreachable",
        Severity.ERROR,
        f"cannot ask the schema registry at {config.url}: {type(exc).__name__}: {exc}",
        None,
        "check the URL and the credentials in the config file's schema_registry: section",
    )
