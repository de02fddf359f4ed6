"""Names and labels of the generated Kubernetes resources.

Every name is a valid DNS-1123 label or subdomain and depends only on the blueprint, so the
same input always gives the same names. A name that would be too long (or that had to be
changed to become valid) keeps a readable prefix and ends with a short hash of the original.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "MANAGED_BY",
    "app_labels",
    "config_map_name",
    "deployment_name",
    "headless_service_name",
    "secret_name",
    "selector_labels",
    "service_name",
    "streamlet_labels",
    "topic_resource_name",
    "trigger_authentication_name",
]

#: The ``app.kubernetes.io/managed-by`` label of everything ``flow deploy`` writes.
MANAGED_BY = "streamlets"
#: Pod-template annotation holding a hash of the application's config: changing the config
#: changes the pod template, which makes Kubernetes roll the pods.
CONFIG_HASH_ANNOTATION = "streamlets.io/config-hash"

_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253
_INVALID = re.compile(r"[^a-z0-9-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _label(text: str, limit: int = _LABEL_MAX) -> str:
    """``text`` as a DNS-1123 label: lower case, invalid runs as '-', at most ``limit``."""
    label = _INVALID.sub("-", text.lower()).strip("-")
    if label == text and len(label) <= limit:
        return label
    keep = limit - 9
    return f"{label[:keep].strip('-') or 'x'}-{_digest(text)}"


def deployment_name(app: str, streamlet: str) -> str:
    """The Deployment (and ScaledObject) of one streamlet: ``<app>-<streamlet>``."""
    return _label(f"{app}-{streamlet}")


def service_name(app: str, streamlet: str) -> str:
    """The Service of an HTTP ingress streamlet (an RFC 1035 label: starts with a letter)."""
    name = deployment_name(app, streamlet)
    return name if name[0].isalpha() else _label(f"svc-{name}")


def headless_service_name(app: str, streamlet: str) -> str:
    """The headless Service that governs a StatefulSet's pods (their network identity)."""
    name = _label(f"{app}-{streamlet}-pods")
    return name if name[0].isalpha() else _label(f"svc-{name}")


def config_map_name(app: str) -> str:
    """The ConfigMap holding the blueprint and the non-secret config."""
    return _label(f"{app}-config")


def secret_name(app: str) -> str:
    """The Secret holding secret config values and Kafka client settings."""
    return _label(f"{app}-secret")


def trigger_authentication_name(app: str) -> str:
    """The KEDA TriggerAuthentication with the application's Kafka credentials."""
    return _label(f"{app}-kafka")


def topic_resource_name(topic: str) -> str:
    """The ``metadata.name`` of the KafkaTopic for Kafka topic ``topic`` (a DNS subdomain).

    Kafka allows ``_`` and upper case, Kubernetes does not: such names are mapped to a valid
    name with a hash suffix (so ``Orders`` and ``orders`` stay distinct) and the KafkaTopic
    then names the real topic in ``spec.topicName``.
    """
    parts = [_INVALID.sub("-", part.lower()).strip("-") for part in topic.split(".")]
    name = ".".join(p for p in parts if p)
    if name == topic and len(name) <= _SUBDOMAIN_MAX:
        return name
    keep = _SUBDOMAIN_MAX - 9
    return f"{name[:keep].strip('-.') or 'topic'}-{_digest(topic)}"


def app_labels(app: str, component: str) -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels of an application-wide resource."""
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": app,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def streamlet_labels(app: str, streamlet: str, component: str = "streamlet") -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels of a resource that belongs to one streamlet."""
    return {
        "app.kubernetes.io/name": streamlet,
        "app.kubernetes.io/instance": deployment_name(app, streamlet),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": app,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_labels(app: str, streamlet: str) -> dict[str, str]:
    """The labels that select the pods of one streamlet (immutable once deployed)."""
    return {
        "app.kubernetes.io/instance": deployment_name(app, streamlet),
        "app.kubernetes.io/part-of": app,
    }
