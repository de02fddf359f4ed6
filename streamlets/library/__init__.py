"""Built-in streamlets: file source and sink, console sink, generator source, HTTP ingress,
windowed aggregation, stream-table joins, the batch sink base class, the PostgreSQL sink and
the HTTP sink.

Use them from a blueprint by class path, e.g. ``class: streamlets.library:FileSource``, and
name their record type with the ``schema`` config parameter (``module:Class`` or an Avro
schema), or subclass them with a fixed port schema.
"""

from __future__ import annotations

from streamlets.library.console import ConsoleSink
from streamlets.library.files import FileSink, FileSource
from streamlets.library.generator import Counter, GeneratorSource
from streamlets.library.http import HttpIngress
from streamlets.library.http_sink import HttpSink
from streamlets.library.join import GlobalJoin, Join
from streamlets.library.postgres import PostgresSink
from streamlets.library.sinks import BatchSink
from streamlets.library.window_aggregate import WindowAggregate

__all__ = [
    "BatchSink",
    "ConsoleSink",
    "Counter",
    "FileSink",
    "FileSource",
    "GeneratorSource",
    "GlobalJoin",
    "HttpIngress",
    "HttpSink",
    "Join",
    "PostgresSink",
    "WindowAggregate",
]
