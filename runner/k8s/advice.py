"""What ``flow deploy`` warns about: manifests Kubernetes takes that will not work as meant.

- A file a streamlet writes (a config field declared :data:`streamlets.OutputPath`, or a
  path field of a sink) outside the pod's writable volumes: the root filesystem is
  read-only, so opening it fails and the pod crashes over and over.
- A source deployed as a Deployment that ends (or may end) by itself: Kubernetes restarts
  a pod that exits, and each start produces all the source's records again; ``--job``
  runs it once, to completion.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from blueprint import StreamletSpec, VerifiedBlueprint
from blueprint.secrets import type_members
from runner.k8s.config import AppConfig
from runner.k8s.options import APP_DIR, WRITABLE_DIRS, DeployOptions
from streamlets.paths import is_written_path

__all__ = ["deploy_warnings"]


def _is_path(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, PurePath)
    return any(_is_path(m) for m in type_members(annotation) if m is not type(None))


def _deployed_config(config: AppConfig, name: str) -> Mapping[str, Any]:
    bodies = config.blueprint.get("streamlets") or {}
    body = bodies.get(name) if isinstance(bodies, Mapping) else None
    public = body.get("config") if isinstance(body, Mapping) else None
    secret = config.secret.get(name)
    return {**(public or {}), **(secret if isinstance(secret, Mapping) else {})}


def _writable(path: str) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in WRITABLE_DIRS)


def _path_warnings(spec: StreamletSpec, deployed: Mapping[str, Any]) -> list[str]:
    model = spec.cls.Config
    sink = not spec.cls.outlets()
    found = []
    for field, info in model.model_fields.items():
        if not (is_written_path(info) or (sink and _is_path(info.annotation))):
            continue
        key = info.alias or field
        value = deployed.get(key, deployed.get(field, getattr(spec.config, field, None)))
        if value is None:
            continue
        path = posixpath.normpath(posixpath.join(APP_DIR, str(value)))
        if _writable(path):
            continue
        name = posixpath.basename(path) or "file"
        found.append(
            f"streamlet '{spec.name}' ({spec.cls.__name__}) writes its config '{key}' to "
            f"{path}, on the pod's read-only root filesystem, where opening it fails; only "
            f"{', '.join(WRITABLE_DIRS)} is writable (an emptyDir, gone with the pod): "
            f"--set {spec.name}.{key}=/tmp/{name}, or better, write to a topic that another "
            "system reads"
        )
    return found


def _source_warning(spec: StreamletSpec) -> str | None:
    if spec.cls.inlets():
        return None
    bounded = spec.create().is_bounded()
    if bounded is False:
        return None
    what = (
        "is a bounded source"
        if bounded
        else "is a source, which may end (a bounded source: its generate() returns)"
    )
    return (
        f"streamlet '{spec.name}' ({spec.cls.__name__}) {what}: as a Deployment its pod is "
        "restarted each time the source ends, and every start produces all its records "
        f"again; deploy it with --job {spec.name} (a Job runs it once, to completion)"
        + (
            ""
            if bounded
            else ", or, if it never ends, let its class say so: def is_bounded(self): return False"
        )
    )


def deploy_warnings(
    verified: VerifiedBlueprint, options: DeployOptions, config: AppConfig
) -> list[str]:
    """The warnings for deploying ``verified`` with ``options`` (empty when none), each a
    sentence with the fix."""
    found: list[str] = []
    for name, spec in verified.streamlets.items():
        if options.replicas(name, spec.replicas) == 0:
            continue  # scaled to zero: it does not run
        found += _path_warnings(spec, _deployed_config(config, name))
        if name not in options.jobs:
            warning = _source_warning(spec)
            if warning is not None:
                found.append(warning)
    return found
