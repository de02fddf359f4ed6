"""The application's config as deployed: the blueprint for the ConfigMap, secrets apart.

``SecretStr`` (and other pydantic secret) config values, and the runner sections of the
config file (``kafka:`` with its client credentials, ``schema_registry:``, ``runner:``), go
to the Secret; everything else stays in the blueprint that the ConfigMap carries. The pod
gets both: ``flow run-streamlet BLUEPRINT NAME --config SECRET_CONFIG``.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from blueprint import ConfigOverrides, VerifiedBlueprint
from blueprint.secrets import is_secret_annotation, type_members
from runner.k8s.ingress import HTTP_INGRESS_MARKER
from runner.k8s.options import APP_DIR
from runner.k8s.yaml_output import to_yaml

__all__ = ["AppConfig", "build_app_config", "plain", "secret_keys"]


def plain(value: Any) -> Any:
    """``value`` with every mapping and sequence turned into a plain ``dict`` and ``list``."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


def _is_path_type(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, PurePath)
    return any(_is_path_type(m) for m in type_members(annotation) if m is not type(None))


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    found: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        found[name] = info
        if info.alias:
            found[info.alias] = info
    return found


def secret_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The config keys of ``model`` whose values are secret (they contain a secret type)."""
    return tuple(
        info.alias or name
        for name, info in model.model_fields.items()
        if is_secret_annotation(info.annotation)
    )


def _split(
    model: type[BaseModel], data: Mapping[str, Any], app_dir: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public, secret) parts of one streamlet's config; relative paths made absolute.

    A key goes to the Secret whole when any part of its type is secret: the config file
    replaces a key's value as a whole, so a key must not be split between the two files.
    """
    fields = _fields(model)
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for key, value in data.items():
        info = fields.get(key)
        if info is None:
            public[key] = value
            continue
        if isinstance(value, str) and value and _is_path_type(info.annotation):
            value = posixpath.join(app_dir, value)  # no-op for absolute paths
        if is_secret_annotation(info.annotation):
            secret[key] = value
        else:
            public[key] = value
    return public, secret


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _listen_on_pod_address(model: type[BaseModel], data: dict[str, Any]) -> None:
    """An HTTP ingress must listen on every interface in a pod, or its Service cannot reach it."""
    info = model.model_fields.get("host")
    if info is None:
        return
    key = info.alias or "host"
    if data.get(key, info.default) in _LOOPBACK:
        data[key] = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class AppConfig:
    """The deployed config of an application.

    ``blueprint`` is the blueprint document with each streamlet's effective non-secret
    config; ``secret`` is a config file (``streamlet: {key: value}`` plus runner sections)
    with everything secret. Both are plain data, ready to be written as YAML.
    """

    source: str
    blueprint: Mapping[str, Any]
    secret: Mapping[str, Any]

    def blueprint_yaml(self) -> str:
        """The blueprint file the pods read (non-secret config only)."""
        header = (
            f"# Deployed by 'flow deploy' from {self.source}; secret config values are not\n"
            "# here: the pods read them from the application's Secret.\n"
        )
        return header + to_yaml(self.blueprint)

    def secret_yaml(self) -> str:
        """The config file with the secret values the pods read."""
        return to_yaml(dict(self.secret))

    @property
    def has_secrets(self) -> bool:
        """Whether the Secret holds anything at all."""
        return bool(self.secret)

    def config_hash(self) -> str:
        """A short hash of the whole config: the pods roll whenever it changes."""
        digest = hashlib.sha256()
        digest.update(self.blueprint_yaml().encode())
        digest.update(b"\0")
        digest.update(self.secret_yaml().encode())
        return digest.hexdigest()[:16]


def build_app_config(
    verified: VerifiedBlueprint,
    document: Mapping[str, Any],
    overrides: ConfigOverrides,
    *,
    source: str,
    app_dir: str = APP_DIR,
) -> AppConfig:
    """Split the effective config of ``verified`` into the ConfigMap and the Secret parts.

    ``document`` is the blueprint file as loaded (plain YAML data); the config of each
    streamlet is its ``config:`` with ``overrides`` applied key by key, exactly as verify
    applied them. Relative values of ``Path`` fields are made absolute against ``app_dir``,
    the blueprint's directory inside the image.

    ``resources:`` (the application's and each streamlet's) and ``state:`` are left out:
    the pods do not read them, they are in each workload's spec, and so a change to one
    streamlet's resources rolls that streamlet only, not every pod through the config hash.
    """
    blueprint: dict[str, Any] = plain(document)
    blueprint.pop("resources", None)
    bodies = blueprint.get("streamlets") or {}
    secret: dict[str, Any] = {}
    for name, spec in verified.streamlets.items():
        body = bodies.get(name)
        if not isinstance(body, dict):
            continue
        body.pop("resources", None)
        body.pop("state", None)
        data: dict[str, Any] = dict(body.get("config") or {})
        for key, (value, _where) in overrides.for_streamlet(name).items():
            data[key] = plain(value)
        if getattr(spec.cls, HTTP_INGRESS_MARKER, False) is True:
            _listen_on_pod_address(spec.cls.Config, data)
        public, hidden = _split(spec.cls.Config, data, app_dir)
        if public or "config" in body:
            body["config"] = public
        if hidden:
            secret[name] = hidden
    for section, value in overrides.sections.items():
        secret[section] = plain(value)
    return AppConfig(source=source, blueprint=blueprint, secret=secret)
