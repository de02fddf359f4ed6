"""The blueprint file as written: structural parsing of the YAML into declarations.

This step checks shapes, types, names and keys only; it imports nothing. Every problem is
collected, and parsing goes on past each one so that a single run reports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from blueprint.names import (
    CLASS_PATH_HINT,
    class_path_problem,
    did_you_mean,
    dns_label_problem,
    kafka_topic_problem,
    suggest_dns_label,
)
from blueprint.problems import Location, Problem, Severity
from blueprint.resources import (
    RESOURCE_KINDS,
    RESOURCE_NAMES,
    STORAGE_HINT,
    ResourceSpec,
    exceeds,
    quantity_problem,
    storage_problem,
)
from blueprint.yamlsource import LocatedDict, LocatedList

__all__ = [
    "APP_KEYS",
    "CODECS",
    "PARTITIONS",
    "PROCESSING_MODES",
    "REPLICAS",
    "REPLICATION_FACTOR",
    "STATE_KEYS",
    "STREAMLET_KEYS",
    "TOPIC_KEYS",
    "BlueprintDecl",
    "IntBound",
    "PortRef",
    "StreamletDecl",
    "TopicDecl",
    "parse_blueprint",
]

APP_KEYS = ("name", "description", "streamlets", "topics", "processing", "resources")
STREAMLET_KEYS = (
    "class",
    "config",
    "replicas",
    "on_error",
    "processing",
    "description",
    "resources",
    "state",
)
#: Keys of a streamlet's ``state:`` section.
STATE_KEYS = ("storage",)
TOPIC_KEYS = (
    "name",
    "producers",
    "consumers",
    "codec",
    "partitions",
    "replication_factor",
    "config",
    "description",
)
CODECS = ("avro", "json", "avro-confluent")
PROCESSING_MODES = ("at-least-once", "exactly-once")
ON_ERROR = ("dead-letter", "skip", "fail")


@dataclass(frozen=True, slots=True, order=True)
class PortRef:
    """A reference ``streamlet.port`` to one port of one streamlet."""

    streamlet: str
    port: str

    def __str__(self) -> str:
        return f"{self.streamlet}.{self.port}"


@dataclass(frozen=True, slots=True)
class StreamletDecl:
    """One entry of ``streamlets:`` as written (values not yet checked against the class)."""

    name: str
    loc: Location
    class_path: str | None
    class_loc: Location
    config: dict[str, Any]
    config_locs: dict[str, Location]
    config_loc: Location
    replicas: int
    on_error: str | None
    processing: str | None
    description: str
    resources: ResourceSpec | None = None
    #: Where ``replicas:`` is written (the streamlet's own line when it is not).
    replicas_loc: Location | None = None
    #: ``state: {storage: ...}``: the volume size of the streamlet's state on Kubernetes.
    state_storage: str | None = None
    #: Where ``state:`` is written (``None`` when it is not).
    state_loc: Location | None = None


@dataclass(frozen=True, slots=True)
class TopicDecl:
    """One entry of ``topics:`` as written."""

    key: str
    loc: Location
    name: str
    producers: tuple[tuple[PortRef, Location], ...]
    consumers: tuple[tuple[PortRef, Location], ...]
    codec: str
    partitions: int | None
    replication_factor: int | None
    config: dict[str, str]
    description: str
    #: Whether ``partitions:`` is written (``partitions`` is ``None`` when it is not, and
    #: also when its value is invalid).
    partitions_written: bool = False


@dataclass(frozen=True, slots=True)
class BlueprintDecl:
    """The whole blueprint as written, with the problems found while reading it."""

    path: str
    directory: str
    name: str
    description: str
    processing: str
    streamlets: dict[str, StreamletDecl] = field(default_factory=dict)
    topics: dict[str, TopicDecl] = field(default_factory=dict)
    resources: ResourceSpec | None = None


@dataclass(frozen=True, slots=True)
class IntBound:
    """The allowed range of an integer setting, the problem code and why it is bounded."""

    code: str
    minimum: int
    maximum: int
    why: str
    example: int = 1


#: ``replicas`` of a streamlet.
REPLICAS = IntBound(
    "invalid-replicas",
    1,
    1_000,
    "each replica is an OS process under 'run-local --kafka' and a pod on Kubernetes, and "
    "replicas beyond the partitions of the input topic get no records",
    example=2,
)
#: ``partitions`` of a topic.
PARTITIONS = IntBound(
    "invalid-partitions",
    1,
    100_000,
    "every partition costs the brokers open files and memory; Kafka's guidance is a few "
    "thousand per broker",
    example=3,
)
#: ``replication_factor`` of a topic.
REPLICATION_FACTOR = IntBound(
    "invalid-partitions",
    1,
    32_767,
    "Kafka and Strimzi's KafkaTopic take a 16-bit number, and a topic cannot have more "
    "replicas than the cluster has brokers",
    example=3,
)


def _describe(value: Any) -> str:
    """``value`` for a message, shortened: a hostile file may hold a 4,000-digit number."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        if value.bit_length() > 64:
            return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
        return f"{value:,}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {text!r}"
    return _type_name(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Parser:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def error(self, code: str, message: str, loc: Location, hint: str | None = None) -> None:
        self.problems.append(Problem(code, Severity.ERROR, message, loc, hint))

    def mapping(self, value: Any, what: str, loc: Location) -> LocatedDict | None:
        if isinstance(value, LocatedDict):
            return value
        self.error(
            "invalid-type",
            f"{what} must be a mapping, found {_type_name(value)}",
            loc,
            "write 'key: value' pairs indented under it",
        )
        return None

    def check_keys(self, data: LocatedDict, allowed: tuple[str, ...], what: str) -> None:
        for key in data:
            if not isinstance(key, str):
                self.error(
                    "invalid-type",
                    f"{what}: key {key!r} must be a string, found {_type_name(key)}",
                    data.key_loc(key),
                )
            elif key not in allowed:
                hint = did_you_mean(key, allowed) or f"known keys are: {', '.join(allowed)}"
                self.error("unknown-key", f"{what}: unknown key '{key}'", data.key_loc(key), hint)

    def string(self, data: LocatedDict, key: str, what: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        self.error(
            "invalid-type",
            f"{what}: '{key}' must be a string, found {_type_name(value)}",
            data.value_loc(key),
        )
        return None

    def bounded_int(self, data: LocatedDict, key: str, what: str, bound: IntBound) -> int | None:
        """``data[key]`` when it is a whole number within ``bound`` (else a problem)."""
        if key not in data:
            return None
        value = data[key]
        wanted = f"a whole number from {bound.minimum:,} to {bound.maximum:,}"
        hint = f"write e.g. '{key}: {bound.example}'"
        if isinstance(value, int) and not isinstance(value, bool):
            if bound.minimum <= value <= bound.maximum:
                return value
            if value < bound.minimum:
                problem = f"must be {wanted}, found {_describe(value)}"
            else:
                problem = (
                    f"is {_describe(value)}, above the limit of {bound.maximum:,}: {bound.why}"
                )
                hint = f"use at most {bound.maximum:,}"
        else:
            problem = f"must be {wanted}, found {_describe(value)}"
            digits = value.strip() if isinstance(value, str) else ""
            if digits.isascii() and digits.isdigit() and len(digits) <= 18:
                hint = f"write the number without quotes: '{key}: {int(digits)}'"
            elif isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
                hint = f"write it as a whole number: '{key}: {int(value)}'"
            elif value is None:
                hint += f", or remove '{key}' for the default"
        self.error(bound.code, f"{what}: '{key}' {problem}", data.value_loc(key), hint)
        return None

    def class_path(self, body: LocatedDict, what: str, loc: Location) -> str | None:
        """The streamlet's ``class`` when it is ``module:Class`` (else a problem)."""
        if "class" not in body:
            self.error(
                "missing-key", f"{what} has no 'class'", loc, "add 'class: module:ClassName'"
            )
            return None
        value = body["class"]
        why = class_path_problem(value) if isinstance(value, str) else None
        if isinstance(value, str) and why is None:
            return value
        found = f"{_describe(value)}: {why}" if isinstance(value, str) else _type_name(value)
        self.error(
            "invalid-class-path",
            f"{what}: 'class' must be 'module:Class', found {found}",
            body.value_loc("class"),
            CLASS_PATH_HINT,
        )
        return None

    def choice(
        self, data: LocatedDict, key: str, what: str, allowed: tuple[str, ...], code: str
    ) -> str | None:
        if key not in data:
            return None
        value = data[key]
        if isinstance(value, str) and value in allowed:
            return value
        hint = (did_you_mean(value, allowed) if isinstance(value, str) else None) or (
            f"use one of: {', '.join(allowed)}"
        )
        self.error(
            code,
            f"{what}: '{key}' is {value!r}; expected one of {', '.join(allowed)}",
            data.value_loc(key),
            hint,
        )
        return None

    def resources(self, data: LocatedDict, what: str) -> ResourceSpec | None:
        """``resources:`` of ``data``: requests and limits, each quantity checked."""
        if data.get("resources") is None:
            return None
        where = f"{what}: 'resources'"
        body = self.mapping(data["resources"], where, data.value_loc("resources"))
        if body is None:
            return None
        self.check_keys(body, RESOURCE_KINDS, f"{what}: resources")
        found: dict[str, dict[str, str]] = {kind: {} for kind in RESOURCE_KINDS}
        locs: dict[tuple[str, str], Location] = {}
        for kind in RESOURCE_KINDS:
            if body.get(kind) is None:
                continue
            section = self.mapping(body[kind], f"{what}: 'resources.{kind}'", body.value_loc(kind))
            if section is None:
                continue
            self.check_keys(section, RESOURCE_NAMES, f"{what}: resources.{kind}")
            for name in RESOURCE_NAMES:
                if name not in section:
                    continue
                value = section[name]
                loc = section.value_loc(name)
                problem: tuple[str, str] | None
                if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                    text = str(value).strip()
                    problem = quantity_problem(name, text)
                else:
                    text = ""
                    problem = (
                        f"must be a quantity, found {_type_name(value)}",
                        "write e.g. 'cpu: 100m' or 'memory: 128Mi'",
                    )
                if problem is not None:
                    self.error(
                        "invalid-resources",
                        f"{what}: resources.{kind}.{name}: {problem[0]}",
                        loc,
                        problem[1],
                    )
                    continue
                found[kind][name] = text
                locs[(kind, name)] = loc
        for name, request in found["requests"].items():
            limit = found["limits"].get(name)
            if limit is not None and exceeds(request, limit):
                self.error(
                    "invalid-resources",
                    f"{what}: resources.requests.{name} {request} is above "
                    f"resources.limits.{name} {limit}",
                    locs[("requests", name)],
                    "Kubernetes refuses a request above its limit; lower the request "
                    "or raise the limit",
                )
        return ResourceSpec(
            requests=MappingProxyType(found["requests"]),
            limits=MappingProxyType(found["limits"]),
        )

    # -- sections ------------------------------------------------------------------------

    def parse(self, data: Any, path: str, directory: str) -> BlueprintDecl | None:
        top = Location(self.file, 1, 1)
        if data is None:
            self.error(
                "missing-key",
                "the blueprint is empty",
                top,
                "start with 'name:', 'streamlets:' and 'topics:' (see the README)",
            )
            return None
        root = self.mapping(data, "the blueprint", getattr(data, "loc", top))
        if root is None:
            return None
        self.check_keys(root, APP_KEYS, "blueprint")
        name = self.string(root, "name", "blueprint")
        if "name" not in root:
            self.error(
                "missing-key", "the blueprint has no 'name'", root.loc, "add e.g. 'name: my-app'"
            )
        elif name is not None and (why := dns_label_problem(name)):
            self.error(
                "invalid-name",
                f"application name {name!r} is not a DNS-1123 label: {why}",
                root.value_loc("name"),
                f"try '{suggest_dns_label(name)}'",
            )
        description = self.string(root, "description", "blueprint") or ""
        processing = self.choice(root, "processing", "blueprint", PROCESSING_MODES, "invalid-value")
        decl = BlueprintDecl(
            path=path,
            directory=directory,
            name=name or "",
            description=description,
            processing=processing or "at-least-once",
            resources=self.resources(root, "blueprint"),
        )
        if "streamlets" not in root:
            self.error(
                "missing-key",
                "the blueprint has no 'streamlets'",
                root.loc,
                "add a 'streamlets:' mapping of name -> {class: module:Class}",
            )
        else:
            section = self.mapping(root["streamlets"], "'streamlets'", root.value_loc("streamlets"))
            if section is not None:
                for key in section:
                    parsed = self.streamlet(section, key)
                    if parsed is not None:
                        decl.streamlets[parsed.name] = parsed
        if "topics" in root and root["topics"] is not None:
            section = self.mapping(root["topics"], "'topics'", root.value_loc("topics"))
            if section is not None:
                for key in section:
                    topic = self.topic(section, key)
                    if topic is not None:
                        decl.topics[topic.key] = topic
        return decl

    def streamlet(self, section: LocatedDict, key: Any) -> StreamletDecl | None:
        loc = section.key_loc(key)
        if not isinstance(key, str):
            self.error("invalid-name", f"streamlet name {key!r} must be a string", loc)
            return None
        if why := dns_label_problem(key):
            self.error(
                "invalid-name",
                f"streamlet name {key!r} is not a DNS-1123 label: {why}",
                loc,
                f"try '{suggest_dns_label(key)}'",
            )
        what = f"streamlet '{key}'"
        body = self.mapping(section[key], what, section.value_loc(key))
        if body is None:
            return None
        self.check_keys(body, STREAMLET_KEYS, what)
        class_path = self.class_path(body, what, loc)
        config: dict[str, Any] = {}
        config_locs: dict[str, Location] = {}
        config_loc = body.value_loc("config") if "config" in body else body.loc
        if body.get("config") is not None:
            cfg = self.mapping(body["config"], f"{what}: 'config'", config_loc)
            if cfg is not None:
                for ckey, cvalue in cfg.items():
                    if not isinstance(ckey, str):
                        self.error(
                            "invalid-type",
                            f"{what}: config key {ckey!r} must be a string",
                            cfg.key_loc(ckey),
                        )
                        continue
                    config[ckey] = cvalue
                    config_locs[ckey] = cfg.value_loc(ckey)
        replicas = self.bounded_int(body, "replicas", what, REPLICAS)
        state_loc = body.key_loc("state") if "state" in body else None
        return StreamletDecl(
            name=key,
            loc=loc,
            class_path=class_path,
            class_loc=body.value_loc("class") if "class" in body else loc,
            config=config,
            config_locs=config_locs,
            config_loc=config_loc,
            replicas=replicas or 1,
            on_error=self.choice(body, "on_error", what, ON_ERROR, "invalid-value"),
            processing=self.choice(body, "processing", what, PROCESSING_MODES, "invalid-value"),
            description=self.string(body, "description", what) or "",
            resources=self.resources(body, what),
            replicas_loc=body.value_loc("replicas") if "replicas" in body else None,
            state_storage=self.state_storage(body, what),
            state_loc=state_loc,
        )

    def state_storage(self, body: LocatedDict, what: str) -> str | None:
        """``state: {storage: QUANTITY}`` of a streamlet: the quantity, checked."""
        if body.get("state") is None:
            return None
        section = self.mapping(body["state"], f"{what}: 'state'", body.value_loc("state"))
        if section is None:
            return None
        self.check_keys(section, STATE_KEYS, f"{what}: state")
        if "storage" not in section:
            return None
        value = section["storage"]
        loc = section.value_loc("storage")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value).strip()
            problem = storage_problem(text)
        else:
            text = ""
            problem = (f"must be a quantity, found {_type_name(value)}", STORAGE_HINT)
        if problem is not None:
            self.error("invalid-state", f"{what}: state.storage: {problem[0]}", loc, problem[1])
            return None
        return text

    def topic(self, section: LocatedDict, key: Any) -> TopicDecl | None:
        loc = section.key_loc(key)
        if not isinstance(key, str):
            self.error("invalid-name", f"topic name {key!r} must be a string", loc)
            return None
        what = f"topic '{key}'"
        value = section[key]
        body = (
            self.mapping(value, what, section.value_loc(key))
            if value is not None
            else LocatedDict()
        )
        if body is None:
            return None
        if not hasattr(body, "loc"):
            body.loc, body.key_locs, body.value_locs = loc, {}, {}
        self.check_keys(body, TOPIC_KEYS, what)
        name = self.string(body, "name", what)
        kafka_name = name if name is not None else key
        if why := kafka_topic_problem(kafka_name):
            where = body.value_loc("name") if name is not None else loc
            self.error(
                "invalid-name",
                f"{what}: {kafka_name!r} is not a valid Kafka topic name: {why}",
                where,
                "set 'name:' to a legal Kafka topic name" if name is None else None,
            )
        codec = self.choice(body, "codec", what, CODECS, "unknown-codec")
        config: dict[str, str] = {}
        if body.get("config") is not None:
            cfg = self.mapping(body["config"], f"{what}: 'config'", body.value_loc("config"))
            for ckey, cvalue in (cfg or {}).items():
                if isinstance(cvalue, (dict, list)) or cvalue is None:
                    self.error(
                        "invalid-type",
                        f"{what}: Kafka topic setting {ckey!r} must be a scalar, "
                        f"found {_type_name(cvalue)}",
                        cfg.value_loc(ckey) if cfg is not None else loc,
                        "write e.g. 'retention.ms: 604800000'",
                    )
                else:
                    config[str(ckey)] = (
                        str(cvalue).lower() if isinstance(cvalue, bool) else str(cvalue)
                    )
        return TopicDecl(
            key=key,
            loc=loc,
            name=kafka_name,
            producers=self.port_refs(body, "producers", what),
            consumers=self.port_refs(body, "consumers", what),
            codec=codec or "avro",
            partitions=self.bounded_int(body, "partitions", what, PARTITIONS),
            replication_factor=self.bounded_int(
                body, "replication_factor", what, REPLICATION_FACTOR
            ),
            config=config,
            description=self.string(body, "description", what) or "",
            partitions_written="partitions" in body,
        )

    def port_refs(
        self, body: LocatedDict, key: str, what: str
    ) -> tuple[tuple[PortRef, Location], ...]:
        value = body.get(key)
        if value is None:
            return ()
        items: list[tuple[Any, Location]]
        if isinstance(value, str):  # a single reference without brackets is forgiven
            items = [(value, body.value_loc(key))]
        elif isinstance(value, LocatedList):
            items = [(item, value.item_loc(i)) for i, item in enumerate(value)]
        else:
            self.error(
                "invalid-type",
                f"{what}: '{key}' must be a list of 'streamlet.port', found {_type_name(value)}",
                body.value_loc(key),
                f"write e.g. '{key}: [ingest.out]'",
            )
            return ()
        refs: list[tuple[PortRef, Location]] = []
        seen: set[PortRef] = set()
        for item, loc in items:
            if not isinstance(item, str) or item.count(".") != 1 or not all(item.split(".")):
                self.error(
                    "invalid-port-ref",
                    f"{what}: {key} entry {item!r} is not of the form 'streamlet.port'",
                    loc,
                    "name a streamlet and one of its ports, e.g. 'threshold.readings'",
                )
                continue
            streamlet, port = item.split(".")
            ref = PortRef(streamlet, port)
            if ref in seen:
                self.error(
                    "duplicate-name",
                    f"{what}: '{item}' is listed twice in {key}",
                    loc,
                    "remove the repeat",
                )
                continue
            seen.add(ref)
            refs.append((ref, loc))
        return tuple(refs)


def parse_blueprint(
    data: Any, *, file: str, directory: str, path: str = ""
) -> tuple[BlueprintDecl | None, list[Problem]]:
    """Turn loaded YAML into declarations; returns them (``None`` if unusable) and the problems.

    ``file`` names the blueprint in locations, ``directory`` is where its classes and
    relative paths resolve, ``path`` the file it was read from (``""`` if none).
    """
    parser = _Parser(file)
    decl = parser.parse(data, path, directory)
    return decl, parser.problems
