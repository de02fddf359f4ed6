"""Verification: from a blueprint's text to a :class:`Verification` (the model or every problem).

The steps run in order (parse YAML, check structure, load classes, check configs, check
ports and connections, check schema compatibility, look at the graph) and each step goes as
far as the earlier ones allow, so one run reports every problem that can be known.
:func:`verify_source` does no I/O of its own: classes come from the :data:`ClassLoader` it
is given, and configs validate with the blueprint's directory on ``sys.path`` for the
duration. :func:`verify` reads the file first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import networkx as nx
from pydantic import BaseModel, ValidationError

from blueprint.classes import ClassLoader, ClassLoadFailure, load_streamlet_class, user_code_path
from blueprint.compatibility import incompatibilities
from blueprint.declarations import BlueprintDecl, PortRef, StreamletDecl, parse_blueprint
from blueprint.graph import build_graph, find_cycles
from blueprint.metadata import MetadataOption, field_finding, is_compacted
from blueprint.model import StreamletSpec, TopicSpec, VerifiedBlueprint, freeze
from blueprint.names import did_you_mean, dns_label_problem
from blueprint.overrides import ConfigOverrides
from blueprint.problems import Location, Problem, Severity
from blueprint.result import Verification
from blueprint.secrets import is_secret_path, mask_secrets, scalar_texts, secret_texts
from blueprint.source import BlueprintSource, read_blueprint
from blueprint.stateful import (
    InputTopic,
    copartition_finding,
    idle_replicas_finding,
    state_findings,
)
from blueprint.user_frames import user_frame_of
from blueprint.yamlsource import LocatedDict, LocatedList, load_yaml_source
from streamlets.errors import SchemaError
from streamlets.ports import Outlet, Port
from streamlets.schema import Schema
from streamlets.streamlet import Streamlet

__all__ = ["verify", "verify_source"]


@dataclass
class _Loaded:
    decl: StreamletDecl
    cls: type[Streamlet]
    config: BaseModel | None = None
    config_data: Mapping[str, Any] | None = None


class _Verifier:
    def __init__(
        self, source: BlueprintSource, overrides: ConfigOverrides, loader: ClassLoader
    ) -> None:
        self.source = source
        self.overrides = overrides
        self.loader = loader
        self.problems: list[Problem] = list(overrides.problems)
        self.loaded: dict[str, _Loaded] = {}
        self.bad_streamlets: set[str] = set()
        self._schemas: dict[tuple[int, int], Schema | None] = {}
        self._compat: dict[tuple[int, int], tuple[Any, ...]] = {}

    def add(
        self,
        code: str,
        message: str,
        loc: Location | None,
        hint: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        self.problems.append(Problem(code, severity, message, loc, hint))

    # -- steps ---------------------------------------------------------------------------

    def run(self) -> VerifiedBlueprint | None:
        source = self.source
        document = load_yaml_source(source.text, source.display)
        self.problems.extend(document.problems)
        if document.data is None and document.problems:
            return None
        decl, problems = parse_blueprint(
            document.data, file=source.display, directory=source.directory, path=source.path
        )
        self.problems.extend(problems)
        if decl is None:
            return None
        self.load_classes(decl)
        self.check_overrides_target(decl)
        # Validating a config runs user code too: its validators, and imports such as the
        # library's `schema: module:Class` (a pydantic ImportString), which resolve next to
        # the blueprint first, like the streamlet classes.
        with user_code_path(decl.directory):
            self.check_configs(decl)
        self.check_connections(decl)
        self.check_schemas(decl)
        self.check_metadata_fields()
        self.check_compacted_topics(decl)
        self.check_states(decl)
        self.check_partitions(decl)
        self.check_copartitioned_tables(decl)
        graph = build_graph(decl)
        for cycle in find_cycles(graph):
            first = decl.streamlets[cycle[0]]
            self.add(
                "cycle",
                f"the streamlets {' -> '.join([*cycle, cycle[0]])} form a cycle",
                first.loc,
                "records may circulate forever; make sure the loop ends (e.g. a hop counter)",
                Severity.WARNING,
            )
        if any(p.is_error for p in self.problems):
            return None
        return self.build(decl, graph, document.data)

    def load_classes(self, decl: BlueprintDecl) -> None:
        for name, sdecl in decl.streamlets.items():
            if sdecl.class_path is None:
                self.bad_streamlets.add(name)
                continue
            result = self.loader(sdecl.class_path, decl.directory)
            if isinstance(result, ClassLoadFailure):
                self.add(
                    result.code,
                    f"streamlet '{name}': {result.message}",
                    sdecl.class_loc,
                    result.hint,
                )
                self.bad_streamlets.add(name)
                continue
            for reason in result.definition_problems():
                self.add(
                    "invalid-streamlet",
                    f"streamlet '{name}': class {result.__name__} cannot run: {reason}",
                    sdecl.class_loc,
                )
            self.loaded[name] = _Loaded(sdecl, result)

    def check_overrides_target(self, decl: BlueprintDecl) -> None:
        for name, entries in self.overrides.values.items():
            if name not in decl.streamlets:
                loc = next(iter(entries.values()))[1] if entries else None
                if loc is not None:  # no Config says which values are secret: show none
                    given = tuple(
                        text for value, _ in entries.values() for text in scalar_texts(value)
                    )
                    loc = _masked(loc, given)
                self.add(
                    "unknown-streamlet",
                    f"config override for streamlet '{name}', which the blueprint does not define",
                    loc,
                    did_you_mean(name, decl.streamlets)
                    or f"streamlets: {', '.join(decl.streamlets)}",
                )

    def check_configs(self, decl: BlueprintDecl) -> None:
        for name, item in self.loaded.items():
            sdecl = item.decl
            data: dict[str, Any] = dict(sdecl.config)
            locs: dict[str, Location] = dict(sdecl.config_locs)
            for key, (value, loc) in self.overrides.for_streamlet(name).items():
                data[key] = value
                locs[key] = loc
            model = item.cls.Config
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue  # reported as invalid-streamlet
            fields = {f.alias or n: n for n, f in model.model_fields.items()}
            fields.update({n: n for n in model.model_fields})
            allows_extra = model.model_config.get("extra") == "allow"
            ok = True
            if not allows_extra:
                for key, value in data.items():
                    if key not in fields:
                        ok = False
                        known = ", ".join(model.model_fields) or "no keys"
                        self.add(
                            "invalid-config",
                            f"streamlet '{name}': unknown config key '{key}' "
                            f"({item.cls.__name__}.Config has {known})",
                            # A misspelt secret key is still a secret: show no value given.
                            _masked(locs.get(key, sdecl.config_loc), tuple(scalar_texts(value))),
                            did_you_mean(key, fields) or "remove it",
                        )
            data = _resolve_paths(model, data, decl.directory)
            secrets = secret_texts(model, data)
            try:
                config = model.model_validate(data)
            except ValidationError as exc:
                # One problem per field: pydantic reports a value that fits no type of a
                # union once per type, each under a tag such as 'dict[str,any]'.
                by_field: dict[str, tuple[Any, tuple[Any, ...], list[str]]] = {}
                for error in exc.errors():
                    if error["type"] == "extra_forbidden":
                        continue
                    path = tuple(p for p in error["loc"] if not _is_union_tag(p))
                    field_path = ".".join(str(p) for p in path) or "(config)"
                    _, _, messages = by_field.setdefault(field_path, (error, path, []))
                    messages.append(mask_secrets(error["msg"], secrets))
                for field_path, (error, path, messages) in by_field.items():
                    key = str(error["loc"][0]) if error["loc"] else ""
                    where = locs.get(key, sdecl.config_loc)
                    if key in sdecl.config and where == sdecl.config_locs.get(key):
                        # The line of the nested value that is wrong (window.size).
                        where = _nested_loc(sdecl.config[key], path[1:], where)
                    got = error.get("input")
                    if error["type"] == "missing":
                        got_text = ""
                    elif is_secret_path(model, error["loc"]):
                        # A secret's value never reaches the output, not even a wrong one.
                        got_text = f"; got {_kind(got)} (not shown: the value is secret)"
                        where = _masked(where, secrets)
                    else:
                        got_text = f"; got {_short(got)}"
                    said = messages[0] if len(messages) == 1 else "; or: ".join(messages)
                    self.add(
                        "invalid-config",
                        f"streamlet '{name}': config '{field_path}': {said}{got_text}",
                        where,
                        _config_hint(error["type"], field_path)
                        or (error.get("ctx") or {}).get("hint"),
                    )
                continue
            except Exception as exc:  # a user validator may raise anything
                frame = user_frame_of(exc)
                at = f" (at {frame})" if frame is not None else ""
                self.add(
                    "invalid-config",
                    f"streamlet '{name}': config validation raised {type(exc).__name__}: "
                    f"{mask_secrets(str(exc), secrets)}{at}",
                    sdecl.config_loc,
                )
                continue
            if ok:
                item.config = config
                item.config_data = data

    def port(self, ref: PortRef) -> Port[Any] | None:
        item = self.loaded.get(ref.streamlet)
        if item is None:
            return None
        cls = item.cls
        return cls.inlets().get(ref.port) or cls.outlets().get(ref.port)

    def check_connections(self, decl: BlueprintDecl) -> None:
        kafka_names: dict[str, str] = {}
        consumed: dict[PortRef, list[tuple[str, Location]]] = {}
        produced: set[PortRef] = set()
        for topic in decl.topics.values():
            other = kafka_names.get(topic.name)
            if other is not None:
                self.add(
                    "duplicate-name",
                    f"topics '{other}' and '{topic.key}' both use the Kafka topic '{topic.name}'",
                    topic.loc,
                    "give one of them another 'name:'",
                )
            else:
                kafka_names[topic.name] = topic.key
            if not topic.producers and not topic.consumers:
                self.add(
                    "empty-topic",
                    f"topic '{topic.key}' has neither producers nor consumers",
                    topic.loc,
                    "add 'producers: [streamlet.outlet]' and 'consumers: [streamlet.inlet]', "
                    "or remove the topic",
                )
            elif not topic.producers:
                self.add(
                    "external-topic",
                    f"topic '{topic.key}' has no producers in this blueprint: "
                    "its records come from outside the application",
                    topic.loc,
                    severity=Severity.NOTE,
                )
            elif not topic.consumers:
                self.add(
                    "external-topic",
                    f"topic '{topic.key}' has no consumers in this blueprint: "
                    "its records leave the application",
                    topic.loc,
                    severity=Severity.NOTE,
                )
            for ref, loc in topic.producers:
                if self.check_ref(decl, topic.key, ref, loc, "outlet"):
                    produced.add(ref)
            for ref, loc in topic.consumers:
                if self.check_ref(decl, topic.key, ref, loc, "inlet"):
                    consumed.setdefault(ref, []).append((topic.key, loc))
        for name, item in self.loaded.items():
            for inlet in item.cls.inlets():
                ref = PortRef(name, inlet)
                topics = consumed.get(ref, [])
                if not topics and item.cls.inlets()[inlet].optional:
                    self.add(
                        "optional-inlet-unconnected",
                        f"optional inlet '{ref}' is not connected to any topic: "
                        "it receives no records",
                        item.decl.loc,
                        f"add '{ref}' to the consumers of a topic to feed it",
                        Severity.NOTE,
                    )
                elif not topics:
                    self.add(
                        "unconnected-inlet",
                        f"inlet '{ref}' is not connected to any topic",
                        item.decl.loc,
                        f"add '{ref}' to the consumers of a topic",
                    )
                for topic_key, loc in topics[1:]:
                    self.add(
                        "inlet-on-several-topics",
                        f"inlet '{ref}' consumes topic '{topic_key}' and also topic "
                        f"'{topics[0][0]}'; an inlet reads exactly one topic",
                        loc,
                        "let the producers of both write to one topic, or add another inlet",
                    )
            for outlet in item.cls.outlets():
                ref = PortRef(name, outlet)
                if ref not in produced:
                    self.add(
                        "unconnected-outlet",
                        f"outlet '{ref}' is not connected to any topic: its records are discarded",
                        item.decl.loc,
                        f"add '{ref}' to the producers of a topic if you need its records",
                        Severity.NOTE,
                    )

    def check_ref(
        self, decl: BlueprintDecl, topic: str, ref: PortRef, loc: Location, direction: str
    ) -> bool:
        role = "producer" if direction == "outlet" else "consumer"
        if ref.streamlet not in decl.streamlets:
            self.add(
                "unknown-streamlet",
                f"topic '{topic}': {role} '{ref}' names streamlet '{ref.streamlet}', "
                "which the blueprint does not define",
                loc,
                did_you_mean(ref.streamlet, decl.streamlets)
                or f"defined streamlets: {', '.join(decl.streamlets) or 'none'}",
            )
            return False
        item = self.loaded.get(ref.streamlet)
        if item is None:
            return False  # its class did not load; that problem is reported already
        wanted = item.cls.inlets() if direction == "inlet" else item.cls.outlets()
        other = item.cls.outlets() if direction == "inlet" else item.cls.inlets()
        if ref.port in wanted:
            return True
        if ref.port in other:
            other_dir = "outlet" if direction == "inlet" else "inlet"
            self.add(
                "wrong-direction",
                f"topic '{topic}': '{ref}' is an {other_dir}, so it cannot be a {role}",
                loc,
                f"move '{ref}' to '{'producers' if other_dir == 'outlet' else 'consumers'}'",
            )
            return False
        ports = ", ".join(
            f"{p} ({'in' if p in item.cls.inlets() else 'out'})"
            for p in [*item.cls.inlets(), *item.cls.outlets()]
        )
        self.add(
            "unknown-port",
            f"topic '{topic}': streamlet '{ref.streamlet}' ({item.cls.__name__}) "
            f"has no {direction} '{ref.port}'",
            loc,
            did_you_mean(ref.port, wanted) or f"its ports are: {ports or 'none'}",
        )
        return False

    def schema(self, ref: PortRef, loc: Location) -> Schema | None:
        port = self.port(ref)
        if port is None:
            return None
        item = self.loaded[ref.streamlet]
        if port.configured and item.config is None:
            return None  # its config is invalid, which is reported already
        key = (id(port), id(item)) if port.configured else (id(port), 0)
        if key in self._schemas:
            return self._schemas[key]
        result: Schema | None
        try:
            result = port.schema_for(item.config)
        except SchemaError as exc:
            self.add(
                "invalid-schema",
                f"port '{ref}' has no valid Avro schema: {exc}",
                self.loaded[ref.streamlet].decl.class_loc,
            )
            result = None
        self._schemas[key] = result
        return result

    def check_schemas(self, decl: BlueprintDecl) -> None:
        for topic in decl.topics.values():
            writers = [(ref, self.schema(ref, loc)) for ref, loc in topic.producers]
            for ref, loc in topic.consumers:
                reader = self.schema(ref, loc)
                if reader is None:
                    continue
                for wref, writer in writers:
                    if writer is None:
                        continue
                    pair = (id(writer), id(reader))
                    found = self._compat.get(pair)
                    if found is None:
                        found = incompatibilities(writer.avro, reader.avro)
                        self._compat[pair] = found
                    for item in found:
                        self.add(
                            "incompatible-schema",
                            f"topic '{topic.key}': {ref} cannot read what {wref} writes: "
                            f"{item.path}: {item.message}",
                            loc,
                            item.hint,
                        )

    def check_metadata_fields(self) -> None:
        """``unknown-key-field``: each ``key=``/``timestamp=`` names a fitting field."""
        for name, item in self.loaded.items():
            ports: list[Port[Any]] = [*item.cls.inlets().values(), *item.cls.outlets().values()]
            for port in ports:
                options: list[tuple[MetadataOption, str]] = []
                if isinstance(port, Outlet) and isinstance(port.key, str):
                    options.append(("key", port.key))
                if port.timestamp is not None:
                    options.append(("timestamp", port.timestamp))
                if not options:
                    continue
                schema = self.schema(PortRef(name, port.name), item.decl.class_loc)
                if schema is None:
                    continue  # no schema to look in; that problem is reported already
                for option, field in options:
                    found = field_finding(port, option, field, schema)
                    if found is not None:
                        self.add(
                            "unknown-key-field",
                            f"streamlet '{name}': {found.message}",
                            item.decl.class_loc,
                            found.hint,
                        )

    def check_compacted_topics(self, decl: BlueprintDecl) -> None:
        """``keyless-compacted-producer``: producers of a compacted topic declare a key."""
        for topic in decl.topics.values():
            if not is_compacted(topic.config):
                continue
            for ref, loc in topic.producers:
                item = self.loaded.get(ref.streamlet)
                outlet = item.cls.outlets().get(ref.port) if item is not None else None
                if item is None or outlet is None or outlet.key is not None:
                    continue
                inherited = (
                    "a source's records have no key"
                    if not item.cls.inlets()
                    else "its records have a key only when the input they come from has one"
                )
                self.add(
                    "keyless-compacted-producer",
                    f"topic '{topic.key}' is compacted (cleanup.policy: "
                    f"{topic.config['cleanup.policy']}), but its producer '{ref}' "
                    f"({item.cls.__name__}.{ref.port}) declares no key: Kafka refuses a record "
                    f"without a key on a compacted topic, and {inherited} unless it is emitted "
                    "with one",
                    loc,
                    f'declare the key on the outlet: {ref.port} = Outlet(..., key="field") '
                    "or key=lambda record: ...; or emit each record with "
                    f"self.{ref.port}.emit(record, key=...)",
                    Severity.WARNING,
                )

    def check_states(self, decl: BlueprintDecl) -> None:
        """``invalid-state`` for a state that cannot be kept; ``unused-state-storage`` for
        ``state: {storage: ...}`` on a streamlet that keeps none."""
        app = decl.name if dns_label_problem(decl.name) is None else ""
        for name, item in self.loaded.items():
            states = item.cls.states()
            for _state, found in state_findings(states, app, name):
                self.add(
                    "invalid-state",
                    f"streamlet '{name}': {found.message}",
                    item.decl.class_loc,
                    found.hint,
                )
            if not states and item.decl.state_storage is not None:
                self.add(
                    "unused-state-storage",
                    f"streamlet '{name}' gives 'state: {{storage: {item.decl.state_storage}}}', "
                    f"but {item.cls.__name__} declares no State: it keeps nothing, and "
                    "flow deploy makes no state volume for it",
                    item.decl.state_loc or item.decl.loc,
                    "remove 'state:', or declare a State on the class "
                    "(e.g. total = State(float, default=0.0))",
                    Severity.WARNING,
                )

    def input_topics(self, decl: BlueprintDecl, name: str) -> list[InputTopic] | None:
        """The topics ``name`` reads through its shared (not replayed) inlets; ``None``
        when one of their partition counts is invalid (reported already)."""
        cls = self.loaded[name].cls
        found: list[InputTopic] = []
        for inlet in cls.inlets():
            if inlet in cls.replay_inlets:
                continue  # every replica reads all of it: not partitioned among them
            ref = PortRef(name, inlet)
            for topic in decl.topics.values():
                if any(r == ref for r, _ in topic.consumers):
                    if topic.partitions_written and topic.partitions is None:
                        return None
                    found.append(InputTopic(inlet, topic.key, topic.partitions))
                    break
        return found

    def check_partitions(self, decl: BlueprintDecl) -> None:
        """``not-copartitioned``: a stateful streamlet's topics have one partition count;
        ``idle-replicas``: replicas beyond what its input partitions can keep busy."""
        for name, item in self.loaded.items():
            inputs = self.input_topics(decl, name)
            if inputs is None:
                continue
            states = item.cls.states()
            if states and not item.cls.tables():  # with tables: check_copartitioned_tables
                found = copartition_finding(states, inputs)
                if found is not None:
                    self.add(
                        "not-copartitioned",
                        f"streamlet '{name}': {found.message}",
                        item.decl.loc,
                        found.hint,
                    )
            idle = idle_replicas_finding(item.decl.replicas, inputs, bool(states))
            if idle is not None:
                self.add(
                    "idle-replicas",
                    f"streamlet '{name}': {idle.message}",
                    item.decl.replicas_loc or item.decl.loc,
                    idle.hint,
                    Severity.WARNING,
                )

    def check_copartitioned_tables(self, decl: BlueprintDecl) -> None:
        """``not-copartitioned`` for a streamlet with a co-partitioned table (its message
        names the table and the global table as the other fix); other stateful streamlets
        are checked by :meth:`check_partitions`. Replayed inlets (global tables among them)
        are read whole by every replica: left out.
        """
        for name, item in self.loaded.items():
            states = item.cls.states()
            if not states or not item.cls.tables():
                continue
            inputs: list[tuple[str, str, int]] = []  # (inlet, topic, partitions)
            for inlet in item.cls.inlets():
                if inlet in item.cls.replay_inlets:
                    continue
                ref = PortRef(name, inlet)
                for topic in decl.topics.values():
                    if any(r == ref for r, _ in topic.consumers):
                        inputs.append((inlet, topic.key, topic.partitions or 1))
                        break
            counts = {count for _, _, count in inputs}
            if len(counts) <= 1:
                continue
            listed = ", ".join(
                f"'{topic}' ({count} partition{'' if count == 1 else 's'}, inlet '{inlet}')"
                for inlet, topic, count in inputs
            )
            most = max(counts)
            fewer = " and ".join(f"'{t}'" for _, t, c in inputs if c != most)
            tables = [i for i, _, _ in inputs if i in item.cls.tables()]
            if tables:
                what = (
                    f"it joins with table{'s' if len(tables) > 1 else ''} "
                    f"{', '.join(repr(t) for t in tables)}, kept per input partition, but reads "
                    f"topics with different partition counts: {listed}; a key then arrives on "
                    "differently numbered partitions of the two topics, and a record would "
                    "look its key up in a partition of the table that does not hold it"
                )
                also = (
                    ", or make the table global (Inlet(..., table='global'), or "
                    "streamlets.library:GlobalJoin): every replica then holds all of it"
                )
            else:
                what = (
                    f"it keeps state ({', '.join(states)}) per input partition, but reads "
                    f"topics with different partition counts: {listed}; a key's records then "
                    "arrive on differently numbered partitions, and its state would be split"
                )
                also = ""
            self.add(
                "not-copartitioned",
                f"streamlet '{name}': {what}",
                item.decl.loc,
                f"give every topic it reads the same 'partitions:' (e.g. {most} for {fewer})"
                + also,
            )

    def build(self, decl: BlueprintDecl, graph: nx.DiGraph[Any], data: Any) -> VerifiedBlueprint:
        streamlets: dict[str, StreamletSpec] = {}
        for name, item in self.loaded.items():
            assert item.config is not None and item.config_data is not None
            ports = {**item.cls.inlets(), **item.cls.outlets()}
            port_schemas = {p: port.schema_for(item.config) for p, port in ports.items()}
            streamlets[name] = StreamletSpec(
                name=name,
                class_path=item.decl.class_path or "",
                cls=item.cls,
                config=item.config,
                config_data=freeze(item.config_data),
                replicas=item.decl.replicas,
                on_error=item.decl.on_error or item.cls.on_error,
                processing=item.decl.processing or decl.processing,
                description=item.decl.description,
                port_schemas=freeze(port_schemas),
                resources=item.decl.resources,
                state_storage=item.decl.state_storage,
            )
        topics = {
            key: TopicSpec(
                key=key,
                name=t.name,
                producers=tuple(r for r, _ in t.producers),
                consumers=tuple(r for r, _ in t.consumers),
                codec=t.codec,
                partitions=t.partitions,
                replication_factor=t.replication_factor,
                config=freeze(t.config),
                description=t.description,
            )
            for key, t in decl.topics.items()
        }
        return VerifiedBlueprint(
            name=decl.name,
            path=decl.path,
            directory=decl.directory,
            description=decl.description,
            processing=decl.processing,
            streamlets=freeze(streamlets),
            topics=freeze(topics),
            graph=graph,
            problems=tuple(sorted_problems(self.problems)),
            resources=decl.resources,
            document=data,
        )


def _is_path_type(annotation: Any) -> bool:
    if annotation is Path or (isinstance(annotation, type) and issubclass(annotation, Path)):
        return True
    return any(_is_path_type(arg) for arg in get_args(annotation))


def _resolve_paths(model: type[BaseModel], data: dict[str, Any], directory: str) -> dict[str, Any]:
    """Make relative values of ``Path`` fields relative to the blueprint's directory."""
    resolved = dict(data)
    for name, info in model.model_fields.items():
        key = info.alias or name
        value = resolved.get(key)
        if (
            isinstance(value, str)
            and value
            and not os.path.isabs(value)
            and _is_path_type(info.annotation)
        ):
            resolved[key] = os.path.join(directory, value)
    return resolved


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    """What kind of value ``value`` is, without showing it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _masked(where: Location, secrets: tuple[str, ...]) -> Location:
    """``where`` without secret values in it.

    Only a ``--set`` location holds a value (``--set name.key=value``, with no line); a
    file's location is left alone.
    """
    if where.line > 0:
        return where
    return Location(mask_secrets(where.file, secrets), where.line, where.column)


def _nested_loc(value: Any, path: Sequence[Any], loc: Location) -> Location:
    """Where the part ``path`` of a config value was written, as far as the YAML tells
    (the value's own place when it does not)."""
    for part in path:
        if isinstance(value, LocatedDict) and part in value:
            loc = value.value_loc(part)
            value = value[part]
        elif isinstance(value, LocatedList) and isinstance(part, int) and part < len(value):
            loc = value.item_loc(part)
            value = value[part]
        else:
            break
    return loc


def _is_union_tag(part: object) -> bool:
    """Whether a part of a pydantic error location names a type of a union (such as
    ``dict[str,any]`` or ``function-before[import_string(), ...]``), not a field."""
    return isinstance(part, str) and any(c in part for c in "[(")


def _config_hint(error_type: str, field_path: str) -> str | None:
    if error_type == "missing":
        return f"set '{field_path}' in the streamlet's config (or with --set)"
    return None


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in file order (those without a location last), stable otherwise."""

    def key(p: Problem) -> tuple[int, str, int, int]:
        if p.location is None:
            return (1, "", 0, 0)
        return (0, p.location.file, p.location.line, p.location.column)

    return sorted(problems, key=key)


def verify_source(
    source: BlueprintSource,
    overrides: ConfigOverrides | None = None,
    *,
    loader: ClassLoader = load_streamlet_class,
) -> Verification:
    """Verify a blueprint from its text: every problem, and the model when there is no error.

    ``loader`` resolves each ``module:Class`` (the default imports it, see
    :func:`~blueprint.classes.load_streamlet_class`). Nothing else here reads files; the
    only other user code that runs is the validation of each streamlet's ``Config`` (its
    validators, and any ``module:Class`` it imports itself), with ``source.directory`` on
    ``sys.path`` meanwhile. So a loader that returns classes from a mapping verifies
    without importing anything, and ``sys.path`` is as it was afterwards. Problems are in
    file order; warnings and notes do not make the blueprint invalid.
    """
    verifier = _Verifier(source, overrides or ConfigOverrides(), loader)
    blueprint = verifier.run()
    if blueprint is not None:
        return Verification(blueprint.problems, blueprint, source.display)
    return Verification(tuple(sorted_problems(verifier.problems)), None, source.display)


def verify(
    path: str | os.PathLike[str],
    overrides: ConfigOverrides | None = None,
    *,
    display: str | None = None,
    loader: ClassLoader = load_streamlet_class,
) -> Verification:
    """Read the blueprint file at ``path`` and verify it (see :func:`verify_source`).

    ``display`` (default: ``path``) names the file in problems. Use
    ``verify(path).unwrap()`` where only a valid blueprint will do: it raises
    :class:`~blueprint.result.InvalidBlueprint` listing every problem.
    Raises ``OSError`` when the file cannot be read.
    """
    return verify_source(read_blueprint(path, display=display), overrides, loader=loader)
