"""Console sink: prints each record as one line of JSON."""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import Field

from streamlets.library._schema_config import RecordSchemaConfig
from streamlets.library.files import _json_line
from streamlets.ports import FromConfig, Inlet
from streamlets.streamlet import Streamlet

__all__ = ["ConsoleSink"]


class ConsoleSinkConfig(RecordSchemaConfig):
    """Config of :class:`ConsoleSink`."""

    prefix: str = Field("", description="text printed before each record")
    stream: Literal["stdout", "stderr"] = Field("stdout", description="where to print")


class ConsoleSink(Streamlet):
    """Prints every record it receives as one line of JSON (for demos and debugging).

    Config: ``schema`` (the record type ``module:Class`` or an Avro schema), ``prefix``
    and ``stream`` (``stdout`` or ``stderr``).
    """

    records = Inlet(FromConfig("record_schema"), description="the records to print")
    Config = ConsoleSinkConfig
    config: ConsoleSinkConfig

    def _stream(self) -> Any:
        return sys.stdout if self.config.stream == "stdout" else sys.stderr

    def process(self, record: Any) -> None:
        """Print one record."""
        self._stream().write(self.config.prefix + _json_line(record))

    def flush(self) -> None:
        """Flush the stream: what was printed is out before its records are committed."""
        self._stream().flush()
