"""The verified blueprint: a frozen model that runners consume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx
from pydantic import BaseModel

from blueprint.declarations import PortRef
from blueprint.problems import Problem
from blueprint.resources import ResourceSpec
from streamlets.schema import Schema
from streamlets.streamlet import Streamlet

__all__ = ["PortRef", "ResourceSpec", "StreamletSpec", "TopicSpec", "VerifiedBlueprint"]


@dataclass(frozen=True, slots=True)
class StreamletSpec:
    """One streamlet of a verified blueprint: its class, validated config and settings.

    ``resources`` is the streamlet's own ``resources:`` (``None`` when it has none); the
    application's default is :attr:`VerifiedBlueprint.resources`. Only deployment uses them
    and ``state_storage``.
    """

    name: str
    class_path: str
    cls: type[Streamlet]
    config: BaseModel
    config_data: Mapping[str, Any]
    replicas: int
    on_error: str
    processing: str
    description: str = ""
    port_schemas: Mapping[str, Schema] = field(default_factory=dict)
    resources: ResourceSpec | None = None
    #: ``state: {storage: ...}``: the size of the state volume on Kubernetes (``None``:
    #: an ``emptyDir``). Only deployment uses it.
    state_storage: str | None = None

    @property
    def stateful(self) -> bool:
        """Whether the streamlet keeps state (declares a :class:`~streamlets.State`)."""
        return bool(self.cls.states())

    def schema(self, port: str) -> Schema:
        """The schema of one of the streamlet's ports (resolved against its config)."""
        found = self.port_schemas.get(port)
        if found is not None:
            return found
        ports = {**self.cls.inlets(), **self.cls.outlets()}
        return ports[port].schema_for(self.config)

    def create(self) -> Streamlet:
        """A new instance of the streamlet with its validated config."""
        return self.cls(self.config, name=self.name)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of a verified blueprint."""

    key: str
    name: str
    producers: tuple[PortRef, ...]
    consumers: tuple[PortRef, ...]
    codec: str
    partitions: int | None
    replication_factor: int | None
    config: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class VerifiedBlueprint:
    """A blueprint that passed verification: every class loaded, every port connected.

    ``problems`` holds the warnings and notes verification found (never errors).
    ``graph`` is a directed bipartite graph: streamlet nodes ``("streamlet", name)`` and
    topic nodes ``("topic", key)``, with an edge per producer (streamlet -> topic, attribute
    ``port``) and per consumer (topic -> streamlet, attribute ``port``).
    ``resources`` is the application's default container resources, for the streamlets
    without their own (``None`` when the blueprint sets none). ``document`` is the file as
    verify read it: its YAML data, mappings and lists as loaded (``flow deploy`` puts it in
    the ConfigMap).
    """

    name: str
    path: str
    directory: str
    description: str
    processing: str
    streamlets: Mapping[str, StreamletSpec]
    topics: Mapping[str, TopicSpec]
    graph: nx.DiGraph[Any]
    problems: tuple[Problem, ...] = ()
    resources: ResourceSpec | None = None
    document: Mapping[str, Any] = field(default_factory=dict)

    def inlet_topic(self, streamlet: str, inlet: str) -> TopicSpec | None:
        """The topic that feeds ``streamlet.inlet`` (``None`` if none)."""
        ref = PortRef(streamlet, inlet)
        for topic in self.topics.values():
            if ref in topic.consumers:
                return topic
        return None

    def input_partitions(self, streamlet: str) -> int:
        """The partition count of ``streamlet``'s input topics: the most of any shared
        inlet (verify checks that a stateful streamlet's are the same), 1 without any."""
        spec = self.streamlets[streamlet]
        counts = [
            topic.partitions or 1
            for inlet in spec.cls.inlets()
            if inlet not in spec.cls.replay_inlets
            and (topic := self.inlet_topic(streamlet, inlet)) is not None
        ]
        return max(counts, default=1)

    def outlet_topics(self, streamlet: str, outlet: str) -> tuple[TopicSpec, ...]:
        """The topics that ``streamlet.outlet`` writes to."""
        ref = PortRef(streamlet, outlet)
        return tuple(t for t in self.topics.values() if ref in t.producers)


def freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of ``mapping``."""
    return MappingProxyType(dict(mapping))
