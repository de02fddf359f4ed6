"""The wire format around a record's bytes: the schema header and the writer's fingerprint."""

from __future__ import annotations

from streamlets.codecs import SCHEMA_HEADER, schema_fingerprint
from streamlets.schema import Schema


def test_the_header_name_and_a_fingerprint_are_what_running_consumers_expect() -> None:
    # Records already on topics carry these: changing either breaks reading them.
    assert SCHEMA_HEADER == "streamlets.schema"
    assert schema_fingerprint(Schema.of("long")) == "b71df49344e154d0"


def test_the_fingerprint_is_of_the_parsing_canonical_form() -> None:
    written = Schema.of(
        {
            "type": "record",
            "name": "R",
            "namespace": "app",
            "doc": "docs, defaults and attribute order are not part of the canonical form",
            "fields": [{"name": "a", "type": "long", "default": 1}],
        }
    )
    same = Schema.of({"fields": [{"type": "long", "name": "a"}], "name": "app.R", "type": "record"})
    other = Schema.of({"type": "record", "name": "app.R", "fields": [{"name": "a", "type": "int"}]})
    assert schema_fingerprint(written) == schema_fingerprint(same) != schema_fingerprint(other)
    assert len(schema_fingerprint(written)) == 16  # 64 bits, hex
