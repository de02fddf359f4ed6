"""What ``flow deploy`` is told besides the blueprint: image, namespace, Kafka, scaling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from blueprint import StreamletSpec, VerifiedBlueprint
from blueprint.resources import layer_resources
from runner.kafka.options import DEFAULT_METRICS_PORT

__all__ = [
    "APP_DIR",
    "BLUEPRINT_PATH",
    "CONFIG_DIR",
    "DEFAULT_KAFKA_CLUSTER",
    "DEFAULT_RESOURCES",
    "METRICS_PORT",
    "RUN_AS_USER",
    "SECRET_CONFIG_PATH",
    "STATE_DIR",
    "WRITABLE_DIRS",
    "DeployOptions",
    "Resources",
]

#: Port of each streamlet process's ``/metrics``, ``/healthz`` and ``/readyz`` endpoints.
METRICS_PORT = DEFAULT_METRICS_PORT
#: Where the image holds the application (the blueprint's directory); ``flow dockerfile``
#: copies it here and relative file paths in config resolve against it in the pod.
APP_DIR = "/app"
#: What a pod may write to: the root filesystem is read-only, ``/tmp`` an ``emptyDir``.
WRITABLE_DIRS = ("/tmp",)
#: Where the pod mounts the blueprint (from the ConfigMap) and the secret config.
CONFIG_DIR = "/etc/streamlets"
BLUEPRINT_PATH = f"{CONFIG_DIR}/blueprint.yaml"
SECRET_CONFIG_PATH = f"{CONFIG_DIR}/secret-config.yaml"
#: Where a stateful streamlet's pod mounts its state volume: ``flow run-streamlet``'s
#: ``--state-dir`` (a store per input partition under it, rebuilt from the changelogs).
STATE_DIR = "/var/lib/streamlets/state"
#: The non-root user and group the image creates and every pod runs as.
RUN_AS_USER = 10001
#: The Strimzi ``Kafka`` resource the topics belong to unless ``--kafka-cluster`` says.
DEFAULT_KAFKA_CLUSTER = "my-cluster"

#: ``requests``/``limits`` of a container, e.g. ``{"requests": {"cpu": "100m"}}``.
Resources = Mapping[str, Mapping[str, str]]
DEFAULT_RESOURCES: Resources = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """Settings of one deployment of a blueprint.

    ``scale`` overrides the blueprint's ``replicas`` per streamlet; ``resources`` maps a
    streamlet name (or ``"default"``, for every streamlet) to the container resources that
    ``--cpu``/``--memory`` set, over what the blueprint says; ``ingress_hosts`` maps an
    HTTP ingress streamlet to the host name of an Ingress to create for it; ``jobs`` names
    the bounded sources to run to completion as Jobs.
    """

    image: str
    namespace: str | None = None
    kafka_cluster: str = DEFAULT_KAFKA_CLUSTER
    kafka_namespace: str | None = None
    bootstrap: str | None = None
    scale: Mapping[str, int] = field(default_factory=dict)
    resources: Mapping[str, Resources] = field(default_factory=dict)
    image_pull_policy: str = "IfNotPresent"
    metrics_port: int = METRICS_PORT
    autoscale: bool = False
    lag_threshold: int = 100
    max_replicas: int | None = None
    ingress_hosts: Mapping[str, str] = field(default_factory=dict)
    dead_letter_template: str | None = None
    jobs: frozenset[str] = frozenset()

    @property
    def topic_namespace(self) -> str | None:
        """The namespace of the KafkaTopics: the Kafka cluster's, else the application's."""
        return self.kafka_namespace or self.namespace

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka bootstrap address the pods use."""
        if self.bootstrap:
            return self.bootstrap
        service = f"{self.kafka_cluster}-kafka-bootstrap"
        if self.kafka_namespace and self.kafka_namespace != self.namespace:
            service = f"{service}.{self.kafka_namespace}.svc"
        return f"{service}:9092"

    def replicas(self, streamlet: str, declared: int) -> int:
        """The replicas of ``streamlet``: ``--scale`` first, else the blueprint's."""
        return self.scale.get(streamlet, declared)

    def resources_for(
        self, spec: StreamletSpec, verified: VerifiedBlueprint | None = None
    ) -> dict[str, dict[str, str]]:
        """The container resources of ``spec``'s streamlet, from the most specific layer.

        Layers, last wins key by key: the built-in defaults, the blueprint's application
        ``resources:``, the streamlet's own ``resources:``, ``--cpu``/``--memory`` for every
        streamlet, and those for this streamlet (see :func:`layer_resources`).
        """
        app = verified.resources.as_dict() if verified and verified.resources else None
        own = spec.resources.as_dict() if spec.resources else None
        return layer_resources(
            DEFAULT_RESOURCES,
            app,
            own,
            self.resources.get("default"),
            self.resources.get(spec.name),
        )
