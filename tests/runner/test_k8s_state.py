"""``flow deploy`` of stateful streamlets (DESIGN §8): StatefulSets with a state volume at
the runner's state directory, a claim per pod when the blueprint gives a size, and a
compacted KafkaTopic per changelog. (The manifests are validated against the Kubernetes
schemas, the restricted profile and ``kubectl kustomize`` in tests/integration.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from blueprint import ConfigOverrides, load_overrides, verify
from runner.cli import cli
from runner.k8s import DeployOptions, build_app_config, render
from runner.k8s.options import STATE_DIR
from runner.runtime.state import changelog_topic
from tests.integration.test_manifests import FRAUD_SETS, STATS_OPTIONS
from tests.integration.test_manifests_state_app import write_counters_app

ROOT = Path(__file__).resolve().parents[2]
FRAUD = ROOT / "examples" / "fraud-counters" / "blueprint.yaml"
STATS = ROOT / "examples" / "sensor-stats" / "blueprint.yaml"


def deployed(blueprint: Path, overrides: ConfigOverrides | None = None, **options: Any) -> Any:
    overrides = overrides or ConfigOverrides()
    verified = verify(blueprint, overrides).unwrap()
    document = yaml.safe_load(blueprint.read_text())
    config = build_app_config(verified, document, overrides, source="blueprint.yaml")
    manifests = render(verified, DeployOptions(image="i:1", **options), config)
    return {(m.kind, m.name): m for m in manifests}


def pod(workload: Any) -> Any:
    return workload.resource["spec"]["template"]["spec"]


def volume(workload: Any, name: str) -> dict[str, Any] | None:
    return next((v for v in pod(workload)["volumes"] if v["name"] == name), None)


def test_a_stateful_streamlet_is_a_statefulset_with_its_state_directory(tmp_path: Path) -> None:
    found = deployed(write_counters_app(tmp_path / "app"), jobs=frozenset({"source"}))
    count = found[("StatefulSet", "counters-count")]
    assert ("Deployment", "counters-count") not in found
    assert count.filename == "statefulset-count.yaml"
    assert ("Service", "counters-count-pods") in found  # the headless Service it names
    container = pod(count)["containers"][0]
    args = container["args"]
    assert args[args.index("--state-dir") + 1] == STATE_DIR == "/var/lib/streamlets/state"
    assert {"name": "state", "mountPath": STATE_DIR} in container["volumeMounts"]
    # no size given: an emptyDir, rebuilt from the changelogs by a new pod
    assert volume(count, "state") == {"name": "state", "emptyDir": {}}
    assert "volumeClaimTemplates" not in count.resource["spec"]
    assert count.resource["spec"]["replicas"] == 3
    # a stateless streamlet is left as it was
    sink = found[("Deployment", "counters-sink")]
    assert "--state-dir" not in pod(sink)["containers"][0]["args"]
    assert volume(sink, "state") is None


def test_a_state_size_gives_each_pod_a_claim(tmp_path: Path) -> None:
    found = deployed(write_counters_app(tmp_path / "app"), jobs=frozenset({"source"}))
    once = found[("StatefulSet", "counters-once")].resource
    (claim,) = once["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["metadata"]["labels"]["app.kubernetes.io/component"] == "state"
    assert claim["metadata"]["labels"]["app.kubernetes.io/part-of"] == "counters"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
    }
    assert volume(found[("StatefulSet", "counters-once")], "state") is None  # the claim's
    mounts = pod(found[("StatefulSet", "counters-once")])["containers"][0]["volumeMounts"]
    assert {"name": "state", "mountPath": STATE_DIR} in mounts
    # A Job has no stable pods to keep claims for: a volume of that size per pod instead.
    source = found[("Job", "counters-source")]
    assert volume(source, "state") == {
        "name": "state",
        "ephemeral": {
            "volumeClaimTemplate": {
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "512Mi"}},
                }
            }
        },
    }
    assert "--state-dir" in pod(source)["containers"][0]["args"]


def test_a_stateful_source_without_job_is_a_statefulset(tmp_path: Path) -> None:
    found = deployed(write_counters_app(tmp_path / "app"))
    source = found[("StatefulSet", "counters-source")].resource
    (claim,) = source["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "512Mi"


def test_every_state_gets_a_compacted_changelog_topic(tmp_path: Path) -> None:
    found = deployed(write_counters_app(tmp_path / "app"))
    changelogs = {
        name: m.resource
        for (kind, name), m in found.items()
        if kind == "KafkaTopic"
        and m.resource["metadata"]["labels"]["app.kubernetes.io/component"] == "changelog"
    }
    expected = {
        changelog_topic("counters", streamlet, state)
        for streamlet, state in [
            ("source", "position"),
            ("count", "seen"),
            ("count", "last_reading"),
            ("once", "seen"),
            ("once", "last_reading"),
        ]
    }
    # names Kubernetes refuses (last_reading) keep the Kafka name in spec.topicName
    assert {r["spec"].get("topicName", r["metadata"]["name"]) for r in changelogs.values()} == (
        expected
    )
    seen = changelogs["counters.count.seen.changelog"]["spec"]
    # as many partitions as the input topic, replicated like it, compacted
    assert seen == {"partitions": 6, "replicas": 3, "config": {"cleanup.policy": "compact"}}
    odd = [r for r in changelogs.values() if "topicName" in r["spec"]]
    assert sorted(r["spec"]["topicName"] for r in odd) == [
        "counters.count.last_reading.changelog",
        "counters.once.last_reading.changelog",
    ]
    # a source's own state has one value per replica: one partition
    position = changelogs["counters.source.position.changelog"]["spec"]
    assert position == {"partitions": 1, "config": {"cleanup.policy": "compact"}}
    topics = [m.filename for (kind, _), m in found.items() if kind == "KafkaTopic"]
    assert "kafkatopic-counters.count.seen.changelog.yaml" in topics


def test_the_state_section_stays_out_of_the_configmap(tmp_path: Path) -> None:
    blueprint = write_counters_app(tmp_path / "app")
    first = deployed(blueprint)
    config = first[("ConfigMap", "counters-config")].resource["data"]["blueprint.yaml"]
    assert "state" not in yaml.safe_load(config)["streamlets"]["once"]
    # so a new size changes that StatefulSet's claims only, not every pod's config hash
    blueprint.write_text(blueprint.read_text().replace("storage: 5Gi", "storage: 8Gi"))
    second = deployed(blueprint)
    hash_of = "streamlets.io/config-hash"
    for key in (("StatefulSet", "counters-count"), ("Deployment", "counters-sink")):
        annotations = [
            d[key].resource["spec"]["template"]["metadata"]["annotations"] for d in (first, second)
        ]
        assert annotations[0][hash_of] == annotations[1][hash_of]
    claims = second[("StatefulSet", "counters-once")].resource["spec"]["volumeClaimTemplates"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "8Gi"


def test_the_fraud_example_deploys_with_a_claim_per_spending_pod(tmp_path: Path) -> None:
    overrides = load_overrides(None, FRAUD_SETS[1::2])
    found = deployed(FRAUD, overrides)
    spending = found[("StatefulSet", "fraud-counters-spending")].resource
    assert spending["spec"]["replicas"] == 2
    (claim,) = spending["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    for state in ("today", "lifetime"):
        name = changelog_topic("fraud-counters", "spending", state)
        assert found[("KafkaTopic", name)].resource["spec"]["partitions"] == 4
    # through the command too
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["deploy", str(FRAUD), "--image", "i:1", "-o", str(out), *FRAUD_SETS],
    )
    assert result.exit_code == 0, result.output
    assert (out / "statefulset-spending.yaml").exists()
    assert (out / "kafkatopic-fraud-counters.spending.today.changelog.yaml").exists()


def test_the_sensor_stats_example_deploys_its_window_as_a_statefulset(tmp_path: Path) -> None:
    """A window's state is a state: the windowed streamlet is a StatefulSet whose pods keep
    their windows in an emptyDir, rebuilt from the window's changelog; the join with a
    global table keeps it in memory (read again from its topic) and stays a Deployment."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["deploy", str(STATS), "--image", "i:1", "-o", str(out), *STATS_OPTIONS]
    )
    assert result.exit_code == 0, result.output
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        resource = yaml.safe_load((out / name).read_text())
        found[(resource["kind"], resource["metadata"]["name"])] = (name, resource)
    name, per_minute = found[("StatefulSet", "sensor-stats-per-minute")]
    assert name == "statefulset-per-minute.yaml"
    assert per_minute["spec"]["replicas"] == 2
    container = per_minute["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--state-dir") + 1] == STATE_DIR
    assert {"name": "state", "emptyDir": {}} in per_minute["spec"]["template"]["spec"]["volumes"]
    assert "volumeClaimTemplates" not in per_minute["spec"]  # no size in the blueprint
    # The window's changelog: named after the Window attribute, partitioned as its input.
    changelog = changelog_topic("sensor-stats", "per-minute", "minutes")
    assert changelog == "sensor-stats.per-minute.minutes.changelog"
    name, topic = found[("KafkaTopic", changelog)]
    assert name == f"kafkatopic-{changelog}.yaml"
    assert topic["spec"]["partitions"] == 4
    assert topic["spec"]["config"]["cleanup.policy"] == "compact"
    # The join: a Deployment without a state directory; its table topic is compacted.
    _, locate = found[("Deployment", "sensor-stats-locate")]
    assert "--state-dir" not in locate["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("StatefulSet", "sensor-stats-locate") not in found
    topics = [name for kind, name in found if kind == "KafkaTopic"]
    assert not [t for t in topics if t.startswith("sensor-stats.locate.") and "changelog" in t]
    _, locations = found[("KafkaTopic", "locations")]
    assert locations["spec"]["config"]["cleanup.policy"] == "compact"
    # The bounded sources run once, as Jobs (--job).
    assert {("Job", "sensor-stats-readings"), ("Job", "sensor-stats-locations")} <= found.keys()
