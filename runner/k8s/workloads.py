"""Deployments, Services and Ingresses: the pods that run the streamlets and their doors.

Every pod meets the *restricted* Pod Security Standard: it runs as a non-root user, cannot
escalate privileges, drops every capability, uses the runtime's default seccomp profile
and has a read-only root filesystem (``/tmp`` is an ``emptyDir``).
"""

from __future__ import annotations

from typing import Any

from blueprint import StreamletSpec, VerifiedBlueprint
from runner.k8s import naming
from runner.k8s.ingress import http_port
from runner.k8s.options import (
    BLUEPRINT_PATH,
    CONFIG_DIR,
    RUN_AS_USER,
    SECRET_CONFIG_PATH,
    STATE_DIR,
    DeployOptions,
)
from runner.k8s.state import state_claim_template, state_mount, state_volume

__all__ = [
    "container_args",
    "deployment",
    "headless_service",
    "ingress",
    "metadata",
    "pod_security_context",
    "service",
    "workload_kind",
]

_CONFIG_VOLUME = "config"
_TMP_VOLUME = "tmp"
#: Label the StatefulSet controller puts on each pod: its ordinal (Kubernetes >= 1.28).
_POD_INDEX = "apps.kubernetes.io/pod-index"
#: Annotation the Job controller puts on each pod of an Indexed Job: its index.
_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
#: Address a pod's /metrics, /healthz and /readyz bind (every interface of the pod).
POD_METRICS_HOST = "0.0.0.0"


def metadata(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    """``metadata`` of a namespaced resource (no namespace: kubectl's current one)."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = labels
    return meta


def container_args(streamlet: str, options: DeployOptions, *, stateful: bool = False) -> list[str]:
    """The arguments of ``flow`` in the container: run one streamlet against Kafka (a
    stateful one with its state directory on the state volume)."""
    args = [
        "run-streamlet",
        BLUEPRINT_PATH,
        streamlet,
        "--config",
        SECRET_CONFIG_PATH,
        "--bootstrap",
        options.bootstrap_servers,
        "--metrics-port",
        str(options.metrics_port),
        # run-streamlet binds loopback unless told: the kubelet's probes and Prometheus
        # come in on the pod's address.
        "--metrics-host",
        POD_METRICS_HOST,
    ]
    if stateful:
        args += ["--state-dir", STATE_DIR]
    return args


def pod_security_context() -> dict[str, Any]:
    """The pod-level security context (restricted profile)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(
    verified: VerifiedBlueprint, spec: StreamletSpec, options: DeployOptions
) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [
        {"name": "metrics", "containerPort": options.metrics_port, "protocol": "TCP"}
    ]
    port = http_port(spec)
    if port is not None:
        ports.append({"name": "http", "containerPort": port, "protocol": "TCP"})
    resources = options.resources_for(spec, verified)
    return {
        "name": "streamlet",
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "args": container_args(spec.name, options, stateful=spec.stateful),
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "ports": ports,
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": resources,
        "securityContext": _container_security_context(),
        "volumeMounts": [
            {"name": _CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": _TMP_VOLUME, "mountPath": "/tmp"},
            *([state_mount()] if spec.stateful else []),
        ],
    }


def _volumes(app: str, spec: StreamletSpec, kind: str) -> list[dict[str, Any]]:
    state = state_volume(spec, kind)
    return [
        {
            "name": _CONFIG_VOLUME,
            "projected": {
                "defaultMode": 0o440,
                "sources": [
                    {
                        "configMap": {
                            "name": naming.config_map_name(app),
                            "items": [{"key": "blueprint.yaml", "path": "blueprint.yaml"}],
                        }
                    },
                    {
                        "secret": {
                            "name": naming.secret_name(app),
                            "items": [{"key": "secret-config.yaml", "path": "secret-config.yaml"}],
                        }
                    },
                ],
            },
        },
        {"name": _TMP_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}},
        *([state] if state is not None else []),
    ]


def workload_kind(spec: StreamletSpec, options: DeployOptions) -> str:
    """``"Job"`` for a streamlet deployed with ``--job``, ``"StatefulSet"`` for an
    exactly-once or a stateful streamlet, else ``"Deployment"``.

    A Job runs a bounded source to completion once (a Deployment would restart it when it
    ends, and it would produce its data again). An exactly-once streamlet's transactional
    id is derived from its replica index, which must be unique among the running replicas
    and stable across restarts (a restarted replica then fences its predecessor). A
    StatefulSet gives each pod such an index (the ``apps.kubernetes.io/pod-index`` label,
    passed as ``STREAMLETS_REPLICA``) and never runs two pods with the same index; a
    Deployment's pods are interchangeable. A stateful streamlet's pods keep their state
    volume: with ``state: {storage: ...}`` a claim per pod that the StatefulSet gives back
    to the pod of the same index (see :mod:`runner.k8s.state`).
    """
    if spec.name in options.jobs:
        return "Job"
    if spec.processing == "exactly-once" or spec.stateful:
        return "StatefulSet"
    return "Deployment"


def _replica_index(field_path: str) -> dict[str, Any]:
    return {"name": "STREAMLETS_REPLICA", "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def deployment(
    verified: VerifiedBlueprint,
    spec: StreamletSpec,
    options: DeployOptions,
    config_hash: str,
    *,
    autoscaled: bool = False,
) -> dict[str, Any]:
    """The workload that runs the replicas of one streamlet: a Deployment, a StatefulSet or
    a Job (see :func:`workload_kind`).

    An autoscaled streamlet has no ``replicas`` field: its ScaledObject owns the count, and
    re-applying the manifests must not reset it.
    """
    app = verified.name
    kind = workload_kind(spec, options)
    labels = naming.streamlet_labels(app, spec.name)
    container = _container(verified, spec, options)
    replicas = options.replicas(spec.name, spec.replicas)
    body: dict[str, Any] = {}
    if kind == "Job":
        body["completions"] = replicas
        body["parallelism"] = replicas
        body["completionMode"] = "Indexed"
        body["backoffLimit"] = 6
        container["env"].append(_replica_index(f"metadata.annotations['{_COMPLETION_INDEX}']"))
    else:
        if not autoscaled:
            body["replicas"] = replicas
        body["revisionHistoryLimit"] = 5
        body["selector"] = {"matchLabels": naming.selector_labels(app, spec.name)}
    if kind == "StatefulSet":
        body["serviceName"] = naming.headless_service_name(app, spec.name)
        body["podManagementPolicy"] = "Parallel"
        body["updateStrategy"] = {"type": "RollingUpdate"}
        container["env"].append(_replica_index(f"metadata.labels['{_POD_INDEX}']"))
        claim = state_claim_template(spec, naming.streamlet_labels(app, spec.name, "state"))
        if claim is not None:
            body["volumeClaimTemplates"] = [claim]
    elif kind == "Deployment":
        body["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
    body["template"] = {
        "metadata": {
            "labels": labels,
            "annotations": {
                naming.CONFIG_HASH_ANNOTATION: config_hash,
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(options.metrics_port),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 60,
            "securityContext": pod_security_context(),
            **({"restartPolicy": "OnFailure"} if kind == "Job" else {}),
            "containers": [container],
            "volumes": _volumes(app, spec, kind),
        },
    }
    return {
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "kind": kind,
        "metadata": metadata(naming.deployment_name(app, spec.name), options.namespace, labels),
        "spec": body,
    }


def service(
    verified: VerifiedBlueprint, spec: StreamletSpec, options: DeployOptions
) -> dict[str, Any]:
    """The ClusterIP Service in front of an HTTP ingress streamlet's pods."""
    port = http_port(spec)
    assert port is not None, f"{spec.name} is not an HTTP ingress"
    app = verified.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            naming.service_name(app, spec.name),
            options.namespace,
            naming.streamlet_labels(app, spec.name, "ingress"),
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector_labels(app, spec.name),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def headless_service(
    verified: VerifiedBlueprint, spec: StreamletSpec, options: DeployOptions
) -> dict[str, Any]:
    """The headless Service a StatefulSet names in ``serviceName`` (no cluster IP)."""
    app = verified.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            naming.headless_service_name(app, spec.name),
            options.namespace,
            naming.streamlet_labels(app, spec.name),
        ),
        "spec": {
            "clusterIP": "None",
            "selector": naming.selector_labels(app, spec.name),
            "ports": [
                {
                    "name": "metrics",
                    "port": options.metrics_port,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ],
        },
    }


def ingress(
    verified: VerifiedBlueprint, spec: StreamletSpec, options: DeployOptions, host: str
) -> dict[str, Any]:
    """An Ingress routing ``host`` to an HTTP ingress streamlet's Service."""
    port = http_port(spec)
    assert port is not None, f"{spec.name} is not an HTTP ingress"
    app = verified.name
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(
            naming.service_name(app, spec.name),
            options.namespace,
            naming.streamlet_labels(app, spec.name, "ingress"),
        ),
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": naming.service_name(app, spec.name),
                                        "port": {"name": "http"},
                                    }
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }
