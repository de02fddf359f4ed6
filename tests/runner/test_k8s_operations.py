"""``flow deploy --apply``, undeploy, scale, configure and status against a fake kubectl.

There is no cluster here: a ``kubectl`` script on PATH records every call (arguments,
standard input, the files of an applied directory) and answers from a table of canned
responses, so the tests check exactly which kubectl calls each command makes.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from runner.cli import cli
from tests.integration.test_manifests_app import SECRET_VALUES, write_orders_app

ROOT = Path(__file__).resolve().parents[2]
SENSORS = ROOT / "examples" / "sensors" / "blueprint.yaml"
SELECTOR = "app.kubernetes.io/part-of={app},app.kubernetes.io/managed-by=streamlets"

FAKE = """#!{python}
import json, os, sys
args = sys.argv[1:]
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
call = {{"args": args, "stdin": stdin}}
if "-k" in args:
    directory = args[args.index("-k") + 1]
    call["files"] = {{n: open(os.path.join(directory, n)).read() for n in os.listdir(directory)}}
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(call) + "\\n")
with open(os.environ["FAKE_KUBECTL_RESPONSES"]) as fh:
    responses = json.load(fh)
for response in responses:
    words = response["when"]
    if all(any(w in a for a in args) for w in words):
        sys.stdout.write(response.get("stdout", ""))
        sys.stderr.write(response.get("stderr", ""))
        sys.exit(response.get("code", 0))
sys.stdout.write("ok\\n")
"""


class FakeKubectl:
    """The fake's responses (first match wins: each word of ``when`` is in some argument)."""

    def __init__(self, directory: Path) -> None:
        self.log = directory / "calls.jsonl"
        self.responses_file = directory / "responses.json"
        self.responses: list[dict[str, Any]] = []
        self.save()

    def on(self, *when: str, stdout: Any = "", stderr: str = "", code: int = 0) -> None:
        text = stdout if isinstance(stdout, str) else json.dumps(stdout)
        self.responses.append({"when": list(when), "stdout": text, "stderr": stderr, "code": code})
        self.save()

    def save(self) -> None:
        self.responses_file.write_text(json.dumps(self.responses))

    @property
    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    @property
    def argv(self) -> list[list[str]]:
        return [c["args"] for c in self.calls]


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    fake = FakeKubectl(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_KUBECTL_RESPONSES", str(fake.responses_file))
    return fake


def flow(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def deployment_json(app: str, streamlet: str, **status: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{app}-{streamlet}",
            "labels": {
                "app.kubernetes.io/name": streamlet,
                "app.kubernetes.io/instance": f"{app}-{streamlet}",
            },
        },
        "spec": {
            "replicas": status.pop("desired", 1),
            "template": {"metadata": {"annotations": {"streamlets.io/config-hash": "old"}}},
        },
        "status": status,
    }


# -- deploy --apply ---------------------------------------------------------------------


def test_deploy_apply_hands_the_directory_to_kubectl(kubectl: FakeKubectl) -> None:
    result = flow("deploy", str(SENSORS), "--image", "reg/sensors:1", "--apply", "-n", "prod")
    assert result.exit_code == 0, result.output
    (call,) = kubectl.calls
    assert call["args"][:2] == ["apply", "-k"]
    files = call["files"]
    assert "kustomization.yaml" in files and "deployment-threshold.yaml" in files
    assert yaml.safe_load(files["deployment-threshold.yaml"])["metadata"]["namespace"] == "prod"
    assert not Path(call["args"][2]).exists()  # a temporary directory, removed afterwards
    assert "flow status sensor-alerts -n prod" in result.stderr


def test_deploy_apply_with_output_keeps_the_files(kubectl: FakeKubectl, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    result = flow("deploy", str(SENSORS), "--image", "i:1", "-o", str(out), "--apply")
    assert result.exit_code == 0, result.output
    assert kubectl.argv == [["apply", "-k", str(out)]]
    assert (out / "kustomization.yaml").exists()


def test_deploy_apply_reports_an_unreachable_cluster(kubectl: FakeKubectl) -> None:
    kubectl.on(
        "apply",
        stderr='error: Get "https://10.0.0.1:6443/openapi/v2": dial tcp 10.0.0.1:6443: '
        "connect: connection refused\n",
        code=1,
    )
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--apply")
    assert result.exit_code == 1
    assert "cannot reach the Kubernetes cluster" in result.output
    assert "kubectl config current-context" in result.output
    assert "Traceback" not in result.output


def test_a_missing_kubectl_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for args in (
        ["deploy", str(SENSORS), "--image", "i:1", "--apply"],
        ["status", "sensor-alerts"],
        ["scale", "sensor-alerts", "threshold", "3"],
        ["undeploy", "sensor-alerts"],
        ["configure", "sensor-alerts", "--set", "threshold.limit=28"],
    ):
        result = flow(*args)
        assert result.exit_code == 1, args
        assert "kubectl is not on PATH" in result.output, args


def test_kubectl_errors_pass_through(kubectl: FakeKubectl) -> None:
    kubectl.on(
        "apply", stderr='Error from server (Forbidden): namespaces "prod" is forbidden\n', code=1
    )
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--apply", "--context", "staging")
    assert result.exit_code == 1
    assert "'kubectl apply -k" in result.output and "Forbidden" in result.output
    assert kubectl.argv[0][:2] == ["--context", "staging"]


# -- undeploy ---------------------------------------------------------------------------


def test_undeploy_deletes_by_label_and_keeps_topics(kubectl: FakeKubectl) -> None:
    kubectl.on(
        "delete",
        "deployments,statefulsets,jobs,services,ingresses.networking.k8s.io,configmaps,secrets",
        stdout='deployment.apps "sensor-alerts-threshold" deleted\n',
    )
    kubectl.on(
        "scaledobjects.keda.sh",
        stderr='error: the server doesn\'t have a resource type "scaledobjects"\n',
        code=1,
    )
    result = flow("undeploy", "sensor-alerts", "-n", "prod")
    assert result.exit_code == 0, result.output
    selector = SELECTOR.format(app="sensor-alerts")
    assert kubectl.argv == [
        [
            "delete",
            "deployments,statefulsets,jobs,services,ingresses.networking.k8s.io,configmaps,secrets",
            "-l",
            selector,
            "--ignore-not-found",
            "--namespace",
            "prod",
        ],
        [
            "delete",
            "scaledobjects.keda.sh",
            "-l",
            selector,
            "--ignore-not-found",
            "--namespace",
            "prod",
        ],
    ]
    assert "sensor-alerts-threshold" in result.output


def test_undeploy_delete_topics(kubectl: FakeKubectl) -> None:
    result = flow(
        "undeploy", "sensor-alerts", "--delete-topics", "--kafka-namespace", "kafka", "-n", "prod"
    )
    assert result.exit_code == 0, result.output
    selector = SELECTOR.format(app="sensor-alerts")
    assert kubectl.argv[-2:] == [
        [
            "delete",
            "kafkatopics.kafka.strimzi.io",
            "-l",
            selector,
            "--ignore-not-found",
            "--namespace",
            "kafka",
        ],
        # the state volumes go with the changelogs that back them
        [
            "delete",
            "persistentvolumeclaims",
            "-l",
            f"{selector},app.kubernetes.io/component=state",
            "--ignore-not-found",
            "--wait=false",
            "--namespace",
            "prod",
        ],
    ]


# -- scale ------------------------------------------------------------------------------


def test_scale_finds_the_streamlet_and_scales_its_deployment(kubectl: FakeKubectl) -> None:
    items = [deployment_json("sensor-alerts", s) for s in ("ingest", "threshold", "store")]
    kubectl.on("get", "deployments", stdout={"items": items})
    kubectl.on("scale", stdout="deployment.apps/sensor-alerts-threshold scaled\n")
    result = flow("scale", "sensor-alerts", "threshold", "6")
    assert result.exit_code == 0, result.output
    assert kubectl.argv == [
        [
            "get",
            "deployments,statefulsets,jobs",
            "-l",
            SELECTOR.format(app="sensor-alerts"),
            "-o",
            "json",
        ],
        ["scale", "deployment", "sensor-alerts-threshold", "--replicas=6"],
    ]
    assert "scaled" in result.output


def test_scale_an_exactly_once_streamlet_scales_its_statefulset(kubectl: FakeKubectl) -> None:
    item = {**deployment_json("orders", "pricing"), "kind": "StatefulSet"}
    kubectl.on("get", "deployments,statefulsets", stdout={"items": [item]})
    result = flow("scale", "orders", "pricing", "3")
    assert result.exit_code == 0, result.output
    assert kubectl.argv[-1] == ["scale", "statefulset", "orders-pricing", "--replicas=3"]


def test_a_job_is_not_scaled(kubectl: FakeKubectl) -> None:
    item = {**deployment_json("sensor-alerts", "ingest"), "kind": "Job"}
    kubectl.on("get", "deployments", stdout={"items": [item]})
    result = flow("scale", "sensor-alerts", "ingest", "3")
    assert result.exit_code == 1
    assert "runs as a Job" in result.output
    assert not any(a[0] == "scale" for a in kubectl.argv)


def test_scale_unknown_streamlet_or_app(kubectl: FakeKubectl) -> None:
    items = [deployment_json("sensor-alerts", s) for s in ("ingest", "threshold", "store")]
    kubectl.on("get", "deployments", "part-of=sensor-alerts,", stdout={"items": items})
    kubectl.on("get", "deployments", stdout={"items": []})
    result = flow("scale", "sensor-alerts", "treshold", "6")
    assert result.exit_code == 1
    assert (
        "has no streamlet 'treshold'" in result.output
        and "did you mean 'threshold'" in result.output
    )
    result = flow("scale", "nothing-here", "threshold", "6", "-n", "prod")
    assert result.exit_code == 1
    assert "no application 'nothing-here' is deployed in namespace 'prod'" in result.output
    result = flow("scale", "sensor-alerts", "threshold", "-1")
    assert result.exit_code == 2
    assert not any(a[0] == "scale" for a in kubectl.argv)


def deployed_hash(tmp_path: Path) -> str:
    deployment = yaml.safe_load((tmp_path / "deployed" / "deployment-threshold.yaml").read_text())
    return str(
        deployment["spec"]["template"]["metadata"]["annotations"]["streamlets.io/config-hash"]
    )


# -- configure --------------------------------------------------------------------------


def deployed_config(
    tmp_path: Path, blueprint: Path, *extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ConfigMap and Secret that 'flow deploy' makes, as kubectl get -o json shows them."""
    out = tmp_path / "deployed"
    result = flow("deploy", str(blueprint), "--image", "i:1", "-o", str(out), *extra)
    assert result.exit_code == 0, result.output
    return (
        yaml.safe_load((out / "configmap.yaml").read_text()),
        yaml.safe_load((out / "secret.yaml").read_text()),
    )


def test_configure_updates_config_and_rolls_the_pods(
    kubectl: FakeKubectl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_map, secret = deployed_config(tmp_path, SENSORS)
    items = [deployment_json("sensor-alerts", s) for s in ("ingest", "threshold", "store")]
    kubectl.on("get", "configmap", stdout=config_map)
    kubectl.on("get", "secret", stdout=secret)
    kubectl.on("get", "deployments", stdout={"items": items})
    monkeypatch.chdir(SENSORS.parent)
    result = flow("configure", "sensor-alerts", "--set", "threshold.limit=28", "-n", "prod")
    assert result.exit_code == 0, result.output
    argv = kubectl.argv
    assert argv[0] == [
        "get",
        "configmap",
        "sensor-alerts-config",
        "--namespace",
        "prod",
        "-o",
        "json",
    ]
    assert argv[1] == ["get", "secret", "sensor-alerts-secret", "--namespace", "prod", "-o", "json"]
    applied = kubectl.calls[2]
    assert applied["args"] == ["apply", "-f", "-"]
    listed = json.loads(applied["stdin"])["items"]
    assert [i["kind"] for i in listed] == ["ConfigMap", "Secret"]
    blueprint = yaml.safe_load(listed[0]["data"]["blueprint.yaml"])
    assert blueprint["streamlets"]["threshold"]["config"] == {"limit": 28}
    assert blueprint["streamlets"]["ingest"]["config"] == {"path": "/app/data/readings.jsonl"}
    assert listed[0]["metadata"]["namespace"] == "prod"
    patches = [a for a in argv if a[0] == "patch"]
    assert [p[2] for p in patches] == [
        "sensor-alerts-ingest",
        "sensor-alerts-threshold",
        "sensor-alerts-store",
    ]
    patch = json.loads(patches[0][patches[0].index("-p") + 1])
    new_hash = patch["spec"]["template"]["metadata"]["annotations"]["streamlets.io/config-hash"]
    assert len(new_hash) == 16 and new_hash != deployed_hash(tmp_path)
    assert all(p[-2:] == ["--namespace", "prod"] for p in patches)
    assert "configured sensor-alerts: threshold.limit" in result.output


def test_configure_with_the_deployed_values_restarts_nothing(
    kubectl: FakeKubectl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configure computes the same config hash as deploy: same config, no rolling restart."""
    config_map, secret = deployed_config(tmp_path, SENSORS)
    current = deployment_json("sensor-alerts", "threshold")
    current["spec"]["template"]["metadata"]["annotations"]["streamlets.io/config-hash"] = (
        deployed_hash(tmp_path)
    )
    kubectl.on("get", "configmap", stdout=config_map)
    kubectl.on("get", "secret", stdout=secret)
    kubectl.on("get", "deployments", stdout={"items": [current]})
    monkeypatch.chdir(SENSORS.parent)
    result = flow("configure", "sensor-alerts", "--set", "threshold.limit=30")
    assert result.exit_code == 0, result.output
    assert not [a for a in kubectl.argv if a[0] == "patch"]
    assert "restarting: none (config unchanged)" in result.output


def test_configure_puts_secret_values_in_the_secret_and_never_prints_them(
    kubectl: FakeKubectl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blueprint, config = write_orders_app(tmp_path / "orders")
    config_map, secret = deployed_config(tmp_path, blueprint, "--config", str(config))
    kubectl.on("get", "configmap", stdout=config_map)
    kubectl.on("get", "secret", stdout=secret)
    kubectl.on("get", "deployments", stdout={"items": [deployment_json("orders", "pricing")]})
    monkeypatch.chdir(blueprint.parent)
    new_key = "rotated-api-key-777"
    result = flow(
        "configure",
        "orders",
        "--set",
        f"pricing.api_key={new_key}",
        "--set",
        "pricing.currency=GBP",
    )
    assert result.exit_code == 0, result.output
    assert new_key not in result.output
    for value in SECRET_VALUES:
        assert value not in result.output
    applied = next(c for c in kubectl.calls if c["args"] == ["apply", "-f", "-"])
    config_map_new, secret_new = json.loads(applied["stdin"])["items"]
    assert new_key not in json.dumps(config_map_new)
    assert "GBP" in config_map_new["data"]["blueprint.yaml"]
    inside = yaml.safe_load(base64.b64decode(secret_new["data"]["secret-config.yaml"]))
    assert inside["pricing"] == {"api_key": new_key}
    assert inside["archive"] == {"password": "hunter2-archive-pw"}  # kept
    assert inside["kafka"]["sasl.password"] == "kafka-sasl-pw-42"  # kept
    for call in kubectl.calls:
        assert all(new_key not in arg for arg in call["args"])  # never on a command line


def test_configure_rejects_invalid_config_and_changes_nothing(
    kubectl: FakeKubectl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_map, secret = deployed_config(tmp_path, SENSORS)
    kubectl.on("get", "configmap", stdout=config_map)
    kubectl.on("get", "secret", stdout=secret)
    monkeypatch.chdir(SENSORS.parent)
    result = flow("configure", "sensor-alerts", "--set", "threshold.limit=hot")
    assert result.exit_code == 1
    assert "threshold" in result.output and "limit" in result.output
    assert "nothing was changed" in result.output
    assert [a[:2] for a in kubectl.argv] == [["get", "configmap"], ["get", "secret"]]


def test_configure_unknown_app_or_nothing_to_do(kubectl: FakeKubectl) -> None:
    kubectl.on(
        "get",
        "configmap",
        "nope-config",
        stderr='Error from server (NotFound): configmaps "nope-config" not found\n',
        code=1,
    )
    result = flow("configure", "nope", "--set", "a.b=1")
    assert result.exit_code == 1
    assert "no application 'nope' is deployed" in result.output
    result = flow("configure", "sensor-alerts")
    assert result.exit_code == 2 and "nothing to configure" in result.output


def test_configure_says_where_the_classes_must_come_from(
    kubectl: FakeKubectl, tmp_path: Path
) -> None:
    """Run as a user would (a fresh process): the classes are not importable from here."""
    config_map, secret = deployed_config(tmp_path, SENSORS)
    kubectl.on("get", "configmap", stdout=config_map)
    kubectl.on("get", "secret", stdout=secret)
    command = ["configure", "sensor-alerts", "--set", "threshold.limit=28"]
    proc = subprocess.run(
        [sys.executable, "-c", "from runner.cli import main; main()", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "class-not-found" in proc.stderr
    assert "run it in the blueprint's directory or pass --code-dir DIR" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [a[:2] for a in kubectl.argv] == [["get", "configmap"], ["get", "secret"]]


# -- status -----------------------------------------------------------------------------


def test_status_shows_a_table_per_streamlet(kubectl: FakeKubectl) -> None:
    items = [
        deployment_json(
            "sensor-alerts", "ingest", readyReplicas=1, updatedReplicas=1, availableReplicas=1
        ),
        deployment_json(
            "sensor-alerts",
            "threshold",
            desired=4,
            readyReplicas=2,
            updatedReplicas=4,
            availableReplicas=2,
        ),
    ]
    pods = [
        {
            "metadata": {"labels": {"app.kubernetes.io/instance": "sensor-alerts-threshold"}},
            "status": {
                "containerStatuses": [
                    {"restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ]
            },
        },
        {
            "metadata": {"labels": {"app.kubernetes.io/instance": "sensor-alerts-threshold"}},
            "status": {"containerStatuses": [{"restartCount": 1, "state": {"running": {}}}]},
        },
    ]
    job = {
        "kind": "Job",
        "metadata": {
            "name": "sensor-alerts-backfill",
            "labels": {
                "app.kubernetes.io/name": "backfill",
                "app.kubernetes.io/instance": "sensor-alerts-backfill",
            },
        },
        "spec": {"completions": 2, "parallelism": 2},
        "status": {"succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}]},
    }
    kubectl.on("get", "deployments", stdout={"items": [*items, job]})
    kubectl.on("get", "pods", stdout={"items": pods})
    result = flow("status", "sensor-alerts", "-n", "prod")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "STREAMLET",
        "DESIRED",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "RESTARTS",
        "STATE",
    ]
    assert lines[1].split() == ["backfill", "2", "0", "2", "2", "0", "complete"]
    assert lines[2].split() == ["ingest", "1", "1", "1", "1", "0", "ready"]
    assert lines[3].split() == ["threshold", "4", "2", "4", "2", "4", "CrashLoopBackOff"]
    selector = SELECTOR.format(app="sensor-alerts")
    assert kubectl.argv == [
        [
            "get",
            "deployments,statefulsets,jobs",
            "-l",
            selector,
            "--namespace",
            "prod",
            "-o",
            "json",
        ],
        ["get", "pods", "-l", selector, "--namespace", "prod", "-o", "json"],
    ]


def test_status_of_an_app_that_is_not_deployed(kubectl: FakeKubectl) -> None:
    kubectl.on("get", "deployments", stdout={"items": []})
    result = flow("status", "sensor-alerts")
    assert result.exit_code == 1
    assert "no application 'sensor-alerts' is deployed in the current namespace" in result.output


def test_kubectl_printing_garbage_is_reported(kubectl: FakeKubectl) -> None:
    kubectl.on("get", "deployments", stdout="<html>proxy error</html>")
    result = flow("status", "sensor-alerts")
    assert result.exit_code == 1
    assert "not JSON" in result.output
