"""Operations on a deployed application through kubectl: apply, undeploy, scale, configure,
status. Each function says in its docstring which kubectl calls it makes.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blueprint import BlueprintSource, ConfigOverrides, Location, Problem, verify_source
from blueprint.names import did_you_mean
from blueprint.yamlsource import load_yaml_text
from runner.k8s import naming
from runner.k8s.config import AppConfig, build_app_config, plain
from runner.k8s.kubectl import Kubectl, KubectlError
from runner.k8s.render import config_map, secret
from streamlets.errors import StreamletsError

__all__ = [
    "ConfigProblemsError",
    "ConfigureResult",
    "StreamletStatus",
    "app_selector",
    "apply_directory",
    "configure",
    "format_status",
    "scale",
    "status",
    "status_rows",
    "undeploy",
]

_SOURCE = re.compile(r"^# Deployed by 'flow deploy' from (.+?);")


def app_selector(app: str) -> str:
    """The label selector of every resource ``flow deploy`` made for ``app``."""
    return f"app.kubernetes.io/part-of={app},app.kubernetes.io/managed-by={naming.MANAGED_BY}"


def _ns(namespace: str | None) -> list[str]:
    return ["--namespace", namespace] if namespace else []


def _where(namespace: str | None) -> str:
    return f"namespace '{namespace}'" if namespace else "the current namespace"


def apply_directory(kubectl: Kubectl, directory: str) -> str:
    """``kubectl apply -k DIRECTORY``; returns kubectl's report."""
    return kubectl.run(["apply", "-k", directory])


def undeploy(
    kubectl: Kubectl,
    app: str,
    namespace: str | None,
    *,
    delete_topics: bool = False,
    topic_namespace: str | None = None,
) -> str:
    """Delete the application's resources; its Kafka topics (and data) stay unless asked.

    Calls ``kubectl delete deployments,statefulsets,jobs,services,
    ingresses.networking.k8s.io,configmaps,secrets -l SELECTOR --ignore-not-found``, then
    ``kubectl delete scaledobjects.keda.sh`` with the same selector (skipped when KEDA is
    not installed) and, with ``delete_topics``, ``kubectl delete
    kafkatopics.kafka.strimzi.io`` and the state volumes' claims, ``kubectl delete
    persistentvolumeclaims -l SELECTOR,app.kubernetes.io/component=state --wait=false``:
    a store whose changelog is gone would bring back values the topics no longer hold.
    Without it the claims stay, like the topics, and a later deploy picks them up.
    """
    selector = ["-l", app_selector(app), "--ignore-not-found"]
    kinds = "deployments,statefulsets,jobs,services,ingresses.networking.k8s.io,configmaps,secrets"
    reports = [kubectl.run(["delete", kinds, *selector, *_ns(namespace)])]
    optional = [("scaledobjects.keda.sh", namespace)]
    if delete_topics:
        optional.append(("kafkatopics.kafka.strimzi.io", topic_namespace or namespace))
    for kind, where in optional:
        try:
            reports.append(kubectl.run(["delete", kind, *selector, *_ns(where)]))
        except KubectlError as exc:
            if "doesn't have a resource type" not in str(exc):
                raise
    if delete_topics:
        claims = f"{app_selector(app)},app.kubernetes.io/component=state"
        # --wait=false: a claim goes once the pods using it have stopped.
        args = ["delete", "persistentvolumeclaims", "-l", claims, "--ignore-not-found"]
        reports.append(kubectl.run([*args, "--wait=false", *_ns(namespace)]))
    return "".join(r for r in reports if r.strip())


#: The workloads of the streamlets: Deployments, StatefulSets (exactly-once), Jobs (--job).
WORKLOADS = "deployments,statefulsets,jobs"


def _workloads(kubectl: Kubectl, app: str, namespace: str | None) -> list[dict[str, Any]]:
    found = kubectl.json(["get", WORKLOADS, "-l", app_selector(app), *_ns(namespace)])
    return list(found.get("items", []))


def _kind(workload: Mapping[str, Any]) -> str:
    return str(workload.get("kind") or "Deployment").lower()


def _streamlet_of(resource: Mapping[str, Any]) -> str:
    return str(resource.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/name", ""))


def scale(kubectl: Kubectl, app: str, streamlet: str, replicas: int, namespace: str | None) -> str:
    """Set the replicas of one streamlet.

    Calls ``kubectl get deployments,statefulsets,jobs -l SELECTOR -o json`` (to find the
    streamlet's workload) and ``kubectl scale deployment|statefulset NAME --replicas=N``.
    """
    deployments = _workloads(kubectl, app, namespace)
    if not deployments:
        raise KubectlError(f"no application '{app}' is deployed in {_where(namespace)}")
    by_streamlet = {_streamlet_of(d): d for d in deployments}
    target = by_streamlet.get(streamlet)
    if target is None:
        names = sorted(by_streamlet)
        hint = did_you_mean(streamlet, names) or f"its streamlets are: {', '.join(names)}"
        raise KubectlError(f"application '{app}' has no streamlet '{streamlet}' ({hint})")
    name = str(target["metadata"]["name"])
    if _kind(target) == "job":
        raise KubectlError(
            f"streamlet '{streamlet}' of '{app}' runs as a Job (a bounded source run once); "
            "a Job is not scaled: deploy it with --scale instead"
        )
    return kubectl.run(["scale", _kind(target), name, f"--replicas={replicas}", *_ns(namespace)])


@dataclass(frozen=True, slots=True)
class ConfigureResult:
    """What ``configure`` changed: the config keys (never their values) and the restarts."""

    changed: tuple[str, ...]
    restarted: tuple[str, ...]
    config_hash: str


def _decoded(resource: Mapping[str, Any], key: str) -> str:
    raw = resource.get("data", {}).get(key)
    return base64.b64decode(raw).decode() if raw else ""


def _merged_overrides(deployed: Mapping[str, Any], new: ConfigOverrides) -> ConfigOverrides:
    """The deployed secret config file with the new overrides on top, key by key."""
    where = Location("deployed Secret")
    values: dict[str, dict[str, tuple[Any, Location]]] = {}
    sections: dict[str, Any] = {}
    for name, body in deployed.items():
        if name in {"kafka", "schema_registry", "runner"}:
            sections[name] = body
        elif isinstance(body, Mapping):
            values[name] = {str(k): (v, where) for k, v in body.items()}
    for name, entries in new.values.items():
        values.setdefault(name, {}).update(entries)
    sections.update({k: plain(v) for k, v in new.sections.items()})
    return ConfigOverrides(values, sections, new.problems)


class ConfigProblemsError(StreamletsError):
    """The new config does not validate; ``problems`` says why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("the new config does not validate")
        self.problems = tuple(problems)


def configure(
    kubectl: Kubectl,
    app: str,
    overrides: ConfigOverrides,
    namespace: str | None,
    *,
    code_dir: str = ".",
) -> ConfigureResult:
    """Change the config of a deployed application and roll its pods.

    The deployed blueprint (ConfigMap) and secret config (Secret) are read back, the new
    values applied, and the result verified locally like ``flow verify``, from the text,
    with ``code_dir`` as the blueprint's directory (the streamlet classes are imported
    from there; ``sys.path`` is left as it was) before anything changes. Then the ConfigMap
    and Secret are replaced and every Deployment's config-hash annotation is set, which
    makes Kubernetes restart the pods one by one.

    Calls ``kubectl get configmap NAME -o json``, ``kubectl get secret NAME -o json``,
    ``kubectl get deployments,statefulsets,jobs -l SELECTOR -o json``, ``kubectl apply -f -``
    (ConfigMap and
    Secret on standard input, so no secret value is on a command line) and
    ``kubectl patch deployment|statefulset NAME --type merge -p PATCH`` per streamlet.
    """
    try:
        current_map = kubectl.json(
            ["get", "configmap", naming.config_map_name(app), *_ns(namespace)]
        )
    except KubectlError as exc:
        if "NotFound" in str(exc) or "not found" in str(exc):
            raise KubectlError(
                f"no application '{app}' is deployed in {_where(namespace)} (there is no "
                f"ConfigMap '{naming.config_map_name(app)}'); deploy it with 'flow deploy'"
            ) from None
        raise
    current_secret = kubectl.json(["get", "secret", naming.secret_name(app), *_ns(namespace)])
    blueprint_text = current_map.get("data", {}).get("blueprint.yaml", "")
    # The loader of blueprints, which bounds what YAML aliases may expand to.
    deployed_secret = load_yaml_text(_decoded(current_secret, "secret-config.yaml"), app).data or {}
    document = load_yaml_text(blueprint_text, app).data or {}
    found = _SOURCE.match(blueprint_text)
    source = found.group(1) if found else "the deployed blueprint"
    merged = _merged_overrides(deployed_secret, overrides)
    deployed = BlueprintSource(
        text=blueprint_text,
        display=f"{app} (deployed blueprint)",
        directory=os.path.abspath(code_dir),
    )
    verification = verify_source(deployed, merged)
    if verification.blueprint is None:
        raise ConfigProblemsError(verification.problems)
    result = verification.blueprint
    new_config = build_app_config(result, document, merged, source=source)
    _apply_config(kubectl, app, new_config, namespace)
    config_hash = new_config.config_hash()
    patch = json.dumps(
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {naming.CONFIG_HASH_ANNOTATION: config_hash}}
                }
            }
        },
        separators=(",", ":"),
    )
    restarted: list[str] = []
    for item in _workloads(kubectl, app, namespace):
        name = str(item["metadata"]["name"])
        if _kind(item) == "job":
            continue  # a Job's pod template cannot change; its next run reads the new config
        annotations = item.get("spec", {}).get("template", {}).get("metadata", {})
        if annotations.get("annotations", {}).get(naming.CONFIG_HASH_ANNOTATION) == config_hash:
            continue
        kubectl.run(["patch", _kind(item), name, "--type", "merge", "-p", patch, *_ns(namespace)])
        restarted.append(_streamlet_of(item) or name)
    changed = tuple(
        f"{name}.{key}" for name, entries in overrides.values.items() for key in entries
    ) + tuple(overrides.sections)
    return ConfigureResult(changed, tuple(restarted), config_hash)


def _apply_config(kubectl: Kubectl, app: str, config: AppConfig, namespace: str | None) -> None:
    items = [config_map(app, config, namespace), secret(app, config, namespace)]
    document = {"apiVersion": "v1", "kind": "List", "items": items}
    kubectl.run(["apply", "-f", "-"], stdin=json.dumps(document))


@dataclass(frozen=True, slots=True)
class StreamletStatus:
    """One row of ``flow status``."""

    streamlet: str
    desired: int
    ready: int
    updated: int
    available: int
    restarts: int
    state: str


def status_rows(
    deployments: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> list[StreamletStatus]:
    """Per streamlet: desired/ready/up-to-date/available replicas, restarts and a state."""
    rows: list[StreamletStatus] = []
    for item in deployments:
        labels = item.get("metadata", {}).get("labels", {})
        instance = labels.get("app.kubernetes.io/instance")
        spec, state_of = item.get("spec", {}), item.get("status", {})
        job = _kind(item) == "job"
        if job:  # desired: completions; up-to-date and available: pods that succeeded
            desired = int(spec.get("completions", 1))
            ready = int(state_of.get("ready", 0))
            updated = available = int(state_of.get("succeeded", 0))
        else:
            desired = int(spec.get("replicas", 1))
            ready = int(state_of.get("readyReplicas", 0))
            updated = int(state_of.get("updatedReplicas", 0))
            available = int(state_of.get("availableReplicas", 0))
        restarts = 0
        reasons: set[str] = set()
        for pod in pods:
            pod_labels = pod.get("metadata", {}).get("labels", {})
            if pod_labels.get("app.kubernetes.io/instance") != instance:
                continue
            for container in pod.get("status", {}).get("containerStatuses", []):
                restarts += int(container.get("restartCount", 0))
                waiting = container.get("state", {}).get("waiting") or {}
                if waiting.get("reason"):
                    reasons.add(str(waiting["reason"]))
        conditions = {c.get("type"): c.get("status") for c in state_of.get("conditions", []) if job}
        if conditions.get("Complete") == "True":
            state = "complete"
        elif conditions.get("Failed") == "True":
            state = "failed"
        elif reasons:
            state = ", ".join(sorted(reasons))
        elif job:
            state = "running"
        elif desired == 0:
            state = "scaled to 0"
        elif ready >= desired and updated >= desired:
            state = "ready"
        elif updated < desired:
            state = "rolling out"
        else:
            state = "starting"
        rows.append(
            StreamletStatus(
                _streamlet_of(item) or str(item["metadata"]["name"]),
                desired,
                ready,
                updated,
                available,
                restarts,
                state,
            )
        )
    return sorted(rows, key=lambda r: r.streamlet)


def status(kubectl: Kubectl, app: str, namespace: str | None) -> list[StreamletStatus]:
    """The status of every streamlet of ``app``.

    Calls ``kubectl get deployments,statefulsets,jobs -l SELECTOR -o json`` and
    ``kubectl get pods -l SELECTOR -o json``.
    """
    deployments = _workloads(kubectl, app, namespace)
    if not deployments:
        raise KubectlError(f"no application '{app}' is deployed in {_where(namespace)}")
    pods = kubectl.json(["get", "pods", "-l", app_selector(app), *_ns(namespace)])
    return status_rows(deployments, list(pods.get("items", [])))


def format_status(rows: Sequence[StreamletStatus]) -> str:
    """The status rows as an aligned text table."""
    header = ("STREAMLET", "DESIRED", "READY", "UP-TO-DATE", "AVAILABLE", "RESTARTS", "STATE")
    table = [header] + [
        (
            r.streamlet,
            str(r.desired),
            str(r.ready),
            str(r.updated),
            str(r.available),
            str(r.restarts),
            r.state,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join(lines) + "\n"
