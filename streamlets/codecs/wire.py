"""What travels with a record's bytes: the schema header and the writer schema's fingerprint."""

from __future__ import annotations

import fastavro.schema

from streamlets.schema import Schema

__all__ = ["SCHEMA_HEADER", "schema_fingerprint"]

#: Header naming the fingerprint of the Avro schema a record was written with, so that a
#: consumer can resolve records of several producers (with different, compatible schemas).
SCHEMA_HEADER = "streamlets.schema"

_FINGERPRINTS: dict[int, str] = {}


def schema_fingerprint(schema: Schema) -> str:
    """The CRC-64-AVRO fingerprint (hex) of the schema's parsing canonical form."""
    key = id(schema)
    found = _FINGERPRINTS.get(key)
    if found is None:
        canonical = fastavro.schema.to_parsing_canonical_form(schema.parsed)
        found = fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")
        _FINGERPRINTS[key] = found
    return found
