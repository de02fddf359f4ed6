"""The exception hierarchy: every error raised by streamlets derives from StreamletsError.

::

    StreamletsError                 raised on purpose by streamlets (never a bug)
    ├── SchemaError                 a port schema is invalid, or a type has no Avro form
    ├── CodecError                  a record could not cross a topic's wire format
    │   ├── DecodeError             the bytes are no record of the writer's schema
    │   ├── RecordValidationError   decoded, but the record does not fit the reader's schema
    │   └── EncodeError             a record could not be written in the topic's format
    ├── ConfigError                 a streamlet's config does not validate
    └── StreamletDefinitionError    a Streamlet subclass the runtime cannot execute

Callers tell failures apart by type, never by message text: a runner dead-letters a
:class:`DecodeError` with the stage ``decode`` and a :class:`RecordValidationError` with
the stage ``validate``. Catching :class:`CodecError` still catches all three. Packages
built on this one (``streamlets.serving``, the runner) add their own subclasses of
:class:`StreamletsError` next to the code that raises them.
"""

from __future__ import annotations

__all__ = [
    "CodecError",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "RecordValidationError",
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


class DecodeError(CodecError):
    """The bytes are not a record of the writer's schema.

    Not JSON, not Avro of the writer's schema, truncated, or with bytes left over; for
    Avro also a record that cannot be resolved to the reader's schema.
    """


class RecordValidationError(CodecError):
    """The bytes decoded, but the record does not fit the reader's model or schema."""


class EncodeError(CodecError):
    """A record could not be encoded: it does not fit the writer's schema or has no form."""


class ConfigError(StreamletsError):
    """A streamlet's configuration does not validate against its ``Config`` model."""


class StreamletDefinitionError(StreamletsError):
    """A Streamlet subclass is defined in a way the runtime cannot execute."""
