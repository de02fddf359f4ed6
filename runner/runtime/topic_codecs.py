"""Which codec a topic's records cross with: the blueprint's ``codec:``, with the schema
registry when there is one.

With a ``schema_registry:`` section every ``avro`` topic is written and read in the
Confluent wire format (``avro-confluent``) through that registry. A topic that says
``codec: avro-confluent`` needs a registry: on Kafka the section's; the in-process runner,
whose streamlets share one process, uses an in-process registry of its own per run when
the config gives none (the bytes are the same format as on Kafka).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

from blueprint import TopicSpec
from runner.runtime.fused import fusing
from runner.runtime.registry import RegistryConfig, SchemaRegistryAdapter
from streamlets.codecs import Codec, codec_for

__all__ = ["TopicCodecs"]

_runs = itertools.count(1)


class TopicCodecs:
    """The codec factory of each topic (an ``Executor``'s ``codecs``)."""

    def __init__(self, registry: RegistryConfig | None, *, local: bool = False) -> None:
        #: Configured: every Avro topic goes through the registry.
        self.all_avro = registry is not None
        if registry is None and local:
            registry = RegistryConfig({"url": f"mock://streamlets-{os.getpid()}-{next(_runs)}"})
        self.registry = registry
        self._adapter: SchemaRegistryAdapter | None = None
        #: Keys of the topics whose records cross as objects (``flow run-local --fuse``;
        #: see :mod:`runner.runtime.fused`).
        self.fused: set[str] = set()

    def codec_name(self, topic: TopicSpec) -> str:
        """The codec ``topic`` uses."""
        if topic.codec == "avro" and self.all_avro:
            return "avro-confluent"
        return topic.codec

    def __call__(self, topic: TopicSpec) -> Callable[..., Codec]:
        """The codec factory of ``topic``: ``(name, writer, reader) -> Codec``."""
        name = self.codec_name(topic)
        if topic.key in self.fused:
            return fusing(codec_for)
        if name != "avro-confluent":
            return codec_for
        if self._adapter is None and self.registry is not None:
            self._adapter = SchemaRegistryAdapter(self.registry)
        registry = self._adapter

        def make(_: str, writer: Any, reader: Any = None) -> Codec:
            return codec_for(name, writer, reader, topic=topic.name, registry=registry)

        return make
