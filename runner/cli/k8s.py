"""The Kubernetes commands of ``flow``: deploy, undeploy, scale, configure, status, dockerfile."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from blueprint import (
    ConfigOverrides,
    Severity,
    VerifiedBlueprint,
)
from blueprint.declarations import REPLICAS
from blueprint.resources import quantity_problem
from runner.cli.common import (
    BLUEPRINT,
    config_options,
    load_overrides_or_fail,
    show_problems,
    verify_path,
)
from runner.cli.run_streamlet import kafka_sections_or_fail
from runner.k8s import (
    METRICS_PORT,
    DeployOptions,
    build_app_config,
    manifest_stream,
    operations,
    option_problems,
    render,
    write_manifests,
)
from runner.k8s.advice import deploy_warnings
from runner.k8s.dockerfile import (
    DEFAULT_BASE_IMAGE,
    WHEELS_DIR,
    DockerfileError,
    dockerfile,
    plan_image,
)
from runner.k8s.framework_wheel import FrameworkWheelError, write_framework_wheel
from runner.k8s.kubectl import Kubectl, KubectlError
from runner.k8s.operations import ConfigProblemsError
from runner.k8s.options import DEFAULT_KAFKA_CLUSTER, Resources

__all__ = [
    "configure_command",
    "deploy_command",
    "dockerfile_command",
    "scale_command",
    "status_command",
    "undeploy_command",
]

F = TypeVar("F", bound=Callable[..., Any])

_config_options = config_options(
    "YAML file of config overrides: 'streamlet-name: {key: value}', plus the runner "
    "sections (kafka:, schema_registry:, runner:), which go to the Secret."
)


def _cluster_options(func: F) -> F:
    func = click.option(
        "--context", help="kubeconfig context to use (default: kubectl's current one)."
    )(func)
    return click.option(
        "-n",
        "--namespace",
        help="Namespace of the application (default: the kubeconfig context's namespace).",
    )(func)


def _verified(blueprint: str, overrides: ConfigOverrides) -> VerifiedBlueprint:
    verification = verify_path(blueprint, overrides)
    result = verification.blueprint
    if result is None:
        show_problems(verification.problems, Severity)
        errors = len(verification.errors)
        raise click.ClickException(
            f"blueprint is invalid ({errors} error{'s' if errors != 1 else ''}): "
            "fix it ('flow verify' shows the same problems) before deploying"
        )
    show_problems(result.problems, (Severity.WARNING,))
    return result


def _pairs(values: Sequence[str], option: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, eq, rest = value.partition("=")
        if not eq or not name.strip() or not rest.strip():
            raise click.BadParameter(
                f"{value!r} is not of the form NAME=VALUE (e.g. {example})", param_hint=option
            )
        pairs.append((name.strip(), rest.strip()))
    return pairs


def _replicas(text: str, option: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise click.BadParameter(
            f"replicas must be a whole number, 0 or more; got {text!r}", param_hint=option
        )
    if count > REPLICAS.maximum:
        raise click.BadParameter(
            f"{count} replicas are more than {REPLICAS.maximum:,}: {REPLICAS.why}",
            param_hint=option,
        )
    return count


def _resources(cpu: Sequence[str], memory: Sequence[str]) -> dict[str, Resources]:
    """``--cpu [NAME=]Q`` sets the CPU request; ``--memory [NAME=]Q`` request and limit.

    Without ``NAME=`` a value applies to every streamlet (key ``"default"``). These win over
    the blueprint's ``resources:``; a streamlet's own value wins over the one for all.
    """
    found: dict[str, dict[str, dict[str, str]]] = {}  # target -> requests/limits
    for option, values in (("--cpu", cpu), ("--memory", memory)):
        resource = option.lstrip("-")
        for value in values:
            name, eq, quantity = value.rpartition("=")
            target = name.strip() if eq else "default"
            quantity = quantity.strip()
            problem = quantity_problem(resource, quantity)
            if problem is not None:
                raise click.BadParameter(
                    f"{value!r}: {problem[0]} ({problem[1]})", param_hint=option
                )
            layer = found.setdefault(target, {"requests": {}})
            layer["requests"][resource] = quantity
            if resource == "memory":
                layer.setdefault("limits", {})["memory"] = quantity
    return dict(found)


def _section_value(overrides: ConfigOverrides, section: str, key: str) -> str | None:
    """A text setting of a runner section of the config file (``None`` when unset)."""
    body = overrides.sections.get(section)
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def _check_runner_sections(overrides: ConfigOverrides) -> None:
    """Reject the runner sections the pods would reject, before anything is deployed."""
    kafka_sections_or_fail(overrides, environ={})


def _kubectl(context: str | None) -> Kubectl:
    try:
        return Kubectl.find(context)
    except KubectlError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("deploy")
@click.argument("blueprint", type=BLUEPRINT)
@click.option(
    "--image", required=True, help="Container image with the application (see 'flow dockerfile')."
)
@click.option(
    "-o",
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, writable=True),
    help="Write the manifests and kustomization.yaml into this directory.",
)
@click.option("--apply", "apply_", is_flag=True, help="Hand the manifests to 'kubectl apply -k'.")
@click.option("-n", "--namespace", help="Namespace of the application's resources.")
@click.option("--context", help="kubeconfig context for --apply.")
@click.option(
    "--kafka-cluster",
    default=DEFAULT_KAFKA_CLUSTER,
    show_default=True,
    help="Name of the Strimzi Kafka cluster (the strimzi.io/cluster label of the topics).",
)
@click.option(
    "--kafka-namespace",
    help="Namespace of the Strimzi Kafka cluster, where the KafkaTopics go "
    "(default: the application's).",
)
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap servers for the pods (default: <cluster>-kafka-bootstrap:9092).",
)
@click.option(
    "--scale",
    multiple=True,
    metavar="NAME=REPLICAS",
    help="Replicas of one streamlet (repeatable).",
)
@click.option(
    "--cpu",
    multiple=True,
    metavar="[NAME=]QUANTITY",
    help="CPU request, of one streamlet or all, over the blueprint's resources (repeatable).",
)
@click.option(
    "--memory",
    multiple=True,
    metavar="[NAME=]QUANTITY",
    help="Memory request and limit, of one streamlet or all, over the blueprint's resources "
    "(repeatable).",
)
@click.option(
    "--autoscale",
    is_flag=True,
    help="Add a KEDA ScaledObject per consuming streamlet (scales on consumer lag).",
)
@click.option(
    "--lag-threshold",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="With --autoscale: target lag per replica.",
)
@click.option(
    "--max-replicas",
    type=click.IntRange(min=1),
    help="With --autoscale: upper bound (default: partitions of the input topic).",
)
@click.option(
    "--ingress",
    "ingress_hosts",
    multiple=True,
    metavar="NAME=HOST",
    help="Add an Ingress for an HTTP ingress streamlet (repeatable).",
)
@click.option(
    "--job",
    "jobs",
    multiple=True,
    metavar="NAME",
    help="Run this bounded source once, to completion, as a Job (repeatable).",
)
@click.option(
    "--image-pull-policy",
    type=click.Choice(["IfNotPresent", "Always", "Never"]),
    default="IfNotPresent",
    show_default=True,
    help="When the nodes pull the image.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=METRICS_PORT,
    show_default=True,
    help="Port of /metrics, /healthz and /readyz in the pods.",
)
@_config_options
def deploy_command(
    blueprint: str,
    image: str,
    output_dir: str | None,
    apply_: bool,
    namespace: str | None,
    context: str | None,
    kafka_cluster: str,
    kafka_namespace: str | None,
    bootstrap: str | None,
    scale: tuple[str, ...],
    cpu: tuple[str, ...],
    memory: tuple[str, ...],
    autoscale: bool,
    lag_threshold: int,
    max_replicas: int | None,
    ingress_hosts: tuple[str, ...],
    jobs: tuple[str, ...],
    image_pull_policy: str,
    metrics_port: int,
    config_file: str | None,
    sets: tuple[str, ...],
) -> None:
    """Write Kubernetes manifests for a blueprint (and apply them with --apply).

    Per application: a Deployment per streamlet (running 'flow run-streamlet'; a
    StatefulSet for exactly-once streamlets, a Job for sources given with --job), a
    ConfigMap with the blueprint and its non-secret config, a Secret with secret config
    values and the runner sections of --config, a Strimzi KafkaTopic per topic and per
    dead-letter topic, a Service per HTTP ingress streamlet, KEDA ScaledObjects with
    --autoscale, and a kustomization.yaml ('kubectl apply -k DIR').

    Without -o and --apply the manifests are printed as one YAML stream; the Secret is
    then left out when it holds secret values (they are never printed).
    """
    overrides = load_overrides_or_fail(config_file, sets)
    verified = _verified(blueprint, overrides)
    _check_runner_sections(overrides)
    options = DeployOptions(
        image=image,
        namespace=namespace,
        kafka_cluster=kafka_cluster,
        kafka_namespace=kafka_namespace,
        bootstrap=bootstrap or _section_value(overrides, "kafka", "bootstrap.servers"),
        scale={n: _replicas(c, "'--scale'") for n, c in _pairs(scale, "'--scale'", "threshold=4")},
        resources=_resources(cpu, memory),
        image_pull_policy=image_pull_policy,
        metrics_port=metrics_port,
        autoscale=autoscale,
        lag_threshold=lag_threshold,
        max_replicas=max_replicas,
        ingress_hosts=dict(_pairs(ingress_hosts, "'--ingress'", "ingest=ingest.example.com")),
        dead_letter_template=_section_value(overrides, "runner", "dead_letter_topic"),
        jobs=frozenset(jobs),
    )
    app_config = build_app_config(
        verified, verified.document, overrides, source=os.path.basename(verified.path)
    )
    problems = option_problems(verified, options, app_config)
    if problems:
        raise click.UsageError("; ".join(problems))
    for warning in deploy_warnings(verified, options, app_config):
        click.echo(click.style(f"warning: {warning}", fg="yellow"), err=True)
    manifests = render(verified, options, app_config)
    kubectl = _kubectl(context) if apply_ else None
    if output_dir is None and not apply_:
        click.echo(manifest_stream(manifests, include_secret=not app_config.has_secrets), nl=False)
        if app_config.has_secrets:
            click.echo(
                "note: the Secret is not printed because it holds secret values; "
                "write the manifests with -o DIR or use --apply",
                err=True,
            )
        return
    with tempfile.TemporaryDirectory(prefix="flow-deploy-") as tmp:
        directory = output_dir or tmp
        try:
            written = write_manifests(manifests, directory)
        except OSError as exc:
            raise click.ClickException(
                f"cannot write the manifests to {directory}: {exc.strerror}"
            ) from None
        if output_dir is not None:
            click.echo(
                f"wrote {len(written)} files to {output_dir} "
                f"(apply them with: kubectl apply -k {output_dir})",
                err=True,
            )
        if kubectl is not None:
            try:
                report = operations.apply_directory(kubectl, directory)
            except KubectlError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(report, nl=False)
            click.echo(
                f"deployed {verified.name}; follow it with: flow status {verified.name}"
                + (f" -n {namespace}" if namespace else ""),
                err=True,
            )


@click.command("undeploy")
@click.argument("app")
@_cluster_options
@click.option(
    "--delete-topics",
    is_flag=True,
    help="Also delete the application's KafkaTopics, and with them their records, and the "
    "volumes of its streamlets' state (which the changelog topics back).",
)
@click.option(
    "--kafka-namespace", help="Namespace of the KafkaTopics (default: the application's)."
)
def undeploy_command(
    app: str,
    namespace: str | None,
    context: str | None,
    delete_topics: bool,
    kafka_namespace: str | None,
) -> None:
    """Delete a deployed application: Deployments, Services, ConfigMap, Secret, ScaledObjects.

    Its Kafka topics with their records, and the state volumes of stateful streamlets,
    stay unless --delete-topics is given.
    """
    kubectl = _kubectl(context)
    try:
        report = operations.undeploy(
            kubectl, app, namespace, delete_topics=delete_topics, topic_namespace=kafka_namespace
        )
    except KubectlError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report or f"nothing of '{app}' was deployed\n", nl=False)


@click.command("scale")
@click.argument("app")
@click.argument("streamlet")
@click.argument("replicas")
@_cluster_options
def scale_command(
    app: str, streamlet: str, replicas: str, namespace: str | None, context: str | None
) -> None:
    """Set the number of replicas of one streamlet of a deployed application."""
    count = _replicas(replicas, "'REPLICAS'")
    kubectl = _kubectl(context)
    try:
        report = operations.scale(kubectl, app, streamlet, count, namespace)
    except KubectlError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report, nl=False)


@click.command("configure")
@click.argument("app")
@_cluster_options
@_config_options
@click.option(
    "--code-dir",
    type=click.Path(exists=True, file_okay=False),
    default=".",
    show_default=True,
    help="Directory the streamlet classes import from, to validate the new config "
    "(the blueprint's directory).",
)
def configure_command(
    app: str,
    namespace: str | None,
    context: str | None,
    config_file: str | None,
    sets: tuple[str, ...],
    code_dir: str,
) -> None:
    """Change the config of a deployed application; its pods restart one by one.

    The new values are validated against the deployed blueprint, like 'flow verify',
    before anything changes. Secret config values go to the Secret.
    """
    overrides = load_overrides_or_fail(config_file, sets)
    if not overrides.values and not overrides.sections:
        raise click.UsageError("nothing to configure: give --set NAME.KEY=VALUE or --config FILE")
    kubectl = _kubectl(context)
    try:
        result = operations.configure(kubectl, app, overrides, namespace, code_dir=code_dir)
    except ConfigProblemsError as exc:
        show_problems(exc.problems, Severity)
        hint = ""
        if any(p.code in ("class-not-found", "import-error") for p in exc.problems):
            hint = (
                f" (the streamlet classes must import from --code-dir, here "
                f"{os.path.abspath(code_dir)}: run it in the blueprint's directory or pass "
                "--code-dir DIR)"
            )
        raise click.ClickException(
            f"the new config is invalid; nothing was changed{hint}"
        ) from None
    except KubectlError as exc:
        raise click.ClickException(str(exc)) from None
    restarted = ", ".join(result.restarted) or "none (config unchanged)"
    click.echo(f"configured {app}: {', '.join(result.changed)}; restarting: {restarted}")


@click.command("status")
@click.argument("app")
@_cluster_options
def status_command(app: str, namespace: str | None, context: str | None) -> None:
    """Show each streamlet's desired and ready replicas, restarts and state."""
    kubectl = _kubectl(context)
    try:
        rows = operations.status(kubectl, app, namespace)
    except KubectlError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(operations.format_status(rows), nl=False)


@click.command("dockerfile")
@click.argument("blueprint", type=BLUEPRINT)
@click.option(
    "--context",
    "build_context",
    type=click.Path(exists=True, file_okay=False),
    default=".",
    show_default=True,
    help="The docker build context the Dockerfile's paths are relative to.",
)
@click.option(
    "--base-image", default=DEFAULT_BASE_IMAGE, show_default=True, help="Python base image."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
def dockerfile_command(
    blueprint: str, build_context: str, base_image: str, output: str | None
) -> None:
    """Write a Dockerfile for the application image that 'flow deploy --image' expects.

    The image holds the framework and the blueprint's directory (your streamlets). Unless
    the build context holds the framework's source tree, the framework goes in as a wheel,
    which this command writes into the context (wheels/streamlets-VERSION-py3-none-any.whl):
    build the image from that context.
    """
    verified = _verified(blueprint, ConfigOverrides())
    try:
        plan = plan_image(verified.name, verified.directory, build_context, base_image)
    except DockerfileError as exc:
        raise click.ClickException(str(exc)) from None
    if plan.framework_wheel is not None:
        _write_wheel(build_context)
    text = dockerfile(plan)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}", err=True)


def _write_wheel(build_context: str) -> None:
    """Write the framework's wheel into the build context, as the Dockerfile expects."""
    try:
        path = write_framework_wheel(os.path.join(build_context, WHEELS_DIR))
    except FrameworkWheelError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot write the framework's wheel to {exc.filename}: {exc.strerror}"
        ) from None
    click.echo(f"wrote {path} (the framework, which the Dockerfile installs)", err=True)


COMMANDS = (
    deploy_command,
    undeploy_command,
    scale_command,
    configure_command,
    status_command,
    dockerfile_command,
)
