"""The config parameter that names a library streamlet's record type."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ImportString

__all__ = ["RecordSchemaConfig", "SchemaValue"]

#: A pydantic model named ``module:Class`` (resolved next to the blueprint first) or an
#: Avro schema given inline as a mapping.
SchemaValue = ImportString[type[BaseModel]] | dict[str, Any] | None


class RecordSchemaConfig(BaseModel):
    """Config of a streamlet whose port schema comes from the ``schema`` parameter.

    ``schema`` is a pydantic model (``module:Class``) or an Avro schema (a mapping). A
    subclass that declares its port with a fixed schema does not need it.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    record_schema: SchemaValue = Field(
        None,
        alias="schema",
        description="record type: a pydantic model 'module:Class' or an Avro schema mapping",
    )
