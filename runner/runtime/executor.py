"""The streamlet execution core shared by every runner: decode -> process -> encode -> error policy.

A runner moves :class:`Message` values between topics (in-memory channels locally, Kafka
otherwise) and hands each batch of messages of one inlet to :meth:`Executor.process_batch`;
sources call :meth:`Executor.encode_outputs` on what ``generate()`` yields. The executor
never does I/O itself: outputs and dead letters come back as values, so only the transport
differs between runners.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from blueprint import StreamletSpec, TopicSpec, VerifiedBlueprint
from runner.runtime.errors import StreamletFailed, UnexpectedTombstone
from runner.runtime.fused import materialized
from runner.runtime.limits import NO_LIMIT, RecordLimit, RecordTooLarge
from runner.runtime.messages import DeadLetter, Emitted, Message
from runner.runtime.state import MemoryStore, StateManager
from runner.runtime.stats import StreamletStats
from runner.runtime.tables import Table, bind_tables, spec_states
from runner.runtime.windowing import LateRecord, WindowResult, WindowRuntime
from streamlets.codecs import SCHEMA_HEADER, Codec, codec_for, schema_fingerprint
from streamlets.codecs.passthrough import PassthroughGate, UnchangedCheck, unchanged_check
from streamlets.errors import CodecError, RecordValidationError, StreamletsError
from streamlets.meta import Meta, to_epoch_ms
from streamlets.ports import KEEP, TOMBSTONE, Outlet, Routed
from streamlets.rejected import Rejected
from streamlets.schema import Schema
from streamlets.state import RecordScope, StateError
from streamlets.streamlet import Streamlet

__all__ = ["Executor"]

log = logging.getLogger("streamlets.runner")

#: How many ``async def process`` calls of one streamlet instance run at once by default.
DEFAULT_CONCURRENCY = 16
#: Failed records an executor keeps for a live view (see ``Executor.recent_errors``).
RECENT_ERRORS = 10


class _SourceInputError(StreamletsError):
    """A source's input could not be read as a record (carries the original error's class)."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.__cause__ = cause


class _Decoder:
    """Decodes the messages of one inlet (``where``: ``streamlet.inlet``); picks the writer
    schema by the schema header (``avro-confluent`` records name theirs by registry id:
    ``codec`` builds their codec)."""

    def __init__(
        self,
        codec_name: str,
        reader: Schema,
        writers: Sequence[Schema],
        where: str = "",
        codec: Callable[..., Codec] = codec_for,
    ) -> None:
        self.where = where
        self.default = codec(codec_name, reader, reader)
        self.by_fingerprint: dict[bytes, Codec] = {}
        for writer in writers:
            fp = schema_fingerprint(writer).encode()
            self.by_fingerprint[fp] = codec(codec_name, writer, reader)
        self.by_fingerprint[schema_fingerprint(reader).encode()] = self.default
        # One writer schema (the usual case): no need to look at the headers.
        codecs = set(map(id, self.by_fingerprint.values()))
        self.only: Codec | None = self.default if codecs == {id(self.default)} else None

    def decode(self, message: Message) -> Any:
        data = message.value
        if data is None:
            raise UnexpectedTombstone(self.where, message.key)
        only = self.only
        if only is not None:
            return only.decode(data)
        codec = self.default
        for key, value in message.headers:
            if key == SCHEMA_HEADER:
                codec = self.by_fingerprint.get(value, self.default)
        return codec.decode(data)


class _Encoder:
    """Encodes the records of one outlet for each topic it writes to; ``room`` is how many
    bytes of value a record of this outlet may have (the transport's limit)."""

    def __init__(
        self,
        schema: Schema,
        topics: Sequence[TopicSpec],
        limit: RecordLimit | None,
        codecs: Callable[[TopicSpec], Callable[..., Codec]] = lambda _: codec_for,
    ) -> None:
        self.schema = schema
        self.headers = ((SCHEMA_HEADER, schema_fingerprint(schema).encode()),)
        self.room = NO_LIMIT if limit is None else limit.room(None, self.headers)
        self.targets: list[tuple[str, Codec]] = [
            (t.key, codecs(t)(t.codec, schema, schema)) for t in topics
        ]
        for _, codec in self.targets:
            prepare = getattr(codec, "prepare", None)
            if prepare is not None:
                prepare()  # avro-confluent: the schema is registered at start, not per record
        # Topics sharing a codec share the encoded bytes.
        self.same_codec = len({t.codec for t in topics}) <= 1
        self.single: tuple[str, Codec] | None = self.targets[0] if len(topics) == 1 else None
        # Compacted topics take keyed records only (Kafka refuses the others).
        self.compacted = tuple(t.key for t in topics if _is_compacted(t))
        self.key_of: Callable[[Any], bytes | None] | None = None
        self.timestamp_of: Callable[[Any], int | None] | None = None

    def declare(self, outlet: Outlet[Any]) -> None:
        """Take the outlet's ``key=``/``timestamp=`` declarations (when it makes them)."""
        if outlet.key is not None:
            self.key_of = outlet.key_of
        if outlet.timestamp is not None:
            self.timestamp_of = outlet.timestamp_of


def _is_compacted(topic: TopicSpec) -> bool:
    policy = str(topic.config.get("cleanup.policy", "")).replace(" ", "")
    return "compact" in policy.split(",")


class KeylessRecord(StreamletsError):
    """A record without a key is bound for a compacted topic, which takes keyed ones only."""


def _keyless(topic: str, outlet: str) -> KeylessRecord:
    return KeylessRecord(
        f"topic '{topic}' is compacted (cleanup.policy: compact), and Kafka refuses records "
        f"without a key there; give outlet '{outlet}' a key: Outlet(Schema, key='field'), "
        "or emit(record, key=...)"
    )


def user_headers(headers: Sequence[tuple[str, bytes]]) -> tuple[tuple[str, bytes], ...]:
    """``headers`` without the framework's own (the writer schema's fingerprint)."""
    if not headers or (len(headers) == 1 and headers[0][0] == SCHEMA_HEADER):
        return ()
    return tuple(h for h in headers if h[0] != SCHEMA_HEADER)


def _kept_headers(
    inherited: Sequence[tuple[str, bytes]], own: tuple[tuple[str, bytes], ...]
) -> Sequence[tuple[str, bytes]]:
    """An output's headers: the user headers of ``inherited`` (its input's) and ``own``
    (its outlet's schema header). A list when there are user headers: what the Kafka
    producer takes, so it goes out without a copy."""
    if not inherited or (len(inherited) == 1 and inherited[0][0] == SCHEMA_HEADER):
        return own
    kept = [h for h in inherited if h[0] != SCHEMA_HEADER]
    kept.extend(own)
    return kept


def _merge_headers(
    inherited: tuple[tuple[str, bytes], ...], given: Mapping[str, str | bytes]
) -> tuple[tuple[str, bytes], ...]:
    """``inherited`` with ``given`` added, replacing headers of the same name."""
    kept = [h for h in inherited if h[0] not in given]
    for name, value in given.items():
        kept.append((str(name), value.encode() if isinstance(value, str) else bytes(value)))
    return tuple(kept)


def _key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return str(key).encode()


def _timestamp_ms(when: datetime | int | None) -> int:
    if when is None:
        return -1
    if isinstance(when, datetime):
        return to_epoch_ms(when)
    return int(when)


def _meta(message: Message, timestamp: int, topic: str) -> Meta:
    """The :class:`Meta` a handler that asks for it gets with ``message``, read from the
    blueprint topic ``topic`` (the message's own topic may be the Kafka name)."""
    headers = user_headers(message.headers)
    return Meta(
        message.key,
        timestamp,
        MappingProxyType(dict(headers)) if headers else _NO_HEADERS,
        topic or message.topic,
        message.partition,
        message.offset,
    )


def _takes_meta(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` (a bound method) takes a second positional parameter."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


_NO_HEADERS: Mapping[str, bytes] = MappingProxyType({})

#: What an output inherits from the input it was made from: key, timestamp, user headers.
_Origin = tuple[bytes | None, int, tuple[tuple[str, bytes], ...]]
_NO_ORIGIN: _Origin = (None, -1, ())
#: One routed result: outlet name, record, and the Routed when it carries metadata.
_Routing = tuple[str, Any, Routed[Any] | None]
#: Bytes below the no-key room that skip the exact size check of a keyed record.
_NEAR_LIMIT = 4096


def _origin(message: Message, timestamp: int) -> _Origin:
    """What outputs made from ``message`` (with event time ``timestamp``) inherit."""
    return (message.key, timestamp, user_headers(message.headers))


#: Results that are one record for the only outlet (not an iterable of records).
_SINGLE_RECORD = (dict, BaseModel, Mapping)  # concrete classes first: ABC checks are slow


def _passthrough_check(decoder: _Decoder, reader: Schema, writer: Schema) -> UnchangedCheck | None:
    """The unchanged-record check when an inlet's bytes can go out on an outlet as they are.

    They can when every record on the inlet decodes with the inlet's own Avro schema, that
    schema encodes like the outlet's (same fingerprint), and both are Avro dicts (a model's
    validators and serializers may change a record on the way in or out).
    """
    only = decoder.only
    if only is None or only.name != "avro" or reader.model is not None or writer.model is not None:
        return None
    if schema_fingerprint(reader) != schema_fingerprint(writer):
        return None
    return unchanged_check(reader.parsed)


def _repr_message(item: Any) -> Message:
    """A generated record that failed to encode, as the original of its dead letter."""
    return Message(repr(item).encode("utf-8", "replace"))


def _process_stage(exc: BaseException) -> str:
    """``state`` when a handler failed on its state (a keyless record), else ``process``."""
    return "state" if isinstance(exc, StateError) else "process"


def _decode_stage(exc: CodecError) -> str:
    """``validate`` when a record decoded but did not fit its schema, else ``decode``."""
    return "validate" if isinstance(exc, RecordValidationError) else "decode"


def _window_message(item: WindowResult) -> Callable[[], Message]:
    """What a window's dead letter carries in place of an original record: a description
    of the window as JSON, with its key and its end as timestamp."""

    def make() -> Message:
        out = item.output
        text = json.dumps(
            {
                "window": item.window.name,
                "key": out.key.decode("utf-8", "replace"),
                "start": out.start,
                "end": out.end,
                "final": out.final,
            }
        )
        return Message(text.encode(), out.key, (), "", -1, -1, out.end)

    return make


def _is_record(value: Any) -> bool:
    return isinstance(value, (BaseModel, Mapping, str, bytes, int, float, bool))


class Executor:
    """Runs one streamlet instance: decode -> validate -> process -> encode, with its policy.

    ``blueprint`` gives the topics of each port. Outputs of outlets that no topic reads are
    counted but not encoded. ``concurrency`` bounds concurrent ``async def process`` calls.
    ``record_limit`` is the transport's limit on a record's size: an output larger than it
    fails to encode (:class:`~runner.runtime.limits.RecordTooLarge`, stage ``encode``).
    ``codecs`` gives the codec factory of a topic (default: :func:`codec_for`; the runners
    pass one that knows the schema registry, see :mod:`runner.runtime.topic_codecs`).
    """

    def __init__(
        self,
        spec: StreamletSpec,
        blueprint: VerifiedBlueprint,
        instance: Streamlet | None = None,
        *,
        concurrency: int | None = None,
        record_limit: RecordLimit | None = None,
        state: StateManager | None = None,
        checkpoint_each_batch: bool = True,
        codecs: Callable[[TopicSpec], Callable[..., Codec]] | None = None,
    ) -> None:
        codecs = codecs or (lambda _: codec_for)
        self.spec = spec
        self.record_limit = record_limit
        self.name = spec.name
        self.instance = instance if instance is not None else spec.create()
        self.on_error = spec.on_error
        self.stats = StreamletStats()
        #: The latest records that failed (whatever the policy did with them), newest last.
        self.recent_errors: deque[DeadLetter] = deque(maxlen=RECENT_ERRORS)
        self.concurrency = concurrency or int(getattr(spec.cls, "concurrency", DEFAULT_CONCURRENCY))
        cls = spec.cls
        # Keyed state (DESIGN §8): kept in memory unless the runner gives a manager.
        if state is None and cls.states():
            state = StateManager(
                spec.name, spec_states(spec), lambda _: MemoryStore(), source=not cls.inlets()
            )
        self.state = state
        if state is not None:
            state.bind(self.instance)
        #: Whether pending state changes are written to the stores after every batch (the
        #: local runner); the Kafka runner checkpoints them when it commits.
        self.checkpoint_each_batch = checkpoint_each_batch
        # Windows (DESIGN §9) keep their windows in states of their own (see windowing.py).
        self.windows: WindowRuntime | None = None
        if state is not None and cls.windows():
            schemas = {inlet: spec.schema(inlet) for inlet in cls.inlets()}
            self.windows = WindowRuntime(self.instance, cls.windows(), schemas, state)
        self.outlets: dict[str, Outlet[Any]] = dict(cls.outlets())
        self.single_outlet = next(iter(self.outlets)) if len(self.outlets) == 1 else None
        self.decoders: dict[str, _Decoder] = {}
        self.handlers: dict[str, Any] = {}
        self.is_async: dict[str, bool] = {}
        self.validators: dict[str, Any] = {}
        # Handlers that take a second parameter get the record's Meta.
        self.wants_meta: dict[str, bool] = {}
        # The blueprint topic of each inlet (Meta.topic; on Kafka a message has the topic's
        # Kafka name, which differs when the blueprint gives it a `name:`).
        self.inlet_topic: dict[str, str] = {}
        # Inlets whose event time is a field of the record (Inlet(..., timestamp=field)).
        self.event_time: dict[str, Callable[[Any], int | None]] = {}
        # Inlets whose records go to `process_many(records)` in one call (see _process_many).
        self.many: dict[str, Any] = {}
        for inlet_name in cls.inlets():
            topic = blueprint.inlet_topic(spec.name, inlet_name)
            self.inlet_topic[inlet_name] = topic.key if topic is not None else ""
            writers = []
            if topic is not None:
                for ref in topic.producers:
                    writers.append(blueprint.streamlets[ref.streamlet].schema(ref.port))
            self.decoders[inlet_name] = _Decoder(
                topic.codec if topic else "avro",
                spec.schema(inlet_name),
                writers,
                f"{spec.name}.{inlet_name}",
                codecs(topic) if topic is not None else codec_for,
            )
            if inlet_name in cls.tables():
                continue  # the runner keeps a table up to date: it has no handler
            handler = self.instance.handler_for(inlet_name)
            self.handlers[inlet_name] = handler
            self.wants_meta[inlet_name] = _takes_meta(handler)
            port = cls.inlets()[inlet_name]
            if port.timestamp is not None:
                self.event_time[inlet_name] = port.timestamp_of
            self.is_async[inlet_name] = inspect.iscoroutinefunction(
                handler
            ) or inspect.isasyncgenfunction(handler)
            many = getattr(self.instance, "process_many", None)
            if callable(many) and getattr(handler, "__func__", None) is getattr(cls, "process", 0):
                self.many[inlet_name] = many
        # Table inlets (DESIGN §9), bound to the instance for its lookups.
        self.tables: dict[str, Table] = bind_tables(spec, blueprint, self.instance, state)
        self.encoders: dict[str, _Encoder] = {}
        for outlet_name in self.outlets:
            topics = blueprint.outlet_topics(spec.name, outlet_name)
            encoder = _Encoder(spec.schema(outlet_name), topics, record_limit, codecs)
            encoder.declare(self.outlets[outlet_name])
            self.encoders[outlet_name] = encoder
        # One outlet on one topic: results go straight to that topic's codec.
        only = self.encoders.get(self.single_outlet or "")
        self._fast: tuple[str, Codec, tuple[tuple[str, bytes], ...], int] | None = (
            (only.single[0], only.single[1], only.headers, only.room)
            if only is not None
            and only.single is not None
            and only.key_of is None
            and only.timestamp_of is None
            and not only.compacted
            else None
        )

        # Inlets whose bytes are Avro of the only outlet's schema: a record passed on
        # unchanged goes out as its input bytes (see streamlets/codecs/passthrough.py).
        self._passthrough: dict[str, UnchangedCheck] = {}
        self._gate = PassthroughGate()
        if self._fast is not None and self._fast[1].name == "avro" and only is not None:
            for inlet_name, decoder in self.decoders.items():
                check = _passthrough_check(decoder, spec.schema(inlet_name), only.schema)
                if check is not None:
                    self._passthrough[inlet_name] = check

    # -- failures ------------------------------------------------------------------------

    def _fail(
        self, stage: str, exc: BaseException, original: Message, inlet: str | None
    ) -> DeadLetter | None:
        """Apply the error policy; returns the dead letter to write (or None when skipped)."""
        self.stats.count_error(stage)
        cause = (
            exc.__cause__
            if isinstance(exc, CodecError | _SourceInputError) and exc.__cause__
            else exc
        )
        dead = DeadLetter(
            streamlet=self.name,
            stage=stage,
            error_class=type(cause).__name__,
            error_message=str(exc),
            stack_trace="".join(traceback.format_exception(exc)),
            original=materialized(original),
            inlet=inlet,
        )
        self.recent_errors.append(dead)
        if self.on_error == "fail":
            raise StreamletFailed(dead) from exc
        if self.on_error == "skip":
            self.stats.skipped += 1
            log.warning(
                "%s: skipped a record that failed to %s: %s: %s",
                self.name,
                stage,
                dead.error_class,
                dead.error_message,
            )
            return None
        self.stats.dead_lettered += 1
        return dead

    def _reject(
        self,
        stage: str,
        exc: BaseException,
        original: Message,
        inlet: str | None,
        dead: list[DeadLetter],
    ) -> None:
        """Apply the error policy to one record; its dead letter (if any) joins ``dead``."""
        failed = self._fail(stage, exc, original, inlet)
        if failed is not None:
            dead.append(failed)

    # -- outputs -------------------------------------------------------------------------

    def _too_large(self, size: int, room: int, topic: str) -> RecordTooLarge:
        assert self.record_limit is not None  # room is NO_LIMIT without one
        return self.record_limit.error(size, room, topic)

    def _route(self, result: Any) -> Iterable[_Routing]:
        if result is None:
            return ()
        if isinstance(result, Routed):
            return ((result.outlet.name, result.record, None if result.plain else result),)
        if _is_record(result):
            if self.single_outlet is None:
                raise StreamletsError(self._unrouted(result))
            return ((self.single_outlet, result, None),)
        if isinstance(result, Iterable):
            routed: list[_Routing] = []
            for item in result:
                routed.extend(self._route(item))
            return routed
        if self.single_outlet is None:
            raise StreamletsError(
                f"streamlet '{self.name}' returned {result!r}; use outlet.emit(record)"
            )
        return ((self.single_outlet, result, None),)

    def _unrouted(self, result: Any) -> str:
        """Why a plain record cannot go anywhere: several outlets, or none (a sink)."""
        name = type(result).__name__
        kind = f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
        if not self.outlets:
            return (
                f"streamlet '{self.name}' returned {kind} record, but it is a sink (no "
                "outlets): its process() must return None"
            )
        names = list(self.outlets)
        return (
            f"streamlet '{self.name}' returned {kind} record, but it has {len(names)} "
            f"outlets ({', '.join(names)}): say which one, e.g. "
            f"return self.{names[0]}.emit(record)"
        )

    def encode_outputs(
        self, results: Iterable[_Routing], out: list[Emitted], origin: _Origin = _NO_ORIGIN
    ) -> None:
        """Validate and encode routed results, appending one :class:`Emitted` per topic.

        Each output keeps ``origin``'s key, timestamp and user headers (the input it was
        made from), unless its outlet declares ``key=``/``timestamp=`` or it was emitted
        with its own.
        """
        for outlet_name, record, routed in results:
            encoder = self.encoders.get(outlet_name)
            if encoder is None:
                raise StreamletsError(f"streamlet '{self.name}' has no outlet '{outlet_name}'")
            if record is TOMBSTONE:
                self._tombstone(encoder, routed, out, origin)
                continue
            key, timestamp, headers = origin
            if encoder.key_of is not None:
                key = encoder.key_of(record)
            if encoder.timestamp_of is not None:
                declared = encoder.timestamp_of(record)
                timestamp = -1 if declared is None else declared
            if routed is not None:
                if routed.key is not KEEP:
                    key = _key_bytes(routed.key)  # type: ignore[arg-type]
                if routed.timestamp is not KEEP:
                    timestamp = _timestamp_ms(routed.timestamp)  # type: ignore[arg-type]
                if routed.headers:
                    headers = _merge_headers(headers, routed.headers)
            if key is None and encoder.compacted:
                raise _keyless(encoder.compacted[0], outlet_name)
            all_headers = headers + encoder.headers if headers else encoder.headers
            room = encoder.room
            self.stats.records_out += 1
            if not encoder.targets:
                continue
            if encoder.same_codec:
                value = encoder.targets[0][1].encode(record)
                self._check_size(value, key, all_headers, room, encoder.targets[0][0])
                for topic, _ in encoder.targets:
                    out.append(
                        Emitted(topic, Message(value, key, all_headers, "", -1, -1, timestamp))
                    )
            else:
                for topic, codec in encoder.targets:
                    value = codec.encode(record)
                    self._check_size(value, key, all_headers, room, topic)
                    out.append(
                        Emitted(topic, Message(value, key, all_headers, "", -1, -1, timestamp))
                    )

    def _tombstone(
        self, encoder: _Encoder, routed: Routed[Any] | None, out: list[Emitted], origin: _Origin
    ) -> None:
        """A tombstone (``outlet.tombstone(key)``) for each topic of ``encoder``: the key,
        no value, the input's timestamp and user headers unless it gives its own."""
        assert routed is not None  # tombstone() makes a Routed with its key
        _, timestamp, headers = origin
        key = _key_bytes(routed.key)  # type: ignore[arg-type]
        if routed.timestamp is not KEEP:
            timestamp = _timestamp_ms(routed.timestamp)  # type: ignore[arg-type]
        if routed.headers:
            headers = _merge_headers(headers, routed.headers)
        self.stats.records_out += 1
        for topic, _ in encoder.targets:
            out.append(Emitted(topic, Message(None, key, headers, "", -1, -1, timestamp)))

    def _check_size(
        self,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        room: int,
        topic: str,
    ) -> None:
        """Raise :class:`RecordTooLarge` when the record does not fit its topic (the exact
        room for a key and user headers is worked out only near the limit)."""
        size = len(value)
        if size + _NEAR_LIMIT <= room:
            return
        if self.record_limit is not None and (key is not None or len(headers) > 1):
            room = self.record_limit.room(key, headers)
        if size > room:
            raise self._too_large(size, room, topic)

    def route(self, result: Any) -> list[_Routing]:
        """Turn what ``process``/``generate`` returned into ``(outlet, record, routed)``
        triples (``routed``: the :class:`Routed` when it gives its own metadata)."""
        return list(self._route(result))

    # -- processing ----------------------------------------------------------------------

    def _decode(self, inlet: str, message: Message) -> tuple[bool, Any, DeadLetter | None]:
        try:
            return True, self.decoders[inlet].decode(message), None
        except CodecError as exc:
            return False, None, self._fail(_decode_stage(exc), exc, message, inlet)

    def _event_time(self, inlet: str, record: Any, message: Message) -> int:
        """The record's event time: its inlet's ``timestamp=`` field, else its timestamp."""
        of = self.event_time.get(inlet)
        if of is None:
            return message.timestamp
        found = of(record)
        return message.timestamp if found is None else found

    def _call(self, inlet: str, record: Any, message: Message, timestamp: int) -> Any:
        handler = self.handlers[inlet]
        if self.wants_meta[inlet]:
            return handler(record, _meta(message, timestamp, self.inlet_topic[inlet]))
        return handler(record)

    def process_one_sync(
        self,
        inlet: str,
        message: Message,
        out: list[Emitted],
        dead: list[DeadLetter],
        scope: RecordScope | None = None,
    ) -> None:
        """Process one message of a streamlet with a synchronous handler; ``scope`` is the
        state scope of the batch (a stateful streamlet's), set to the message's key."""
        self.stats.records_in += 1
        try:
            record = self.decoders[inlet].decode(message)
        except CodecError as exc:
            self._reject(_decode_stage(exc), exc, message, inlet, dead)
            return
        if scope is not None:
            scope.key = message.key
            scope.partition = message.partition if message.partition >= 0 else 0
        ok = False
        try:
            timestamp = self._event_time(inlet, record, message)
            result = self._call(inlet, record, message, timestamp)
            if result is None:
                ok = True
                return
            routed = self.route(result)
            ok = True
        except StreamletFailed:
            raise
        except Exception as exc:
            self._reject(_process_stage(exc), exc, message, inlet, dead)
            return
        finally:
            if scope is not None:
                self.state.settle(scope, ok)  # type: ignore[union-attr]
        self._encode_or_fail(routed, message, inlet, out, dead, _origin(message, timestamp))

    def _process_sync_batch(
        self, inlet: str, messages: Sequence[Message], out: list[Emitted], dead: list[DeadLetter]
    ) -> None:
        """:meth:`process_one_sync` for each message, with lookups hoisted out of the loop.

        The per-record path of a sync streamlet is the runner's hot loop; each attribute
        lookup saved here is measurable in ``benchmarks/local_runner.py``. Records of the
        only outlet keep their input's key, timestamp and user headers.
        """
        decoder = self.decoders[inlet]
        only = decoder.only
        handler = self.handlers[inlet]
        fast = self._fast
        state = self.state
        if state is not None:
            # One scope for the batch, moved from record to record: sync handlers never
            # interleave, and a scope per record costs more than the state lookups.
            scope, token = state.enter(None, 0)
            try:
                for message in messages:
                    self.process_one_sync(inlet, message, out, dead, scope)
            finally:
                state.reset(token)
            return
        if self.wants_meta[inlet] or inlet in self.event_time:
            for message in messages:
                self.process_one_sync(inlet, message, out, dead)
            return
        if fast is None:
            if self.outlets:
                for message in messages:
                    self.process_one_sync(inlet, message, out, dead)
            else:
                self._sink_sync_batch(inlet, messages, out, dead)
            return
        topic, codec, headers, room = fast
        encode = codec.encode
        decode = only.decode if only is not None else None
        stats = self.stats
        stats.records_in += len(messages)
        gate = self._gate
        unchanged = self._passthrough.get(inlet) if gate.open else None
        snapshot: Any = None
        forwarded = 0
        # Input headers without user headers seen last: the messages of one producer often
        # share one headers object (the local runner's do); theirs become ``headers``.
        last_in: Any = None
        made = len(out)
        try:
            for message in messages:
                value = message.value
                try:
                    record = (
                        decode(value)
                        if decode is not None and value is not None
                        else decoder.decode(message)
                    )
                except CodecError as exc:
                    self._reject(_decode_stage(exc), exc, message, inlet, dead)
                    continue
                if unchanged is not None:
                    snapshot = record.copy()
                try:
                    result = handler(record)
                    if result is None:
                        continue
                    single = isinstance(result, _SINGLE_RECORD)
                    if not single:
                        routed = self.route(result)
                except StreamletFailed:
                    raise
                except Exception as exc:
                    self._reject("process", exc, message, inlet, dead)
                    continue
                if not single:
                    stats.records_out += len(out) - made
                    self._encode_or_fail(
                        routed, message, inlet, out, dead, _origin(message, message.timestamp)
                    )
                    made = len(out)
                    continue
                if unchanged is not None and result is record and unchanged(result, snapshot):
                    # Passed on unchanged: its bytes (not a tombstone's) are the output's.
                    forwarded += 1
                else:
                    try:
                        value = encode(result)
                    except (CodecError, StreamletsError) as exc:
                        self._reject("encode", exc, message, inlet, dead)
                        continue
                inherited = message.headers
                out_headers: Sequence[tuple[str, bytes]]
                if inherited is last_in:
                    out_headers = headers
                elif not inherited or (len(inherited) == 1 and inherited[0][0] == SCHEMA_HEADER):
                    out_headers = headers
                    last_in = inherited
                elif value is message.value and SCHEMA_HEADER in (
                    inherited[0][0],
                    inherited[-1][0],
                ):
                    # Forwarded bytes of the same schema: the input's headers, fingerprint
                    # included, are the output's as they are (no copy).
                    out_headers = inherited
                else:
                    out_headers = _kept_headers(inherited, headers)
                key = message.key
                if len(value) + _NEAR_LIMIT > room:  # type: ignore[arg-type]
                    try:
                        self._check_size(value, key, out_headers, room, topic)  # type: ignore[arg-type]
                    except RecordTooLarge as too_large:
                        self._reject("encode", too_large, message, inlet, dead)
                        continue
                out.append(
                    Emitted(topic, Message(value, key, out_headers, "", -1, -1, message.timestamp))
                )
        finally:
            stats.records_out += len(out) - made
        if unchanged is not None:
            gate.record(len(messages), forwarded)

    def _sink_sync_batch(
        self, inlet: str, messages: Sequence[Message], out: list[Emitted], dead: list[DeadLetter]
    ) -> None:
        """:meth:`process_one_sync` for each message of a streamlet without outlets (a sink
        without state), whose handler returns nothing: decode and call, nothing more."""
        decoder = self.decoders[inlet]
        only = decoder.only
        decode = only.decode if only is not None else None
        handler = self.handlers[inlet]
        self.stats.records_in += len(messages)
        for message in messages:
            try:
                value = message.value
                record = (
                    decode(value)
                    if decode is not None and value is not None
                    else decoder.decode(message)
                )
            except CodecError as exc:
                self._reject(_decode_stage(exc), exc, message, inlet, dead)
                continue
            try:
                result = handler(record)
                if result is None:
                    continue
                routed = self.route(result)  # a sink returned a record: says where it failed
            except StreamletFailed:
                raise
            except Exception as exc:
                self._reject(_process_stage(exc), exc, message, inlet, dead)
                continue
            self._encode_or_fail(
                routed, message, inlet, out, dead, _origin(message, message.timestamp)
            )

    def _encode_or_fail(
        self,
        routed: list[_Routing],
        message: Message | Callable[[], Message],
        inlet: str | None,
        out: list[Emitted],
        dead: list[DeadLetter],
        origin: _Origin = _NO_ORIGIN,
    ) -> None:
        """Encode a record's outputs, all or none; on failure its dead letter keeps
        ``message`` (or what it returns, when the original is only made on failure); the
        outputs inherit ``origin`` (see :meth:`encode_outputs`)."""
        mark = len(out)
        try:
            self.encode_outputs(routed, out, origin)
        except (CodecError, StreamletsError) as exc:
            del out[mark:]  # all outputs of a record, or none
            original = message if isinstance(message, Message) else message()
            self._reject("encode", exc, original, inlet, dead)

    async def _call_async(self, inlet: str, record: Any, message: Message, timestamp: int) -> Any:
        result = self._call(inlet, record, message, timestamp)
        if isinstance(result, Coroutine):  # `async def process`: the usual case
            result = await result
        elif inspect.isasyncgen(result):
            return [item async for item in result]
        elif inspect.isawaitable(result):
            result = await result
        if result is None or isinstance(result, _SINGLE_RECORD):
            return result
        if isinstance(result, AsyncIterator):
            return [item async for item in result]
        return result

    async def process_batch(
        self, inlet: str, messages: Sequence[Message]
    ) -> tuple[list[Emitted], list[DeadLetter]]:
        """Process messages of one inlet in order; returns outputs and dead letters in order.

        The state changes of the batch are written to the stores at its end (one write batch
        per partition) unless the runner checkpoints them itself.
        """
        if self.state is None:
            return await self._process_batch(inlet, messages)
        windows = self.windows
        try:
            if windows is not None and inlet in windows.by_inlet:
                return await self._process_windowed(inlet, messages, windows)
            return await self._process_batch(inlet, messages)
        finally:
            if windows is not None:
                windows.flush()
            if self.checkpoint_each_batch:
                self.state.checkpoint()

    async def _process_batch(
        self, inlet: str, messages: Sequence[Message]
    ) -> tuple[list[Emitted], list[DeadLetter]]:
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        table = self.tables.get(inlet)
        if table is not None:
            self._update_table(inlet, table, messages, dead)
            return out, dead
        if not self.is_async[inlet]:
            start = time.perf_counter()  # per batch: two clock reads a record cost too much
            try:
                self._process_sync_batch(inlet, messages, out, dead)
            finally:
                self.stats.process_seconds += time.perf_counter() - start
            return out, dead
        many = self.many.get(inlet)
        if many is not None:
            return await self._process_many(inlet, many, messages)
        # async process: up to `concurrency` calls at once, outputs kept in input order.
        # A few workers share the batch instead of a task per record: tasks cost more than
        # most process() calls.
        decoded: list[tuple[Message, Any, int]] = []
        for message in messages:
            self.stats.records_in += 1
            ok, record, failed = self._decode(inlet, message)
            if not ok:
                if failed is not None:
                    dead.append(failed)
                continue
            try:
                timestamp = self._event_time(inlet, record, message)
            except Exception as exc:
                self._reject("process", exc, message, inlet, dead)
                continue
            decoded.append((message, record, timestamp))
        results: list[Any] = [None] * len(decoded)
        errors: list[Exception | None] = [None] * len(decoded)
        call = self._call_async
        state = self.state
        # Runs of records one worker takes in order: every record on its own, or with state
        # the records of one key (two records of a key must not change its state at once).
        runs: list[list[int]]
        if state is None:
            runs = [[index] for index in range(len(decoded))]
        else:
            by_key: dict[tuple[bytes | None, int], list[int]] = {}
            for index, (message, _, _) in enumerate(decoded):
                by_key.setdefault((message.key, message.partition), []).append(index)
            runs = list(by_key.values())
        pending = iter(runs)

        async def worker() -> None:
            for run in pending:  # shared: each run goes to exactly one worker
                for index in run:
                    message, record, timestamp = decoded[index]
                    if state is not None:
                        scope, token = state.enter(message.key, message.partition)
                    ok = False
                    try:
                        results[index] = await call(inlet, record, message, timestamp)
                        ok = True
                    except Exception as exc:
                        errors[index] = exc
                    finally:
                        if state is not None:
                            state.leave(scope, token, ok)

        start = time.perf_counter()
        try:
            workers = min(self.concurrency, len(runs))
            if workers == 1:
                await worker()
            elif workers:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(worker())
        finally:
            self.stats.process_seconds += time.perf_counter() - start
        outcomes = (
            (message, timestamp, result if error is None else error)
            for (message, _, timestamp), result, error in zip(decoded, results, errors, strict=True)
        )
        self._emit_outcomes(inlet, outcomes, out, dead)
        return out, dead

    def _emit_outcomes(
        self,
        inlet: str,
        outcomes: Iterable[tuple[Message, int, Any]],
        out: list[Emitted],
        dead: list[DeadLetter],
    ) -> None:
        """Route and encode each record's result, in order; an exception in place of a
        result is that record's failure, so the error policy applies to it alone.

        A record for the only outlet on one topic (the usual result of ``process_many``)
        is encoded here, as :meth:`encode_outputs` would, without routing it.
        """
        fast = self._fast
        for message, timestamp, result in outcomes:
            if fast is not None and isinstance(result, _SINGLE_RECORD):
                topic, codec, headers, room = fast
                try:
                    value = codec.encode(result)
                except (CodecError, StreamletsError) as exc:
                    self._reject("encode", exc, message, inlet, dead)
                    continue
                out_headers = _kept_headers(message.headers, headers)
                key = message.key
                if len(value) + _NEAR_LIMIT > room:
                    try:
                        self._check_size(value, key, out_headers, room, topic)
                    except RecordTooLarge as too_large:
                        self._reject("encode", too_large, message, inlet, dead)
                        continue
                self.stats.records_out += 1
                out.append(Emitted(topic, Message(value, key, out_headers, "", -1, -1, timestamp)))
                continue
            if isinstance(result, BaseException):
                if isinstance(result, StreamletFailed):
                    raise result
                self._reject(_process_stage(result), result, message, inlet, dead)
                continue
            try:
                routed = self.route(result)
            except StreamletsError as exc:
                self._reject("process", exc, message, inlet, dead)
                continue
            self._encode_or_fail(routed, message, inlet, out, dead, _origin(message, timestamp))

    async def _process_many(
        self, inlet: str, many: Any, messages: Sequence[Message]
    ) -> tuple[list[Emitted], list[DeadLetter]]:
        """One ``await process_many(records)`` for the batch, for streamlets that work on
        records together (the model-serving streamlet batches them into requests).

        It returns one result per record, in order; an exception in place of a result is
        that record's failure, so the error policy applies to that record alone.
        """
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        originals: list[Message] = []
        records: list[Any] = []
        self.stats.records_in += len(messages)
        decode = self.decoders[inlet].decode
        for message in messages:
            try:
                record = decode(message)
            except CodecError as exc:
                self._reject(_decode_stage(exc), exc, message, inlet, dead)
                continue
            originals.append(message)
            records.append(record)
        if not records:
            return out, dead
        start = time.perf_counter()
        try:
            results = list(await many(records))
        finally:
            self.stats.process_seconds += time.perf_counter() - start
        if len(results) != len(records):
            raise StreamletsError(
                f"streamlet '{self.name}': process_many returned {len(results)} results "
                f"for {len(records)} records"
            )
        if inlet in self.event_time:
            outcomes: Iterable[tuple[Message, int, Any]] = (
                (message, self._event_time(inlet, record, message), result)
                for message, record, result in zip(originals, records, results, strict=True)
            )
        else:  # the records' own timestamps
            outcomes = (
                (message, message.timestamp, result)
                for message, result in zip(originals, results, strict=True)
            )
        self._emit_outcomes(inlet, outcomes, out, dead)
        return out, dead

    def reject(
        self, stage: str, exc: BaseException, original: Message, dead: list[DeadLetter]
    ) -> None:
        """Apply the error policy to a failure outside a handler (a timer's, ``stage``
        naming it), with ``original`` standing in for a record; its dead letter (if any)
        joins ``dead``."""
        self._reject(stage, exc, original, None, dead)

    def emit_result(
        self,
        result: Any,
        stage: str,
        original: Message,
        out: list[Emitted],
        dead: list[DeadLetter],
    ) -> None:
        """Route and encode what a hook other than a handler returned (a timer): its
        outputs, without an input to inherit from, join ``out``; a result that cannot be
        routed follows the error policy with ``stage``, one that cannot be encoded with
        stage ``encode``."""
        try:
            routed = self.route(result)
        except StreamletsError as exc:
            self._reject(stage, exc, original, None, dead)
            return
        self._encode_or_fail(routed, original, None, out, dead)

    # -- windows -------------------------------------------------------------------------

    async def _process_windowed(
        self, inlet: str, messages: Sequence[Message], windows: WindowRuntime
    ) -> tuple[list[Emitted], list[DeadLetter]]:
        """Messages of an inlet that feeds windows, one at a time: the handler (if any),
        then the windows; the handler's outputs, then the windows the record closed (or,
        with ``emit="every"``, changed). A record whose handler or aggregate fails changes
        no window; a late one is counted, and dead-lettered when its window says so."""
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        state = self.state
        assert state is not None  # a window keeps its windows in a state
        is_async = self.is_async[inlet]
        stats = self.stats
        start = time.perf_counter()
        try:
            for message in messages:
                stats.records_in += 1
                decoded, record, failed = self._decode(inlet, message)
                if not decoded:
                    if failed is not None:
                        dead.append(failed)
                    continue
                scope, token = state.enter(message.key, message.partition)
                ok = False
                try:
                    timestamp = self._event_time(inlet, record, message)
                    if is_async:
                        result = await self._call_async(inlet, record, message, timestamp)
                    else:
                        result = self._call(inlet, record, message, timestamp)
                    routed = self.route(result) if result is not None else []
                    step = windows.plan(inlet, record, message.key, scope.partition, timestamp)
                    ok = True
                except StreamletFailed:
                    raise
                except Exception as exc:
                    self._reject(_process_stage(exc), exc, message, inlet, dead)
                    continue
                finally:
                    state.leave(scope, token, ok)
                if routed:
                    self._encode_or_fail(
                        routed, message, inlet, out, dead, _origin(message, timestamp)
                    )
                if step.late:
                    self._late(step, message, inlet, windows, dead)
                results = windows.apply(step)
                if results:
                    self._emit_windows(results, inlet, out, dead)
        finally:
            stats.process_seconds += time.perf_counter() - start
        return out, dead

    def _late(
        self,
        step: Any,
        message: Message,
        inlet: str,
        windows: WindowRuntime,
        dead: list[DeadLetter],
    ) -> None:
        """Count a record that came too late for windows of its inlet; dead-letter it
        (stage ``late``) when one of them says so."""
        self.stats.late += 1
        dead_letter = [late for late in step.late if late[0].dead_letter_late]
        if not dead_letter:
            return
        window, t, stream = dead_letter[0]
        error = LateRecord(windows.late_message(window, t, stream))
        self.stats.dead_lettered += 1
        dead.append(
            DeadLetter(
                streamlet=self.name,
                stage="late",
                error_class=type(error).__name__,
                error_message=str(error),
                stack_trace="",
                original=materialized(message),
                inlet=inlet,
            )
        )

    def _emit_windows(
        self,
        results: Sequence[WindowResult],
        inlet: str | None,
        out: list[Emitted],
        dead: list[DeadLetter],
    ) -> None:
        """Turn windows to emit into outputs: what the window's ``on_close`` hook returns
        for each (or the default result record), keyed by the window's key and stamped with
        its end. A window whose hook or encoding fails follows the error policy (stage
        ``window``; the dead letter describes the window) and the others go on."""
        for item in results:
            window = item.window
            describe = _window_message(item)
            try:
                windowed = item.windowed()
                if window.on_close is not None:
                    made = window.on_close(windowed)
                    if inspect.isawaitable(made):
                        raise StreamletsError(
                            f"window '{window.name}': its on_close hook returned an awaitable; "
                            "make it a plain (not async) method"
                        )
                else:
                    assert self.single_outlet is not None  # checked by definition_problems
                    made = window.default_result(windowed, self.encoders[self.single_outlet].schema)
                routed = self.route(made)
            except StreamletFailed:
                raise
            except Exception as exc:
                self._reject("window", exc, describe(), inlet, dead)
                continue
            origin: _Origin = (item.output.key, item.output.end, ())
            self._encode_or_fail(routed, describe, inlet, out, dead, origin)

    def close_windows(
        self, partitions: Iterable[int] | None = None
    ) -> tuple[list[Emitted], list[DeadLetter]]:
        """Close and emit every open window (every bounded input has ended) of
        ``partitions`` (the ones this instance owns), or of every partition it holds state
        of."""
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        windows = self.windows
        if windows is None:
            return out, dead
        self._emit_windows(windows.close_all(partitions), None, out, dead)
        windows.flush()
        if self.checkpoint_each_batch and self.state is not None:
            self.state.checkpoint()
        return out, dead

    def _update_table(
        self, inlet: str, table: Table, messages: Sequence[Message], dead: list[DeadLetter]
    ) -> None:
        """Keep a table inlet's latest record per key: a record sets its key, a tombstone
        deletes it; a keyless record cannot be kept (the error policy, stage ``state``)."""
        decoder = self.decoders[inlet]
        for message in messages:
            self.stats.records_in += 1
            key = message.key
            if key is None:
                exc = StateError(
                    f"table '{decoder.where}' got a record without a key, and a table keeps "
                    "records by key; key the records of its topic (Outlet(Schema, "
                    "key='field') on the producer, or emit(record, key=...))"
                )
                self._reject("state", exc, message, inlet, dead)
                continue
            if message.value is None:
                table.delete(key, message.partition)
                continue
            try:
                record = decoder.decode(message)
            except CodecError as exc:
                self._reject(_decode_stage(exc), exc, message, inlet, dead)
                continue
            try:
                table.put(key, message.partition, record)
            except (StateError, CodecError) as exc:
                self._reject("state", exc, message, inlet, dead)

    def encode_generated(self, item: Any, out: list[Emitted], dead: list[DeadLetter]) -> None:
        """Encode one item a source generated (a record, Routed, or iterable of them).

        A :class:`~streamlets.rejected.Rejected` item goes to the error policy as a record
        that failed to decode, with its original bytes. A source's records have no key and
        no timestamp (the transport stamps the time they are produced) unless the outlet
        declares them or they are emitted with their own.
        """
        if isinstance(item, Rejected):
            error = item.error
            message = f"{item.where}: {error}" if item.where else str(error)
            self._reject(
                "decode", _SourceInputError(message, error), Message(item.original), None, dead
            )
            return
        fast = self._fast
        if fast is not None and isinstance(item, _SINGLE_RECORD):
            try:
                value = fast[1].encode(item)
                if len(value) > fast[3]:
                    raise self._too_large(len(value), fast[3], fast[0])
            except (CodecError, StreamletsError) as exc:
                self._reject("encode", exc, _repr_message(item), None, dead)
                return
            self.stats.records_out += 1
            out.append(Emitted(fast[0], Message(value, None, fast[2])))
            return
        try:
            routed = self.route(item)
        except StreamletsError as exc:
            self._reject("process", exc, Message(b""), None, dead)
            return
        self._encode_or_fail(routed, lambda: _repr_message(item), None, out, dead)
