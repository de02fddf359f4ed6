"""PostgreSQL sink: inserts (or upserts) each batch of records in one transaction.

Needs psycopg 3: ``pip install 'streamlets[postgres]'``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from streamlets.errors import ConfigError
from streamlets.library._postgres_columns import columns_of
from streamlets.library.sinks import BatchSink, BatchSinkConfig, Failure, SinkRecordError

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.sql import Composed

__all__ = ["PostgresSink", "PostgresSinkConfig"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class PostgresSinkConfig(BatchSinkConfig):
    """Config of :class:`PostgresSink`."""

    dsn: SecretStr = Field(
        description="connection string, 'postgresql://user:password@host:5432/db' or "
        "'host=... dbname=...' (secret: deploy puts it in the Secret)"
    )
    table: str = Field(description="table to write, optionally schema-qualified: 'schema.table'")
    mode: Literal["insert", "upsert"] = Field(
        "insert",
        description="insert every record (at-least-once: a restart may insert records again), "
        "or upsert on the key columns (a record written again replaces itself: effectively-"
        "once)",
    )
    key: list[str] = Field(
        default_factory=list,
        description="the key column(s) for upsert (a primary key or unique constraint)",
    )
    create_table: bool = Field(
        False,
        description="create the table from the record schema when it does not exist (with "
        "the key columns as primary key)",
    )
    connect_timeout_s: int = Field(10, ge=1, description="seconds to wait for a connection")

    @field_validator("key", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) > 2 or not all(_NAME.match(part) for part in parts):
            raise ValueError(
                f"{value!r} is not a table name; use letters, digits and _ (at most 63), "
                "optionally 'schema.table'"
            )
        return value

    @model_validator(mode="after")
    def _upsert_needs_key(self) -> PostgresSinkConfig:
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode: upsert needs key: the column(s) that identify a row")
        return self


class PostgresSink(BatchSink):
    """Writes every record it receives to a PostgreSQL table, a batch per transaction.

    One column per field of the record, named as the field. ``mode: insert`` adds a row
    per record; ``mode: upsert`` with ``key`` inserts or replaces the row with the
    record's key (``INSERT ... ON CONFLICT (key) DO UPDATE``), so the records a restart
    delivers again leave the table as it was: effectively-once. ``create_table: true``
    creates the table when it is missing: ``boolean``, ``integer``, ``bigint``, ``real``,
    ``double precision``, ``text``, ``bytea``, ``timestamp with time zone``, ``date``,
    ``time``, ``uuid`` and ``numeric(p, s)`` for the Avro types and logical types they
    stand for, ``text`` for enums, ``jsonb`` for nested records, arrays, maps and unions
    of several types; ``NOT NULL`` unless the field is optional.

    Failures (see :mod:`streamlets.library.sinks`): a database that cannot be reached (down,
    restarting, the connection lost) is waited for; a deadlock or serialization failure is
    retried; a constraint violation or a value the column refuses isolates the record at
    fault, which goes to the error policy with PostgreSQL's message.
    """

    Config = PostgresSinkConfig
    config: PostgresSinkConfig

    _connection: AsyncConnection[Any] | None = None

    def setup(self) -> None:
        """Work out the columns and statements (the connection is made on first use)."""
        try:
            from psycopg import sql  # noqa: PLC0415 - an optional extra, needed here only
        except ImportError as exc:
            raise ConfigError(
                "PostgresSink needs psycopg 3: pip install 'streamlets[postgres]'"
            ) from exc
        config = self.config
        self._columns = columns_of(self.port_schema("records").avro)
        names = [c.name for c in self._columns]
        missing = [k for k in config.key if k not in names]
        if missing:
            raise ConfigError(
                f"{self.name}: key names {', '.join(map(repr, missing))}, which is no field "
                f"of the record; its fields: {', '.join(names)}"
            )
        self._table = sql.Identifier(*config.table.split("."))
        self._insert = self._insert_statement()
        self._create = self._create_statement()

    def _insert_statement(self) -> Composed:
        from psycopg import sql  # noqa: PLC0415

        columns = [sql.Identifier(c.name) for c in self._columns]
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self._table,
            sql.SQL(", ").join(columns),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        if self.config.mode == "upsert":
            keys = self.config.key
            updates = [
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c.name))
                for c in self._columns
                if c.name not in keys
            ]
            conflict = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
            statement += sql.SQL(" ON CONFLICT ({}) DO ").format(conflict)
            statement += (
                sql.SQL("UPDATE SET ") + sql.SQL(", ").join(updates)
                if updates
                else sql.SQL("NOTHING")
            )
        return statement

    def _create_statement(self) -> Composed:
        from psycopg import sql  # noqa: PLC0415

        parts = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(c.name),
                sql.SQL(c.sql_type),
                sql.SQL("" if c.nullable else " NOT NULL"),
            )
            for c in self._columns
        ]
        if self.config.key:
            parts.append(
                sql.SQL("PRIMARY KEY ({})").format(
                    sql.SQL(", ").join(sql.Identifier(k) for k in self.config.key)
                )
            )
        return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            self._table, sql.SQL(", ").join(parts)
        )

    def destination(self) -> str:
        """The table, as log lines name it (the connection string is secret)."""
        return f"PostgreSQL table {self.config.table}"

    async def _connect(self) -> AsyncConnection[Any]:
        import psycopg  # noqa: PLC0415

        connection = self._connection
        if connection is not None and not connection.closed and not connection.broken:
            return connection
        self._connection = None
        connection = await psycopg.AsyncConnection.connect(
            self.config.dsn.get_secret_value(),
            autocommit=True,
            connect_timeout=self.config.connect_timeout_s,
            application_name=f"streamlets {self.name}"[:63],
        )
        if self.config.create_table:
            await connection.execute(self._create)
        self._connection = connection
        return connection

    def _row(self, record: Any, to_datum: Any) -> list[Any]:
        datum = to_datum(record)
        try:
            return [c.convert(datum.get(c.name)) for c in self._columns]
        except (TypeError, ValueError, AttributeError) as exc:
            raise SinkRecordError(f"cannot write the record to {self.config.table}: {exc}") from exc

    async def write_batch(self, records: Sequence[Any]) -> None:
        """Insert (or upsert) ``records`` in one transaction."""
        to_datum = self.port_schema("records").to_datum
        rows = [self._row(record, to_datum) for record in records]
        connection = await self._connect()
        async with connection.transaction(), connection.cursor() as cursor:
            await cursor.executemany(self._insert, rows)

    def classify(self, error: Exception) -> Failure:
        """Constraint violations and refused values are the record's fault; a lost or
        refused connection means the database is unavailable; other errors are retried."""
        import psycopg  # noqa: PLC0415

        if isinstance(error, psycopg.IntegrityError | psycopg.DataError | SinkRecordError):
            return "reject"
        connection = self._connection
        if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) and (
            connection is None or connection.closed or connection.broken
        ):
            return "unavailable"
        return super().classify(error)

    async def teardown(self) -> None:
        """Close the connection."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
