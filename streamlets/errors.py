"""The exception hierarchy: every error raised by streamlets derives from StreamletsError."""

from __future__ import annotations

__all__ = [
    "CodecError",
    "ConfigError",
    "SchemaError",
    "StreamletDefinitionError",
    "StreamletsError",
]


class StreamletsError(Exception):
    """Root of every exception that streamlets raises on purpose."""


class SchemaError(StreamletsError):
    """A port schema is invalid or a Python type has no Avro form."""


class CodecError(StreamletsError):
    """A record could not be encoded to or decoded from a topic's wire format."""


class ConfigError(StreamletsError):
    """A streamlet's configuration does not validate against its ``Config`` model."""


class StreamletDefinitionError(StreamletsError):
    """A Streamlet subclass is defined in a way the runtime cannot execute."""
