"""File source and sink: JSON Lines, CSV and Avro container files."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import fastavro
from fastavro.write import Writer
from pydantic import BaseModel, Field

from streamlets.errors import ConfigError, SchemaError
from streamlets.library._schema_config import RecordSchemaConfig
from streamlets.paths import OutputPath
from streamlets.ports import FromConfig, Inlet, Outlet
from streamlets.rejected import Rejected
from streamlets.schema import Schema
from streamlets.schema.converters import keeps_model_validate
from streamlets.state import State
from streamlets.streamlet import Streamlet

__all__ = ["FileFormat", "FileSink", "FileSource", "file_format"]

FileFormat = Literal["jsonl", "csv", "avro"]
log = logging.getLogger("streamlets.library.files")

_FLUSH_EVERY_S = 0.5
_SUFFIXES: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".avro": "avro",
}


def file_format(path: Path, given: FileFormat | None) -> FileFormat:
    """The format of ``path``: ``given``, else from the file name's suffix."""
    if given is not None:
        return given
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise ConfigError(
            f"cannot tell the format of {path} from its suffix (known: {known}); "
            "set 'format' to jsonl, csv or avro"
        )
    return found


class FileSourceConfig(RecordSchemaConfig):
    """Config of :class:`FileSource`."""

    path: Path = Field(description="file to read; relative paths are relative to the blueprint")
    format: FileFormat | None = Field(
        None, description="jsonl, csv or avro; default: from the file name's suffix"
    )


class FileSource(Streamlet):
    """Reads the records of a JSON Lines, CSV or Avro container file (a bounded source).

    Each line (row, Avro record) is checked against the outlet's schema; one that does not
    fit goes to the error policy with its original text and ``file:line``, and the rest of
    the file is read on. Config: ``path``, ``format`` (default: from the suffix) and
    ``schema`` (the record type ``module:Class`` or an Avro schema), unless a subclass
    declares ``out = Outlet(MyRecord)``.

    Its position (how many lines, rows or records of the file it has read) is kept as
    state: a restarted source (on Kafka, or under ``flow run-local --state-dir``) goes on
    after the last record that was delivered instead of reading the file again. A position
    kept for another file (``path`` changed) is not used.
    """

    out = Outlet(FromConfig("record_schema"), description="the records of the file")
    Config = FileSourceConfig
    config: FileSourceConfig
    file = State(str, default="", description="the file the position is of")
    position = State(int, default=0, description="lines (rows, records) of the file read")

    def is_bounded(self) -> bool:
        """A file ends: yes."""
        return True

    def generate(self) -> Iterator[Any]:
        """Yield the file's records (and :class:`Rejected` for lines that do not fit),
        from the kept position on."""
        schema = self.port_schema("out")
        path = self.config.path
        fmt = file_format(path, self.config.format)
        start = 0
        if self.file.get() == str(path):
            start = self.position.get()
            if start:
                log.info(
                    "%s: going on after the %d line(s) (rows, records) read before", path, start
                )
        else:
            self.file.set(str(path))
            self.position.set(0)
        if fmt == "avro":
            yield from self._avro(path, schema, start)
            return
        with path.open(encoding="utf-8", newline="") as fh:
            if fmt == "jsonl":
                yield from self._jsonl(fh, path, schema, start)
            else:
                yield from self._csv(fh, path, schema, start)

    def _jsonl(self, fh: IO[str], path: Path, schema: Schema, start: int) -> Iterator[Any]:
        position = self.position
        # A model's lines are parsed and validated in one step by pydantic-core (a third of
        # the cost). A line that does not pass goes the long way, json.loads and then the
        # model, which says why as it always has. The one step is JSON's own validation,
        # so it takes a little more: an ISO string for a strict datetime field, say.
        fast = _json_validator(schema)
        for number, line in enumerate(fh, start=1):
            if number <= start or not line.strip():
                continue
            position.set(number)  # where this record leaves the file: kept with it
            if fast is not None:
                try:
                    record = fast(line)
                except ValueError:
                    pass
                else:
                    yield record
                    continue
            try:
                yield schema.validate(json.loads(line))
            except (ValueError, SchemaError) as exc:
                yield Rejected(line.rstrip("\n").encode(), exc, f"{path}:{number}")

    def _csv(self, fh: IO[str], path: Path, schema: Schema, start: int) -> Iterator[Any]:
        reader = csv.DictReader(fh)
        convert = _csv_converter(schema)
        position = self.position
        for number, row in enumerate(reader, start=1):
            if number <= start:
                continue
            position.set(number)
            where = f"{path}:{reader.line_num}"
            try:
                yield schema.validate(convert(row))
            except (ValueError, SchemaError) as exc:
                yield Rejected(",".join(row.values() if row else ()).encode(), exc, where)

    def _avro(self, path: Path, schema: Schema, start: int) -> Iterator[Any]:
        position = self.position
        with path.open("rb") as fh:
            reader = fastavro.reader(fh, reader_schema=schema.parsed)
            for number, datum in enumerate(reader, start=1):
                if number <= start:
                    continue
                position.set(number)
                try:
                    yield schema.from_datum(datum)
                except (ValueError, SchemaError) as exc:
                    yield Rejected(json.dumps(datum, default=str).encode(), exc, f"{path}#{number}")


def _json_validator(schema: Schema) -> Callable[[str], Any] | None:
    """pydantic-core's JSON validation of ``schema``'s model (lax, as ``Schema.validate``
    is), or ``None`` for an Avro schema or a model that overrides ``model_validate``."""
    model = schema.model
    if model is None:
        return None
    if not keeps_model_validate(model):
        return None
    validate_json: Callable[[str], Any] = model.__pydantic_validator__.validate_json
    return validate_json


def _csv_converter(schema: Schema) -> Any:
    """CSV cells are text: a pydantic model converts them itself; an Avro record needs help."""
    if schema.model is not None:
        return lambda row: {k: (None if v == "" else v) for k, v in row.items()}
    avro = schema.avro
    if not isinstance(avro, dict) or avro.get("type") != "record":
        raise SchemaError("a CSV file holds records: its schema must be an Avro record")
    kinds: dict[str, str] = {}
    for field in avro["fields"]:
        ftype = field["type"]
        if isinstance(ftype, list):
            ftype = next((t for t in ftype if t != "null"), "null")
        if isinstance(ftype, dict):
            ftype = ftype.get("type")
        kinds[field["name"]] = str(ftype)

    def cell(kind: str, value: str) -> Any:
        if value == "":
            return None
        if kind in ("int", "long"):
            return int(value)
        if kind in ("float", "double"):
            return float(value)
        if kind == "boolean":
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(f"{value!r} is not a boolean (true/false)")
            return lowered in ("true", "1")
        return value

    def convert(row: dict[str, str]) -> dict[str, Any]:
        return {k: cell(kinds.get(k, "string"), v) for k, v in row.items()}

    return convert


class FileSinkConfig(RecordSchemaConfig):
    """Config of :class:`FileSink`."""

    path: OutputPath = Field(
        description="file to write; relative paths are relative to the blueprint"
    )
    format: FileFormat | None = Field(
        None, description="jsonl, csv or avro; default: from the file name's suffix"
    )
    mode: Literal["overwrite", "append"] = Field(
        "overwrite",
        description="overwrite the file at start (default) or append to it; runners that "
        "restart processes (Kafka, Kubernetes) need append",
    )


class FileSink(Streamlet):
    """Writes every record it receives to a JSON Lines, CSV or Avro container file.

    The file is flushed to the operating system at least twice a second, and flushed and
    fsync-ed before the runner commits the records written (Kafka) and at the end of the
    run. Run it with one replica: replicas would write the same file. Config: ``path``,
    ``format`` (default: from the suffix), ``mode`` (``overwrite`` or ``append``) and
    ``schema`` (the record type), unless a subclass declares ``records = Inlet(MyRecord)``.

    ``mode: append`` survives restarts: a record torn by a crash at the end of the file is
    cut off when it is opened again, and the records after the last commit are written
    again (at-least-once: duplicates, no losses). ``mode: overwrite`` empties the file when
    the run starts; a process that ``flow run-local --kafka`` restarts appends instead
    (:attr:`resuming`). A process of ``flow run-streamlet`` cannot know whether it is a
    restart, so there (and in ``flow deploy``) overwrite is refused (:meth:`restart_problem`).
    """

    records = Inlet(FromConfig("record_schema"), description="the records to write")
    Config = FileSinkConfig
    config: FileSinkConfig

    def setup(self) -> None:
        """Open the file (creating its directory)."""
        self._schema = self.port_schema("records")
        self._json_line = _json_writer(self._schema)
        path = self.config.path
        self._format = file_format(path, self.config.format)
        path.parent.mkdir(parents=True, exist_ok=True)
        append = (self.config.mode == "append" or self.resuming) and (
            path.exists() and path.stat().st_size > 0
        )
        if append:
            _cut_torn_tail(path, self._format, self._schema.parsed)
        self._flushed = time.monotonic()
        self._csv: csv.DictWriter[str] | None = None
        self._avro: Any = None
        if self._format == "avro":
            self._file: IO[Any] = path.open("a+b" if append else "wb")
            self._avro = Writer(self._file, self._schema.parsed)
        else:
            self._file = path.open("a" if append else "w", encoding="utf-8", newline="")
            self._csv_header_written = append

    def process(self, record: Any) -> None:
        """Write one record."""
        if self._format == "jsonl":
            self._file.write(self._json_line(record))
        elif self._format == "csv":
            row = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
            if self._csv is None:
                self._csv = csv.DictWriter(self._file, fieldnames=list(row))
                if not self._csv_header_written:
                    self._csv.writeheader()
            self._csv.writerow({k: _csv_cell(v) for k, v in row.items()})
        else:
            self._avro.write(self._schema.to_datum(record))
        now = time.monotonic()
        if now - self._flushed >= _FLUSH_EVERY_S:
            self._flush_buffers()
            self._flushed = now

    def _flush_buffers(self) -> None:
        if self._avro is not None:
            self._avro.flush()
        self._file.flush()

    def flush(self) -> None:
        """Make every record written so far durable: flush and fsync (the runner calls it
        before it commits those records' offsets)."""
        self._flush_buffers()
        os.fsync(self._file.fileno())

    def restart_problem(self) -> str | None:
        """``mode: overwrite`` would truncate the file each time the process restarts."""
        if self.config.mode == "overwrite":
            return (
                f"it writes {self.config.path} with mode: overwrite, which empties the file "
                "each time the process starts, so a restarted process would destroy what "
                "it wrote; set mode: append (a restart then writes the records after the "
                "last commit again: duplicates, never losses)"
            )
        return None

    def teardown(self) -> None:
        """Flush and close the file."""
        file = getattr(self, "_file", None)
        if file is not None:
            self._flush_buffers()
            file.close()


def _cut_torn_tail(path: Path, fmt: str, schema: Any) -> None:
    """Cut off what a crash left half-written at the end of ``path``: the bytes after the
    last newline of a JSON Lines or CSV file, or after the last whole block of an Avro
    container file."""
    with path.open("r+b") as fh:
        if fmt == "avro":
            end = _end_of_last_avro_block(fh)
        else:
            data = fh.read()
            end = data.rfind(b"\n") + 1
        fh.seek(0, os.SEEK_END)
        if end < fh.tell():
            log.warning("%s: cut %d byte(s) a crash left half-written", path, fh.tell() - end)
            fh.truncate(end)


def _end_of_last_avro_block(fh: IO[bytes]) -> int:
    """Where the last block of an Avro container file that reads whole ends."""
    try:
        blocks = fastavro.block_reader(fh)
    except Exception:  # not even a header: nothing to keep
        return 0
    end = fh.tell()
    try:
        for _ in blocks:
            end = fh.tell()
    except Exception:  # a torn block: keep what came before it
        pass
    return end


def _json_writer(schema: Schema) -> Callable[[Any], str]:
    """The JSON line of a record of ``schema``: for a model that keeps pydantic's own
    ``model_dump_json``, its serializer called directly (what ``model_dump_json(by_alias=
    True)`` does, without its keyword handling: half the time); else :func:`_json_line`."""
    model = schema.model
    if model is None or model.model_dump_json is not BaseModel.model_dump_json:
        return _json_line
    to_json = model.__pydantic_serializer__.to_json

    def line(record: Any) -> str:
        if record.__class__ is not model:
            return _json_line(record)
        return to_json(record, by_alias=True).decode() + "\n"

    return line


def _json_line(record: Any) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json(by_alias=True) + "\n"
    return json.dumps(record, default=_json_default, ensure_ascii=False) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        buf = io.StringIO()
        json.dump(value, buf, default=str)
        return buf.getvalue()
    return value
