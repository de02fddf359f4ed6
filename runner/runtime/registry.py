"""The Confluent Schema Registry, on confluent-kafka's client, for the ``avro-confluent``
codec and for ``flow verify --registry``.

``schema_registry:`` in the config file holds the client's settings (``url``, and
``basic.auth.user.info``, ``ssl.ca.location``... as confluent-kafka names them) and
``auto_register`` (default true: a producer registers its schema; false: it only looks
it up, and a schema the registry does not have is an error). A ``mock://`` URL is the
client's in-process registry (for tests and local runs): clients of one process share it
by URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlets.errors import DecodeError, StreamletsError
from streamlets.schema import Schema

__all__ = [
    "RegistryConfig",
    "RegistryError",
    "SchemaRegistryAdapter",
    "registry_client",
    "registry_config",
]

_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


class RegistryError(StreamletsError):
    """The schema registry refused a request or could not be reached; or its config is wrong."""


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """The ``schema_registry:`` section: the client's settings and ``auto_register``."""

    client: Mapping[str, str] = field(default_factory=dict)
    auto_register: bool = True

    @property
    def url(self) -> str:
        """The registry's URL (or URLs, comma-separated)."""
        return self.client["url"]


def registry_config(section: Any) -> RegistryConfig | None:
    """The validated ``schema_registry:`` section (``None`` when there is none)."""
    if section is None:
        return None
    if not isinstance(section, Mapping) or not isinstance(section.get("url"), str):
        raise RegistryError(
            "the 'schema_registry:' section of the config file must be a mapping with a "
            "'url' (e.g. {url: 'http://registry:8081'}), plus the client's settings such as "
            "'basic.auth.user.info'"
        )
    client: dict[str, str] = {}
    auto_register = True
    for key, value in section.items():
        if key == "auto_register":
            if not isinstance(value, bool):
                raise RegistryError(
                    f"schema_registry.auto_register must be true or false, got {value!r}"
                )
            auto_register = value
        elif isinstance(value, Mapping | list):
            raise RegistryError(f"schema_registry.{key} must be a single value, got {value!r}")
        else:
            client[str(key)] = str(value)
    return RegistryConfig(client, auto_register)


def registry_client(config: Mapping[str, str]) -> Any:
    """confluent-kafka's registry client for ``config`` (one per settings in a process, so
    that ``mock://`` registries are shared by the streamlets of a process)."""
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    except ImportError as exc:
        raise RegistryError(
            f"the schema registry client needs more packages ({exc.name} is missing): "
            "pip install 'streamlets[registry]'"
        ) from exc
    key = json.dumps(dict(config), sort_keys=True)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = SchemaRegistryClient.new_client(dict(config))
    return client


class SchemaRegistryAdapter:
    """A :class:`~streamlets.codecs.confluent.SchemaRegistry` on confluent-kafka's client."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.client = registry_client(config.client)

    def writer_id(self, subject: str, schema: Schema) -> int:
        """Register ``schema`` under ``subject`` (or, without auto_register, look it up)."""
        from confluent_kafka.schema_registry import Schema as RegistrySchema  # noqa: PLC0415
        from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: PLC0415

        text = json.dumps(schema.avro)
        try:
            if self.config.auto_register:
                return int(self.client.register_schema(subject, RegistrySchema(text, "AVRO")))
            found = self.client.lookup_schema(subject, RegistrySchema(text, "AVRO"))
            return int(found.schema_id)
        except SchemaRegistryError as exc:
            action = "register" if self.config.auto_register else "find (auto_register: false)"
            raise RegistryError(
                f"the schema registry at {self.config.url} did not {action} the schema "
                f"{schema.name} under subject '{subject}': {exc}"
            ) from exc

    def schema_by_id(self, schema_id: int) -> Any:
        """The Avro schema registered with ``schema_id``."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: PLC0415

        try:
            found = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:  # the record's fault: it names no schema
                raise DecodeError(
                    f"the record names schema id {schema_id}, which the schema registry at "
                    f"{self.config.url} does not have"
                ) from exc
            raise RegistryError(
                f"the schema registry at {self.config.url} has no schema with id {schema_id}: {exc}"
            ) from exc
        if found.schema_type not in (None, "AVRO"):
            raise RegistryError(f"schema id {schema_id} is a {found.schema_type} schema, not Avro")
        return json.loads(found.schema_str)
