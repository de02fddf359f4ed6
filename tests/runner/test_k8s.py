"""Unit tests of the pure manifest functions and of ``flow deploy``/``flow dockerfile`` errors."""

from __future__ import annotations

import base64
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, SecretStr

import streamlets
from blueprint import ConfigOverrides, VerifiedBlueprint, load_overrides, verify
from runner.cli import cli
from runner.k8s import DeployOptions, build_app_config, render
from runner.k8s.config import secret_keys
from runner.k8s.dockerfile import dockerfile, plan_image
from runner.k8s.keda_auth import kafka_auth, kafka_auth_problem
from runner.k8s.naming import deployment_name, service_name, topic_resource_name
from runner.k8s.options import APP_DIR, RUN_AS_USER
from runner.testkit import run_blueprint
from tests.integration.test_manifests_app import write_orders_app

ROOT = Path(__file__).resolve().parents[2]
SENSORS = ROOT / "examples" / "sensors" / "blueprint.yaml"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def flow(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def sensors(overrides: ConfigOverrides | None = None) -> VerifiedBlueprint:
    return verify(SENSORS, overrides).unwrap()


def manifests_of(verified: VerifiedBlueprint, overrides: ConfigOverrides, **options: Any) -> Any:
    document = yaml.safe_load(Path(verified.path).read_text())
    config = build_app_config(verified, document, overrides, source="blueprint.yaml")
    return render(verified, DeployOptions(image="i:1", **options), config)


# -- names ------------------------------------------------------------------------------


def test_long_names_are_shortened_stably_with_a_hash() -> None:
    app, streamlet = "a" * 40, "b" * 40
    name = deployment_name(app, streamlet)
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name)
    assert name == deployment_name(app, streamlet)
    assert name != deployment_name(app, "b" * 39 + "c")
    assert deployment_name("app", "ingest") == "app-ingest"


def test_service_names_start_with_a_letter() -> None:
    assert service_name("shop", "web") == "shop-web"
    name = service_name("1shop", "web")
    assert name[0].isalpha() and DNS_LABEL.fullmatch(name)


def test_kafka_topic_names_map_to_distinct_resource_names() -> None:
    assert topic_resource_name("readings") == "readings"
    assert topic_resource_name("app.s.dead-letters") == "app.s.dead-letters"
    upper, lower = topic_resource_name("Orders"), topic_resource_name("orders")
    assert upper != lower and upper.startswith("orders-")
    odd = topic_resource_name("_weird..Topic_")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", odd)


# -- config -----------------------------------------------------------------------------


class Nested(BaseModel):
    user: str
    token: SecretStr


class WithSecrets(BaseModel):
    plain: str = "x"
    key: SecretStr
    maybe: SecretStr | None = None
    auth: Nested | None = None
    many: list[SecretStr] = []


def test_secret_keys_include_every_field_with_a_secret_inside() -> None:
    assert secret_keys(WithSecrets) == ("key", "maybe", "auth", "many")


def test_config_changes_change_the_hash_and_only_then() -> None:
    base = manifests_of(sensors(), ConfigOverrides())
    same = manifests_of(sensors(), ConfigOverrides())
    overrides = load_overrides(None, ["threshold.limit=25"])
    changed = manifests_of(sensors(overrides), overrides)
    assert base.config.config_hash() == same.config.config_hash()
    assert base.config.config_hash() != changed.config.config_hash()
    text = changed.of_kind("ConfigMap")[0]["data"]["blueprint.yaml"]
    assert yaml.safe_load(text)["streamlets"]["threshold"]["config"] == {"limit": 25}


def test_relative_paths_point_into_the_image() -> None:
    config = manifests_of(sensors(), ConfigOverrides()).config
    streamlets = config.blueprint["streamlets"]
    assert streamlets["ingest"]["config"]["path"] == f"{APP_DIR}/data/readings.jsonl"
    overrides = load_overrides(None, ["store.path=/data/alerts.jsonl"])
    config = manifests_of(sensors(overrides), overrides).config
    assert config.blueprint["streamlets"]["store"]["config"]["path"] == "/data/alerts.jsonl"


def test_the_kafka_section_sets_bootstrap_and_goes_to_the_secret(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kafka: {bootstrap.servers: 'kafka.example:9093'}\n")
    out = tmp_path / "out"
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--config", str(config), "-o", str(out))
    assert result.exit_code == 0, result.output
    deployment = yaml.safe_load((out / "deployment-threshold.yaml").read_text())
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--bootstrap") + 1] == "kafka.example:9093"
    assert "kafka.example" not in (out / "configmap.yaml").read_text()


def test_resources_per_streamlet_and_for_all(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--memory", "1Gi", "--memory", "threshold=512Mi", "--cpu", "store=2"]
    result = flow("deploy", str(SENSORS), "--image", "i:1", "-o", str(out), *args)
    assert result.exit_code == 0, result.output

    def resources(name: str) -> Any:
        deployment = yaml.safe_load((out / f"deployment-{name}.yaml").read_text())
        return deployment["spec"]["template"]["spec"]["containers"][0]["resources"]

    assert resources("threshold") == {  # its cpu from the blueprint, its memory flag
        "requests": {"cpu": "200m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert resources("store") == {
        "requests": {"cpu": "2", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }
    assert resources("ingest") == {
        "requests": {"cpu": "100m", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }


LAYERED = """
name: layered
resources:
  requests: {cpu: 50m}
  limits: {memory: 256Mi}
streamlets:
  src:
    class: sample_app:Source
  mid:
    class: sample_app:Pass
    resources:
      requests: {cpu: 500m, memory: 128Mi}
      limits: {cpu: "1", memory: 1G}
  sink:
    class: sample_app:Sink
topics:
  raw: {producers: [src.out], consumers: [mid.readings]}
  clean: {producers: [mid.out], consumers: [sink.readings]}
"""


def test_resources_flags_over_streamlet_over_application_over_defaults(
    write_blueprint: Any, tmp_path: Path
) -> None:
    path = write_blueprint(LAYERED)
    out = tmp_path / "out"
    flags = ["--cpu", "mid=2", "--memory", "sink=64Mi"]
    result = flow("deploy", str(path), "--image", "i:1", "-o", str(out), *flags)
    assert result.exit_code == 0, result.output

    def resources(name: str) -> Any:
        deployment = yaml.safe_load((out / f"deployment-{name}.yaml").read_text())
        return deployment["spec"]["template"]["spec"]["containers"][0]["resources"]

    assert resources("src") == {  # the application's, over the built-in memory request
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert resources("mid") == {  # --cpu above the blueprint's limit raises the limit
        "requests": {"cpu": "2", "memory": "128Mi"},
        "limits": {"cpu": "2", "memory": "1G"},
    }
    assert resources("sink") == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "64Mi"},
    }
    assert "resources" not in (out / "configmap.yaml").read_text()  # the pods don't read it


def test_the_local_runner_ignores_resources(write_blueprint: Any) -> None:
    result = run_blueprint(write_blueprint(LAYERED), collect=["clean"])
    assert result.error is None
    assert sorted(r.sensor_id for r in result.topics["clean"]) == ["s0", "s1", "s2"]


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--memory", "mid=128m", "did you mean '128Mi'?"),
        ("--cpu", "1Gi", "CPU is counted in cores"),
        ("--cpu", "mid=", "'' is not a Kubernetes quantity"),
    ],
)
def test_bad_resource_flags_are_usage_errors(option: str, value: str, needle: str) -> None:
    result = flow("deploy", str(SENSORS), "--image", "i:1", option, value)
    assert result.exit_code == 2
    assert needle in result.output and "Traceback" not in result.output


def test_a_dead_letter_template_names_the_dead_letter_topics(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("runner: {dead_letter_topic: 'dlq.{app}.{streamlet}'}\n")
    out = tmp_path / "out"
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--config", str(config), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "kafkatopic-dlq.sensor-alerts.threshold.yaml").exists()
    assert not list(out.glob("*dead-letters*"))


def test_keda_authentication_follows_the_kafka_section() -> None:
    assert kafka_auth(None) is None
    assert kafka_auth({"bootstrap.servers": "k:9092"}) is None
    tls = kafka_auth({"security.protocol": "SSL", "ssl.ca.pem": "-----BEGIN CERT"})
    assert tls is not None
    assert tls.metadata == {"tls": "enable"}
    assert tls.credentials == (("ca", "keda-kafka-ca", "-----BEGIN CERT"),)
    plain = kafka_auth({"security.protocol": "SASL_PLAINTEXT", "sasl.username": "u"})
    assert plain is not None and plain.metadata == {"sasl": "plaintext"}
    assert kafka_auth_problem({"sasl.mechanism": "SCRAM-SHA-256"}) is None
    assert "GSSAPI" in str(kafka_auth_problem({"sasl.mechanism": "GSSAPI"}))


def test_autoscale_with_unsupported_kafka_auth_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kafka: {security.protocol: SASL_SSL, sasl.mechanism: OAUTHBEARER}\n")
    args = ["deploy", str(SENSORS), "--image", "i:1", "--config", str(config)]
    assert flow(*args).exit_code == 0  # fine without --autoscale
    result = flow(*args, "--autoscale")
    assert result.exit_code == 2
    assert "sasl.mechanism OAUTHBEARER" in result.output


# -- flow deploy: errors and files ------------------------------------------------------


def test_invalid_blueprint_is_reported_like_verify() -> None:
    result = flow("deploy", str(SENSORS.parent / "broken.yaml"), "--image", "i:1")
    assert result.exit_code == 1
    assert "error[" in result.output and "blueprint is invalid" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "treshold=3"], "did you mean 'threshold'"),
        (["--scale", "threshold=many"], "replicas must be a whole number"),
        (["--scale", "threshold"], "is not of the form NAME=VALUE"),
        (["--scale", "threshold=10000000000000000000000"], "more than 1,000"),
        (["--memory", "threshold=lots"], "is not a Kubernetes quantity"),
        (["--cpu", "nobody=1"], "no streamlet 'nobody'"),
        (["--ingress", "ingest=a.example"], "is not an HTTP ingress"),
        (["--job", "threshold"], "only a source (no inlets) can run as a Job"),
        (["--job", "ingst"], "did you mean 'ingest'"),
        (["--set", "threshold.limit=hot"], "invalid-config"),
    ],
)
def test_bad_options_are_clear_errors(args: list[str], message: str) -> None:
    result = flow("deploy", str(SENSORS), "--image", "i:1", *args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_sink_that_a_pod_restart_would_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rows.py").write_text(
        "from pydantic import BaseModel\n\n\nclass Row(BaseModel):\n    n: int\n"
    )
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(
        "name: files\n"
        "streamlets:\n"
        "  store:\n"
        "    class: streamlets.library:FileSink\n"
        "    config: {path: /tmp/rows.jsonl, schema: 'rows:Row'}\n"
        "topics:\n"
        "  rows: {consumers: [store.records]}\n"
    )
    refused = flow("deploy", str(blueprint), "--image", "i:1", "-o", str(tmp_path / "out"))
    assert refused.exit_code == 2, refused.output
    assert "streamlet 'store' (FileSink) cannot run in a pod" in refused.output
    assert "set mode: append" in refused.output
    assert not (tmp_path / "out").exists()
    appending = flow(
        "deploy",
        str(blueprint),
        "--image",
        "i:1",
        "--set",
        "store.mode=append",
        "-o",
        str(tmp_path / "out"),
    )
    assert appending.exit_code == 0, appending.output


def test_runner_sections_the_pods_would_reject_are_rejected_here(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("runner: {grace_periodd: 10}\n")
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--config", str(config))
    assert result.exit_code == 2
    assert "unknown key 'grace_periodd' in the 'runner:' section" in result.output
    config.write_text("kafka: [not, a, mapping]\n")
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--config", str(config))
    assert result.exit_code == 2
    assert "'kafka:' section" in result.output
    config.write_text("schema_registry: {basic.auth.user.info: 'u:p'}\n")  # no url
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--config", str(config))
    assert result.exit_code == 2
    assert "'schema_registry:' section of the config file must be a mapping with a 'url'" in (
        result.output
    )


def test_schema_registry_credentials_go_to_the_secret(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "schema_registry: {url: 'http://registry:8081', basic.auth.user.info: 'u:s3cret'}\n"
    )
    out = tmp_path / "out"
    result = flow("deploy", str(SENSORS), "--image", "i:1", "--config", str(config), "-o", str(out))
    assert result.exit_code == 0, result.output
    secret = yaml.safe_load((out / "secret.yaml").read_text())
    held = base64.b64decode(secret["data"]["secret-config.yaml"]).decode()
    assert yaml.safe_load(held)["schema_registry"]["basic.auth.user.info"] == "u:s3cret"
    assert not [
        p.name for p in out.iterdir() if p.name != "secret.yaml" and "s3cret" in p.read_text()
    ]


def test_an_http_ingress_needs_a_fixed_port(tmp_path: Path) -> None:
    blueprint, _ = write_orders_app(tmp_path / "orders")
    result = flow("deploy", str(blueprint), "--image", "i:1", "--set", "http-in.port=0")
    assert result.exit_code == 2
    assert "has no fixed 'port'" in result.output and "--set http-in.port=8080" in result.output


def test_files_of_a_previous_run_are_replaced_not_left_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        flow("deploy", str(SENSORS), "--image", "i:1", "-o", str(out), "--autoscale").exit_code == 0
    )
    assert (out / "scaledobject-threshold.yaml").exists()
    (out / "mine.yaml").write_text("kind: Mine\n")
    assert flow("deploy", str(SENSORS), "--image", "i:1", "-o", str(out)).exit_code == 0
    assert not (out / "scaledobject-threshold.yaml").exists()
    assert (out / "mine.yaml").exists()  # not ours: kept
    listed = yaml.safe_load((out / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in out.glob("*.yaml") if p.name not in ("kustomization.yaml", "mine.yaml")
    )


def test_printed_manifests_include_a_secret_without_secret_values() -> None:
    result = flow("deploy", str(SENSORS), "--image", "i:1")
    assert result.exit_code == 0, result.output
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert kinds.count("Deployment") == 3 and "Secret" in kinds


# -- flow dockerfile --------------------------------------------------------------------


def test_dockerfile_matches_the_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = flow("dockerfile", str(SENSORS))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.splitlines()[0].startswith("# Generated by 'flow dockerfile'")
    assert "FROM python:3.11-slim" in text
    assert f"COPY examples/sensors/ {APP_DIR}/" in text
    assert f"ENV PYTHONPATH={APP_DIR}" in text
    assert f"USER {RUN_AS_USER}:{RUN_AS_USER}" in text
    assert 'ENTRYPOINT ["flow"]' in text
    # Run from the framework's checkout: the framework is installed from its sources.
    assert "COPY pyproject.toml README.md /opt/streamlets/" in text
    assert "COPY runner/ /opt/streamlets/runner/" in text
    assert "RUN pip install /opt/streamlets" in text


def test_dockerfile_for_a_project_outside_the_framework(tmp_path: Path) -> None:
    blueprint, _ = write_orders_app(tmp_path / "orders")
    (blueprint.parent / "requirements.txt").write_text("# what the app needs\nnumpy\n")
    plan = plan_image("orders", str(blueprint.parent), str(tmp_path))
    text = dockerfile(plan)
    # No index has the framework: it goes in as a wheel that flow dockerfile writes.
    wheel = f"wheels/streamlets-{streamlets.__version__}-py3-none-any.whl"
    assert plan.framework_wheel == wheel
    assert f"COPY {wheel} /tmp/wheels/" in text
    assert f"RUN pip install /tmp/{wheel}" in text
    assert "streamlets==" not in text
    assert f"COPY orders/ {APP_DIR}/" in text
    assert f"RUN pip install -r {APP_DIR}/requirements.txt" in text
    out = tmp_path / "Dockerfile"
    result = flow("dockerfile", str(blueprint), "--context", str(tmp_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text() == text
    assert f"wrote {tmp_path / wheel}" in result.stderr
    with zipfile.ZipFile(tmp_path / wheel) as archive:
        names = set(archive.namelist())
    assert {"streamlets/__init__.py", "runner/cli/main.py", "blueprint/py.typed"} <= names
    info = f"streamlets-{streamlets.__version__}.dist-info"
    assert {f"{info}/METADATA", f"{info}/RECORD", f"{info}/entry_points.txt"} <= names
    # Written again for the same framework, the wheel is the same file (docker's cache).
    first = (tmp_path / wheel).read_bytes()
    assert flow("dockerfile", str(blueprint), "--context", str(tmp_path)).exit_code == 0
    assert (tmp_path / wheel).read_bytes() == first


def test_dockerfile_skips_empty_requirements_and_tool_only_pyproject(tmp_path: Path) -> None:
    blueprint, _ = write_orders_app(tmp_path / "orders")
    (blueprint.parent / "requirements.txt").write_text("# nothing yet\n\n")
    (blueprint.parent / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    text = dockerfile(plan_image("orders", str(blueprint.parent), str(tmp_path)))
    # pip refuses a requirements file without requirements, and a pyproject.toml without
    # a [project] table is no package to install.
    assert "requirements.txt" not in text
    assert f"RUN pip install {APP_DIR}" not in text
    (blueprint.parent / "pyproject.toml").write_text("[project]\nname = 'orders'\n")
    text = dockerfile(plan_image("orders", str(blueprint.parent), str(tmp_path)))
    assert f"RUN pip install {APP_DIR}\n" in text


def test_dockerfile_needs_the_blueprint_inside_the_context(tmp_path: Path) -> None:
    result = flow("dockerfile", str(SENSORS), "--context", str(tmp_path))
    assert result.exit_code == 1
    assert "is not inside the build context" in result.output
