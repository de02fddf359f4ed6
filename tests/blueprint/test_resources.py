"""``resources:`` in blueprints: quantities, keys, requests against limits, and layering."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from blueprint import Problem, ResourceSpec, verify
from blueprint.resources import layer_resources, quantity_problem, quantity_value

Write = Callable[..., Path]

WITH_RESOURCES = """
name: app
resources:
  requests: {cpu: 50m, memory: 64Mi}
  limits: {memory: 256Mi}
streamlets:
  src:
    class: sample_app:Source
  mid:
    class: sample_app:Pass
    replicas: 2
    resources:
      requests: {cpu: 0.5, memory: 128Mi}
      limits: {cpu: 2, memory: 1G, ephemeral-storage: 1Gi}
  sink:
    class: sample_app:Sink
topics:
  raw:
    producers: [src.out]
    consumers: [mid.readings]
    partitions: 2
  clean:
    producers: [mid.out]
    consumers: [sink.readings]
"""


def errors(problems: tuple[Problem, ...]) -> list[tuple[str, int, str, str | None]]:
    return [
        (p.code, p.location.line if p.location else 0, p.message, p.hint)
        for p in problems
        if p.is_error
    ]


def test_resources_reach_the_verified_blueprint_frozen(write_blueprint: Write) -> None:
    result = verify(write_blueprint(WITH_RESOURCES)).unwrap()
    assert result.problems == ()
    assert result.resources == ResourceSpec(
        requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"}
    )
    mid = result.streamlets["mid"].resources
    assert mid is not None
    # YAML numbers become the quantities they spell
    assert dict(mid.requests) == {"cpu": "0.5", "memory": "128Mi"}
    assert mid.as_dict()["limits"] == {"cpu": "2", "memory": "1G", "ephemeral-storage": "1Gi"}
    assert result.streamlets["src"].resources is None
    with pytest.raises(TypeError):
        mid.requests["cpu"] = "1"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        mid.limits = {}  # type: ignore[misc]


def test_no_resources_and_empty_resources_are_fine(write_blueprint: Write) -> None:
    text = WITH_RESOURCES.replace(
        "  requests: {cpu: 50m, memory: 64Mi}\n  limits: {memory: 256Mi}\n", "  requests:\n"
    )
    result = verify(write_blueprint(text)).unwrap()
    assert result.resources == ResourceSpec()
    assert result.resources.as_dict() == {}


def test_unknown_keys_at_every_level_get_did_you_mean(write_blueprint: Write) -> None:
    text = WITH_RESOURCES.replace("requests: {cpu: 50m", "request: {cpu: 50m").replace(
        "memory: 128Mi}", "memroy: 128Mi}"
    )
    text = text.replace("    replicas: 2\n", "    replicas: 2\n    resource: {}\n")
    found = errors(verify(write_blueprint(text)).problems)
    assert found == [
        (
            "unknown-key",
            3,
            "blueprint: resources: unknown key 'request'",
            "did you mean 'requests'?",
        ),
        ("unknown-key", 11, "streamlet 'mid': unknown key 'resource'", "did you mean 'resources'?"),
        (
            "unknown-key",
            13,
            "streamlet 'mid': resources.requests: unknown key 'memroy'",
            "did you mean 'memory'?",
        ),
    ]


@pytest.mark.parametrize(
    ("value", "message", "hint"),
    [
        ("lots", "'lots' is not a Kubernetes quantity", "e.g. 100m, 0.5 or 2"),
        ("-1", "'-1' is not a Kubernetes quantity", "e.g. 100m, 0.5 or 2"),
        ("1.5Gi", "is not a CPU amount", "m is a thousandth of a core"),
        ("null", "must be a quantity, found nothing (null)", "cpu: 100m"),
        ("true", "must be a quantity, found a boolean", "cpu: 100m"),
    ],
)
def test_invalid_cpu_quantities(
    write_blueprint: Write, value: str, message: str, hint: str
) -> None:
    text = WITH_RESOURCES.replace("{cpu: 0.5,", f"{{cpu: {value},")
    ((code, line, text_found, hint_found),) = errors(verify(write_blueprint(text)).problems)
    assert (code, line) == ("invalid-resources", 12)
    assert text_found.startswith("streamlet 'mid': resources.requests.cpu: ")
    assert message in text_found
    assert hint_found is not None and hint in hint_found


def test_memory_in_thousandths_of_a_byte_is_refused(write_blueprint: Write) -> None:
    text = WITH_RESOURCES.replace("limits: {memory: 256Mi}", "limits: {memory: 256m}")
    ((code, line, message, hint),) = errors(verify(write_blueprint(text)).problems)
    assert (code, line) == ("invalid-resources", 4)
    assert message == (
        "blueprint: resources.limits.memory: '256m' is a fraction of a byte "
        "('m' means a thousandth)"
    )
    assert hint == "did you mean '256Mi'?"


def test_a_request_above_its_limit_is_refused(write_blueprint: Write) -> None:
    text = WITH_RESOURCES.replace("{cpu: 0.5,", "{cpu: 2500m,")
    ((code, line, message, hint),) = errors(verify(write_blueprint(text)).problems)
    assert (code, line) == ("invalid-resources", 12)
    assert message == (
        "streamlet 'mid': resources.requests.cpu 2500m is above resources.limits.cpu 2"
    )
    assert hint is not None and "lower the request or raise the limit" in hint


def test_resources_must_be_mappings(write_blueprint: Write) -> None:
    text = WITH_RESOURCES.replace("    replicas: 2\n", "    replicas: 2\n    resources: 1Gi\n")
    text = text.replace(
        "    resources:\n      requests: {cpu: 0.5, memory: 128Mi}\n"
        "      limits: {cpu: 2, memory: 1G, ephemeral-storage: 1Gi}\n",
        "",
    )
    text = text.replace("limits: {memory: 256Mi}", "limits: [256Mi]")
    found = [(code, line) for code, line, _, _ in errors(verify(write_blueprint(text)).problems)]
    assert found == [("invalid-type", 4), ("invalid-type", 11)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("0.5", Decimal("0.5")),
        ("2", Decimal(2)),
        (".5", Decimal("0.5")),
        ("128Mi", Decimal(128 * 2**20)),
        ("1G", Decimal(10**9)),
        ("1Ki", Decimal(1024)),
        ("1e3", Decimal(1000)),
        ("250u", Decimal("0.00025")),
    ],
)
def test_quantity_values(text: str, value: Decimal) -> None:
    assert quantity_value(text) == value


@pytest.mark.parametrize(
    ("resource", "text"),
    [("cpu", "100m"), ("cpu", "0.5"), ("cpu", "2"), ("memory", "128Mi"), ("memory", "1G")],
)
def test_usual_quantities_are_accepted(resource: str, text: str) -> None:
    assert quantity_problem(resource, text) is None


@pytest.mark.parametrize("text", ["", "1.2.3", "1 Gi", "1gi", "1KiB", "-1", "+1", "0x10"])
def test_not_quantities(text: str) -> None:
    assert quantity_value(text) is None
    problem = quantity_problem("memory", text)
    assert problem is not None and "not a Kubernetes quantity" in problem[0]


@pytest.mark.parametrize("text", ["1e99", "1e-99", "10Ei"])
def test_quantities_out_of_range(text: str) -> None:
    problem = quantity_problem("memory", text)
    assert problem is not None and "out of the range" in problem[0]


def test_layers_apply_key_by_key_and_keep_requests_within_limits() -> None:
    defaults = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    assert layer_resources(defaults, None, {}) == defaults
    # a later request above an earlier limit raises that limit
    assert layer_resources(defaults, {"requests": {"memory": "1Gi"}}) == {
        "requests": {"cpu": "100m", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }
    # a later limit below an earlier request lowers that request
    assert layer_resources(defaults, {"limits": {"memory": "64Mi", "cpu": "50m"}}) == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "50m", "memory": "64Mi"},
    }
    # a layer that sets both keeps both; unrelated keys stay as they were
    assert layer_resources(
        defaults, {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}, {"requests": {"cpu": "3"}}
    ) == {"requests": {"cpu": "3", "memory": "128Mi"}, "limits": {"cpu": "3", "memory": "512Mi"}}
