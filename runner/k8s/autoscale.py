"""KEDA ``ScaledObject``s: scale a consuming streamlet on its consumer group's lag."""

from __future__ import annotations

from typing import Any

from blueprint import StreamletSpec, VerifiedBlueprint
from runner.k8s import naming
from runner.k8s.keda_auth import KafkaAuth
from runner.k8s.options import DeployOptions
from runner.k8s.workloads import metadata, workload_kind
from runner.kafka.naming import group_id

__all__ = [
    "DEFAULT_MAX_REPLICAS",
    "KEDA_API_VERSION",
    "can_autoscale",
    "scaled_object",
    "trigger_authentication",
]

KEDA_API_VERSION = "keda.sh/v1alpha1"
#: Upper bound of an autoscaled streamlet whose input topics do not declare partitions.
DEFAULT_MAX_REPLICAS = 10


def _input_topics(verified: VerifiedBlueprint, spec: StreamletSpec) -> list[tuple[str, int | None]]:
    found: list[tuple[str, int | None]] = []
    for inlet in spec.cls.inlets():
        topic = verified.inlet_topic(spec.name, inlet)
        if topic is not None and all(name != topic.name for name, _ in found):
            found.append((topic.name, topic.partitions))
    return found


def can_autoscale(verified: VerifiedBlueprint, spec: StreamletSpec, options: DeployOptions) -> bool:
    """Whether the streamlet consumes a topic (sources have no lag to scale on)."""
    return spec.name not in options.jobs and bool(_input_topics(verified, spec))


def trigger_authentication(app: str, auth: KafkaAuth, options: DeployOptions) -> dict[str, Any]:
    """The TriggerAuthentication that hands the Kafka credentials in the Secret to KEDA."""
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": metadata(
            naming.trigger_authentication_name(app),
            options.namespace,
            naming.app_labels(app, "autoscaler"),
        ),
        "spec": {
            "secretTargetRef": [
                {"parameter": parameter, "name": naming.secret_name(app), "key": key}
                for parameter, key, _ in auth.credentials
            ]
        },
    }


def scaled_object(
    verified: VerifiedBlueprint,
    spec: StreamletSpec,
    options: DeployOptions,
    auth: KafkaAuth | None = None,
) -> dict[str, Any]:
    """A ScaledObject with a Kafka lag trigger per input topic of ``spec``.

    The blueprint's (or ``--scale``) replicas are the minimum; the maximum is
    ``--max-replicas``, else the largest partition count of the input topics (more
    consumers than partitions would sit idle), else :data:`DEFAULT_MAX_REPLICAS`.
    """
    app = verified.name
    inputs = _input_topics(verified, spec)
    minimum = options.replicas(spec.name, spec.replicas)
    partitions = [p for _, p in inputs if p is not None]
    maximum = options.max_replicas or (max(partitions) if partitions else DEFAULT_MAX_REPLICAS)
    triggers: list[dict[str, Any]] = []
    for topic, _ in inputs:
        trigger: dict[str, Any] = {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": options.bootstrap_servers,
                "consumerGroup": group_id(verified, spec.name),
                "topic": topic,
                "lagThreshold": str(options.lag_threshold),
                "offsetResetPolicy": "earliest",
                **(auth.metadata if auth else {}),
            },
        }
        if auth is not None and auth.credentials:
            trigger["authenticationRef"] = {"name": naming.trigger_authentication_name(app)}
        triggers.append(trigger)
    name = naming.deployment_name(app, spec.name)
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": metadata(
            name, options.namespace, naming.streamlet_labels(app, spec.name, "autoscaler")
        ),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": workload_kind(spec, options),
                "name": name,
            },
            "minReplicaCount": minimum,
            "maxReplicaCount": max(minimum, maximum),
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": triggers,
        },
    }
