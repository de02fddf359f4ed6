"""Port schemas: pydantic models <-> Avro, and :class:`Schema`, the schema of a port.

A port's schema is a pydantic model class (records are model instances) or an Avro
schema given as JSON-able data (records are then what fastavro reads and writes: dicts
for records, plain values otherwise). :meth:`Schema.of` turns either into a
:class:`Schema` holding the full Avro schema, the fastavro-parsed form and two converters
compiled once per schema: :meth:`Schema.to_datum` (record -> value fastavro writes) and
:meth:`Schema.from_datum` (value fastavro read -> validated record).

How a pydantic model becomes Avro (:func:`avro_schema`)
-------------------------------------------------------

Records
    A model is a ``record`` named after its class (sanitised to a valid Avro name: the
    pydantic generic ``Box[int]`` becomes ``Box_int``). ``__avro_namespace__ = "a.b"`` on
    the class sets its namespace; a nested model or Enum without one takes the namespace
    of the top-level model of the schema. ``__avro_aliases__ = ("OldName",)`` lists the
    names the record had before: this is how a renamed model declares that it reads data
    written under its old name (Avro resolution matches records by name or alias). The
    class's own docstring becomes the record's ``doc``. Nested models are defined once and
    referenced by full name afterwards, so recursive models work.

Fields
    The Avro field name is the field's (serialisation) alias when it has one, else the
    attribute name. ``Field(description=...)`` becomes the field's ``doc`` and
    ``Field(json_schema_extra={"avro_aliases": ["old_name"]})`` its Avro aliases (for a
    renamed field). A field with a default -- or a ``default_factory`` without arguments,
    called once -- gets the Avro default, so a reader can read data written before the
    field existed; required fields get none. Reading such old data gives the model's own
    default (a ``default_factory`` runs again).

Types
    ``str`` string, ``int`` long, ``float`` double, ``bool`` boolean, ``bytes`` bytes,
    ``None`` null; ``list[X]``, ``tuple[X, ...]``, ``set[X]``, ``frozenset[X]`` array;
    ``dict[str, X]`` map (other key types have no Avro form); ``X | None`` the union
    ``["null", X]`` when the default is ``None``, else ``[X, "null"]`` (Avro requires a
    union's default to match its first branch); other unions are flattened into one Avro
    union, with the branch that matches the default first. A union may hold each Avro type
    once (two arrays, two maps, ``int | datetime`` -- both ``long`` -- are rejected; wrap
    the alternatives in models instead).

    An ``Enum`` becomes an Avro ``enum`` named after the class. Its symbols are the
    members' **values** when every value is a string that is a valid Avro name (the usual
    ``class Color(str, Enum): red = "red"``), so the Avro symbols match the JSON form;
    otherwise (``IntEnum``, values like ``"dark-red"``) the symbols are the member
    **names**. Changing one value to a non-name therefore switches the whole enum to names,
    which old readers will not understand. ``Literal["a", "b"]`` becomes an enum named
    ``<Record>_<field>``; a ``Literal`` of strings that are not Avro names is a string,
    of ints a long, of bools a boolean.

    ``datetime`` is ``long``/``timestamp-micros``: a naive datetime is taken as UTC when
    written and every datetime is read back timezone-aware in UTC (the same instant).
    ``date`` is ``int``/``date``; ``time`` is ``long``/``time-micros`` (its tzinfo is
    dropped); ``UUID`` is ``string``/``uuid``; ``Decimal`` is ``bytes``/``decimal`` whose
    precision and scale come from ``Field(max_digits=..., decimal_places=...)``, which are
    therefore required. ``Any``, ``object`` and other classes have no Avro form and raise
    :class:`~streamlets.errors.SchemaError` naming the model and field.

Reading
    :meth:`Schema.from_datum` validates with ``model_validate`` in lax mode (even for
    strict models), because Avro's forms of enums, tuples and sets are not the Python
    ones; the data was already checked against the schema when it was written.

Modules
-------

``derive``
    pydantic model -> Avro schema: the type mapping above, defaults and converters.
``converters``
    the per-record converters between records and fastavro datums, built per schema.
``avro``
    Avro schemas as JSON data: names, emission of derived types, structure checks.
``port_schema``
    :class:`Schema` and its caches.
"""

from __future__ import annotations

from streamlets.schema.avro import AvroSchema
from streamlets.schema.derive import avro_schema
from streamlets.schema.port_schema import Schema, describe_validation_error

__all__ = [
    "AvroSchema",
    "Schema",
    "avro_schema",
    "describe_validation_error",
]
