"""The manifests of ``flow deploy`` against the real schemas, offline.

Built-in kinds validate with kubernetes-validate (strict: unknown fields are errors) for
the oldest and newest Kubernetes versions it knows; KafkaTopic and ScaledObject validate
against the CRDs vendored from the Strimzi and KEDA releases (tests/integration/schemas),
made strict the way the API server prunes: unknown fields are errors unless the CRD
preserves them. Every pod template is checked against the restricted Pod Security
Standard, every name against DNS-1123, and the directory is built with
``kubectl kustomize`` when kubectl is installed.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from runner.cli import cli
from tests.integration.test_manifests_app import SECRET_VALUES, write_orders_app
from tests.integration.test_manifests_state_app import write_counters_app

ROOT = Path(__file__).resolve().parents[2]
SENSORS = ROOT / "examples" / "sensors" / "blueprint.yaml"
FRAUD = ROOT / "examples" / "fraud-counters" / "blueprint.yaml"
#: A pod's files are read-only but /tmp, and a restarted pod must not empty its file.
FRAUD_SETS = ("--set", "alerts-file.mode=append", "--set", "alerts-file.path=/tmp/a.jsonl")
STATS = ROOT / "examples" / "sensor-stats" / "blueprint.yaml"
#: The same for the sensor-stats example's sink; its two bounded sources run as Jobs.
STATS_OPTIONS = (
    "--set",
    "stats-file.mode=append",
    "--set",
    "stats-file.path=/tmp/minute-stats.jsonl",
    "--job",
    "readings",
    "--job",
    "locations",
)
SCHEMAS = Path(__file__).parent / "schemas"
CRDS = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): SCHEMAS / "strimzi-1.2.0-kafkatopic.crd.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda-2.20.2-scaledobject.crd.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): SCHEMAS
    / "keda-2.20.2-triggerauthentication.crd.yaml",
}
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
WORKLOADS = ("Deployment", "StatefulSet", "Job")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def deploy(args: list[str], out: Path) -> Path:
    result = CliRunner().invoke(cli, ["deploy", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def resources(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return [yaml.safe_load((directory / f).read_text()) for f in kustomization["resources"]]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sensors, fraud-counters and sensor-stats examples and the orders and counters
    apps, deployed with different options."""
    tmp = tmp_path_factory.mktemp("manifests")
    blueprint, config = write_orders_app(tmp / "orders")
    return {
        "sensors": deploy([str(SENSORS), "--image", "registry.example/sensors:1.0"], tmp / "s"),
        "sensors-prod": deploy(
            [
                str(SENSORS),
                "--image",
                "registry.example/sensors:1.0",
                "--scale",
                "threshold=4",
                "--namespace",
                "prod",
                "--kafka-cluster",
                "my-cluster",
                "--kafka-namespace",
                "kafka",
                "--autoscale",
                "--memory",
                "1Gi",
                "--cpu",
                "threshold=500m",
                "--job",
                "ingest",
            ],
            tmp / "sp",
        ),
        "orders": deploy(
            [
                str(blueprint),
                "--image",
                "registry.example/orders:2",
                "--config",
                str(config),
                "--autoscale",
                "--ingress",
                "http-in=orders.example.com",
            ],
            tmp / "o",
        ),
        # stateful: a claim per pod (StatefulSet), an emptyDir, an ephemeral volume (Job)
        "fraud": deploy(
            [str(FRAUD), "--image", "registry.example/fraud:1", *FRAUD_SETS],
            tmp / "f",
        ),
        # a window's state (a StatefulSet, an emptyDir, a changelog), a global table
        "sensor-stats": deploy(
            [str(STATS), "--image", "registry.example/sensor-stats:1", *STATS_OPTIONS],
            tmp / "ss",
        ),
        "counters": deploy(
            [
                str(write_counters_app(tmp / "counters")),
                "--image",
                "registry.example/counters:1",
                "--job",
                "source",
                "--autoscale",
            ],
            tmp / "c",
        ),
    }


def all_resources(deployed: dict[str, Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    for app, directory in deployed.items():
        for resource in resources(directory):
            yield app, resource


def _strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it: unknown fields are errors."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    crd = yaml.safe_load(CRDS[(api_version, kind)].read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group
    assert crd["spec"]["names"]["kind"] == kind
    served = {v["name"]: v for v in crd["spec"]["versions"] if v["served"]}
    assert version in served, f"{kind} CRD serves {sorted(served)}, not {version}"
    return jsonschema.Draft202012Validator(_strict(served[version]["schema"]["openAPIV3Schema"]))


def test_the_strimzi_crd_serves_v1_only() -> None:
    crd = yaml.safe_load(CRDS[("kafka.strimzi.io/v1", "KafkaTopic")].read_text())
    assert [v["name"] for v in crd["spec"]["versions"] if v["served"]] == ["v1"]


def test_every_resource_validates(deployed: dict[str, Path]) -> None:
    kinds: set[str] = set()
    for app, resource in all_resources(deployed):
        kinds.add(resource["kind"])
        key = (resource["apiVersion"], resource["kind"])
        if key in CRDS:
            errors = sorted(crd_validator(*key).iter_errors(resource), key=str)
            assert not errors, f"{app} {key}: {[e.message for e in errors]}"
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{app} {resource['kind']} {where}: {exc.message} (k8s {version})")
    assert kinds == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "StatefulSet",
        "Job",
        "Service",
        "Ingress",
        "KafkaTopic",
        "ScaledObject",
        "TriggerAuthentication",
    }


def test_a_wrong_resource_fails_validation(deployed: dict[str, Path]) -> None:
    """The validation above can fail: a typo in a field is caught, in both kinds of schema."""
    by_kind = {r["kind"]: r for _, r in all_resources(deployed)}
    deployment = yaml.safe_load(yaml.safe_dump(by_kind["Deployment"]))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    topic = yaml.safe_load(yaml.safe_dump(by_kind["KafkaTopic"]))
    topic["spec"]["partition"] = 3
    assert list(crd_validator("kafka.strimzi.io/v1", "KafkaTopic").iter_errors(topic))
    scaled = yaml.safe_load(yaml.safe_dump(by_kind["ScaledObject"]))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 100  # must be a string
    assert list(crd_validator("keda.sh/v1alpha1", "ScaledObject").iter_errors(scaled))


def test_names_and_labels_are_valid(deployed: dict[str, Path]) -> None:
    for app, resource in all_resources(deployed):
        meta = resource["metadata"]
        pattern = DNS_SUBDOMAIN if resource["kind"] == "KafkaTopic" else DNS_LABEL
        assert pattern.fullmatch(meta["name"]) and len(meta["name"]) <= 63, (app, meta["name"])
        for key, value in meta["labels"].items():
            assert LABEL_VALUE.fullmatch(value) and len(value) <= 63, (app, key, value)
        for key in ("name", "instance", "component", "part-of", "managed-by"):
            assert f"app.kubernetes.io/{key}" in meta["labels"], (app, resource["kind"])
        if resource["kind"] == "KafkaTopic":
            assert meta["labels"]["strimzi.io/cluster"] == "my-cluster"


SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Violations of the baseline and restricted Pod Security Standards (v1.30 rules)."""
    found: list[str] = []
    psc = pod.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"{field} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']} is of type {sorted(kinds)}")
    for sysctl in psc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"unsafe sysctl {sysctl['name']}")
    if psc.get("seccompProfile", {}).get("type") == "Unconfined":
        found.append("pod seccomp is Unconfined")
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    assert containers
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            found.append(f"{name}: capabilities are not all dropped")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {caps['add']}")
        run_as_non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            found.append(f"{name}: runs as user 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccomp profile is {seccomp!r}")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount {sc['procMount']}")
        if sc.get("windowsOptions", {}).get("hostProcess"):
            found.append(f"{name}: hostProcess")
        se = sc.get("seLinuxOptions", {})
        if se.get("user") or se.get("role"):
            found.append(f"{name}: seLinux user/role set")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
        # Beyond the profile: what the image relies on and the issue asks for.
        if sc.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: root filesystem is writable")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
            found.append(f"{name}: no emptyDir on /tmp")
    return found


def test_every_pod_meets_the_restricted_profile(deployed: dict[str, Path]) -> None:
    pods = 0
    for app, resource in all_resources(deployed):
        if resource["kind"] in WORKLOADS:
            pods += 1
            pod = resource["spec"]["template"]["spec"]
            assert restricted_violations(pod) == [], (app, resource["metadata"]["name"])
    assert pods == 21


def test_the_restricted_check_can_fail(deployed: dict[str, Path]) -> None:
    deployment = next(r for _, r in all_resources(deployed) if r["kind"] == "Deployment")
    pod = yaml.safe_load(yaml.safe_dump(deployment["spec"]["template"]["spec"]))
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["securityContext"]["runAsNonRoot"] = False
    del pod["containers"][0]["securityContext"]["runAsNonRoot"]
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert len(restricted_violations(pod)) == 3


def test_pods_run_the_streamlet_with_probes_and_metrics(deployed: dict[str, Path]) -> None:
    for _, resource in all_resources(deployed):
        if resource["kind"] not in WORKLOADS:
            continue
        template = resource["spec"]["template"]
        container = template["spec"]["containers"][0]
        name = resource["metadata"]["labels"]["app.kubernetes.io/name"]
        assert container["args"][:3] == ["run-streamlet", "/etc/streamlets/blueprint.yaml", name]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "9090"
        assert re.fullmatch(r"[0-9a-f]{16}", annotations["streamlets.io/config-hash"])


def test_options_reach_the_manifests(deployed: dict[str, Path]) -> None:
    prod = {(r["kind"], r["metadata"]["name"]): r for r in resources(deployed["sensors-prod"])}
    threshold = prod[("Deployment", "sensor-alerts-threshold")]
    assert "replicas" not in threshold["spec"]  # the ScaledObject owns it
    scaled = prod[("ScaledObject", "sensor-alerts-threshold")]["spec"]
    assert scaled["minReplicaCount"] == 4
    assert scaled["maxReplicaCount"] == 4  # 3 partitions, never fewer than the minimum
    trigger = scaled["triggers"][0]["metadata"]
    assert trigger["topic"] == "readings"
    assert trigger["consumerGroup"] == "sensor-alerts.threshold"
    assert trigger["bootstrapServers"] == "my-cluster-kafka-bootstrap.kafka.svc:9092"
    assert ("ScaledObject", "sensor-alerts-ingest") not in prod  # a source has no lag
    job = prod[("Job", "sensor-alerts-ingest")]["spec"]  # --job: the bounded source runs once
    assert (job["completions"], job["parallelism"], job["completionMode"]) == (1, 1, "Indexed")
    assert job["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert ("Deployment", "sensor-alerts-ingest") not in prod
    container = threshold["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {  # --cpu/--memory over the blueprint's resources
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    for (kind, _), resource in prod.items():
        expected = "kafka" if kind == "KafkaTopic" else "prod"
        assert resource["metadata"]["namespace"] == expected

    orders = {(r["kind"], r["metadata"]["name"]): r for r in resources(deployed["orders"])}
    service = orders[("Service", "orders-http-in")]["spec"]
    assert service["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    pods = orders[("Deployment", "orders-http-in")]["spec"]["template"]
    assert service["selector"].items() <= pods["metadata"]["labels"].items()
    ingress = orders[("Ingress", "orders-http-in")]["spec"]["rules"][0]
    assert ingress["host"] == "orders.example.com"
    # the application's resources for every streamlet, a streamlet's own over them
    assert pods["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    pricing = orders[("StatefulSet", "orders-pricing")]["spec"]["template"]["spec"]
    assert pricing["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "2Gi"},  # its own request raised the app's limit
        "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "1Gi"},
    }
    assert "resources" not in orders[("ConfigMap", "orders-config")]["data"]["blueprint.yaml"]
    odd = [r for (k, _), r in orders.items() if k == "KafkaTopic" and r["spec"].get("topicName")]
    assert [r["spec"]["topicName"] for r in odd] == ["Orders_V1"]
    assert odd[0]["spec"]["partitions"] == 6 and odd[0]["spec"]["replicas"] == 3
    dead = sorted(n for k, n in orders if k == "KafkaTopic" and n.endswith(".dead-letters"))
    assert dead == ["orders.http-in.dead-letters", "orders.pricing.dead-letters"]  # archive skips
    # KEDA authenticates like the pods: SASL/SCRAM over TLS, credentials from the Secret.
    trigger = orders[("ScaledObject", "orders-archive")]["spec"]["triggers"][0]
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"] == {"name": "orders-kafka"}
    refs = orders[("TriggerAuthentication", "orders-kafka")]["spec"]["secretTargetRef"]
    assert refs == [
        {"parameter": "username", "name": "orders-secret", "key": "keda-kafka-username"},
        {"parameter": "password", "name": "orders-secret", "key": "keda-kafka-password"},
    ]
    secret_data = orders[("Secret", "orders-secret")]["data"]
    assert base64.b64decode(secret_data["keda-kafka-password"]) == b"kafka-sasl-pw-42"
    # The exactly-once streamlet runs as a StatefulSet whose pods know their index.
    pricing = orders[("StatefulSet", "orders-pricing")]
    assert ("Deployment", "orders-pricing") not in orders
    env = pricing["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "STREAMLETS_REPLICA",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}},
    } in env
    headless = orders[("Service", "orders-pricing-pods")]["spec"]
    assert pricing["spec"]["serviceName"] == "orders-pricing-pods"
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == pricing["spec"]["selector"]["matchLabels"]
    target = orders[("ScaledObject", "orders-pricing")]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "orders-pricing"}
    blueprint = yaml.safe_load(orders[("ConfigMap", "orders-config")]["data"]["blueprint.yaml"])
    assert blueprint["streamlets"]["http-in"]["config"]["host"] == "0.0.0.0"
    assert blueprint["streamlets"]["archive"]["config"] == {"directory": "/app/out"}


def test_secret_values_appear_only_in_the_secret(deployed: dict[str, Path], tmp_path: Path) -> None:
    directory = deployed["orders"]
    encoded = [base64.b64encode(v.encode()).decode() for v in SECRET_VALUES]
    secret_text = ""
    for path in sorted(directory.iterdir()):
        text = path.read_text()
        if path.name == "secret.yaml":
            secret_text = text
            continue
        for value in (*SECRET_VALUES, *encoded):
            assert value not in text, f"{value!r} in {path.name}"
    secret = yaml.safe_load(secret_text)
    inside = yaml.safe_load(base64.b64decode(secret["data"]["secret-config.yaml"]))
    assert inside == {
        "pricing": {"api_key": "s3cr3t-api-key-0001"},
        "archive": {"password": "hunter2-archive-pw"},
        "kafka": {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "orders",
            "sasl.password": "kafka-sasl-pw-42",
        },
    }
    assert os.stat(directory / "secret.yaml").st_mode & 0o077 == 0
    assert "secret.yaml" in (directory / ".gitignore").read_text().splitlines()

    # Printed instead of written: everything but the Secret, and never a secret value.
    blueprint, config = write_orders_app(tmp_path / "orders")
    result = CliRunner().invoke(
        cli, ["deploy", str(blueprint), "--image", "x:1", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    for value in (*SECRET_VALUES, *encoded):
        assert value not in result.output
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert "Secret" not in kinds and "Deployment" in kinds
    assert "the Secret is not printed" in result.stderr


def test_output_is_byte_identical_across_runs(tmp_path: Path) -> None:
    args = [str(SENSORS), "--image", "registry.example/sensors:1.0", "--autoscale"]
    first = deploy(args, tmp_path / "a")
    cwd = os.getcwd()
    os.chdir(SENSORS.parent)
    try:
        second = deploy(["blueprint.yaml", *args[1:]], tmp_path / "b")
    finally:
        os.chdir(cwd)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not installed on this machine (it ships with the machine image; "
    "install it with your distribution's kubectl package to run this check)",
)
def test_kubectl_kustomize_builds_the_output(deployed: dict[str, Path]) -> None:
    for app, directory in deployed.items():
        proc = subprocess.run(
            ["kubectl", "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"{app}: {proc.stderr}"
        built = [d for d in yaml.safe_load_all(proc.stdout) if d]
        expected = resources(directory)
        key = lambda r: (r["kind"], r["metadata"]["name"])  # noqa: E731
        assert sorted(map(key, built)) == sorted(map(key, expected)), app
