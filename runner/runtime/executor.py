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
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from blueprint import StreamletSpec, TopicSpec, VerifiedBlueprint
from runner.runtime.errors import StreamletFailed
from runner.runtime.limits import NO_LIMIT, RecordLimit, RecordTooLarge
from runner.runtime.messages import DeadLetter, Emitted, Message
from runner.runtime.stats import StreamletStats
from streamlets.codecs import SCHEMA_HEADER, Codec, codec_for, schema_fingerprint
from streamlets.codecs.passthrough import PassthroughGate, UnchangedCheck, unchanged_check
from streamlets.errors import CodecError, RecordValidationError, StreamletsError
from streamlets.ports import Outlet, Routed
from streamlets.rejected import Rejected
from streamlets.schema import Schema
from streamlets.streamlet import Streamlet

__all__ = ["Executor"]

log = logging.getLogger("streamlets.runner")

#: How many ``async def process`` calls of one streamlet instance run at once by default.
DEFAULT_CONCURRENCY = 16


class _SourceInputError(StreamletsError):
    """A source's input could not be read as a record (carries the original error's class)."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.__cause__ = cause


class _Decoder:
    """Decodes the messages of one inlet; picks the writer schema by the schema header."""

    def __init__(self, codec_name: str, reader: Schema, writers: Sequence[Schema]) -> None:
        self.default = codec_for(codec_name, reader, reader)
        self.by_fingerprint: dict[bytes, Codec] = {}
        for writer in writers:
            fp = schema_fingerprint(writer).encode()
            self.by_fingerprint[fp] = codec_for(codec_name, writer, reader)
        self.by_fingerprint[schema_fingerprint(reader).encode()] = self.default
        # One writer schema (the usual case): no need to look at the headers.
        codecs = set(map(id, self.by_fingerprint.values()))
        self.only: Codec | None = self.default if codecs == {id(self.default)} else None

    def decode(self, message: Message) -> Any:
        only = self.only
        if only is not None:
            return only.decode(message.value)
        codec = self.default
        for key, value in message.headers:
            if key == SCHEMA_HEADER:
                codec = self.by_fingerprint.get(value, self.default)
        return codec.decode(message.value)


class _Encoder:
    """Encodes the records of one outlet for each topic it writes to; ``room`` is how many
    bytes of value a record of this outlet may have (the transport's limit)."""

    def __init__(
        self, schema: Schema, topics: Sequence[TopicSpec], limit: RecordLimit | None
    ) -> None:
        self.schema = schema
        self.headers = ((SCHEMA_HEADER, schema_fingerprint(schema).encode()),)
        self.room = NO_LIMIT if limit is None else limit.room(None, self.headers)
        self.targets: list[tuple[str, Codec]] = [
            (t.key, codec_for(t.codec, schema, schema)) for t in topics
        ]
        # Topics sharing a codec share the encoded bytes.
        self.same_codec = len({t.codec for t in topics}) <= 1
        self.single: tuple[str, Codec] | None = self.targets[0] if len(topics) == 1 else None


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


def _decode_stage(exc: CodecError) -> str:
    """``validate`` when a record decoded but did not fit its schema, else ``decode``."""
    return "validate" if isinstance(exc, RecordValidationError) else "decode"


def _is_record(value: Any) -> bool:
    return isinstance(value, (BaseModel, Mapping, str, bytes, int, float, bool))


class Executor:
    """Runs one streamlet instance: decode -> validate -> process -> encode, with its policy.

    ``blueprint`` gives the topics of each port. Outputs of outlets that no topic reads are
    counted but not encoded. ``concurrency`` bounds concurrent ``async def process`` calls.
    ``record_limit`` is the transport's limit on a record's size: an output larger than it
    fails to encode (:class:`~runner.runtime.limits.RecordTooLarge`, stage ``encode``).
    """

    def __init__(
        self,
        spec: StreamletSpec,
        blueprint: VerifiedBlueprint,
        instance: Streamlet | None = None,
        *,
        concurrency: int | None = None,
        record_limit: RecordLimit | None = None,
    ) -> None:
        self.spec = spec
        self.record_limit = record_limit
        self.name = spec.name
        self.instance = instance if instance is not None else spec.create()
        self.on_error = spec.on_error
        self.stats = StreamletStats()
        self.concurrency = concurrency or int(getattr(spec.cls, "concurrency", DEFAULT_CONCURRENCY))
        cls = spec.cls
        self.outlets: dict[str, Outlet[Any]] = dict(cls.outlets())
        self.single_outlet = next(iter(self.outlets)) if len(self.outlets) == 1 else None
        self.decoders: dict[str, _Decoder] = {}
        self.handlers: dict[str, Any] = {}
        self.is_async: dict[str, bool] = {}
        self.validators: dict[str, Any] = {}
        # Inlets whose records go to `process_many(records)` in one call (see _process_many).
        self.many: dict[str, Any] = {}
        for inlet_name in cls.inlets():
            topic = blueprint.inlet_topic(spec.name, inlet_name)
            writers = []
            if topic is not None:
                for ref in topic.producers:
                    writers.append(blueprint.streamlets[ref.streamlet].schema(ref.port))
            self.decoders[inlet_name] = _Decoder(
                topic.codec if topic else "avro", spec.schema(inlet_name), writers
            )
            handler = self.instance.handler_for(inlet_name)
            self.handlers[inlet_name] = handler
            self.is_async[inlet_name] = inspect.iscoroutinefunction(
                handler
            ) or inspect.isasyncgenfunction(handler)
            many = getattr(self.instance, "process_many", None)
            if callable(many) and getattr(handler, "__func__", None) is getattr(cls, "process", 0):
                self.many[inlet_name] = many
        self.encoders: dict[str, _Encoder] = {}
        for outlet_name in self.outlets:
            topics = blueprint.outlet_topics(spec.name, outlet_name)
            self.encoders[outlet_name] = _Encoder(spec.schema(outlet_name), topics, record_limit)
        # One outlet on one topic: results go straight to that topic's codec.
        only = self.encoders.get(self.single_outlet or "")
        self._fast: tuple[str, Codec, tuple[tuple[str, bytes], ...], int] | None = (
            (only.single[0], only.single[1], only.headers, only.room)
            if only is not None and only.single is not None
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

    # -- lifecycle -----------------------------------------------------------------------

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
            original=original,
            inlet=inlet,
        )
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

    def _route(self, result: Any) -> Iterable[tuple[str, Any]]:
        if result is None:
            return ()
        if isinstance(result, Routed):
            return ((result.outlet.name, result.record),)
        if _is_record(result):
            if self.single_outlet is None:
                raise StreamletsError(
                    f"streamlet '{self.name}' returned a {type(result).__name__} but has "
                    f"{len(self.outlets)} outlets; "
                    + (
                        "a sink must return None"
                        if not self.outlets
                        else "return outlet.emit(record)"
                    )
                )
            return ((self.single_outlet, result),)
        if isinstance(result, Iterable):
            routed: list[tuple[str, Any]] = []
            for item in result:
                routed.extend(self._route(item))
            return routed
        if self.single_outlet is None:
            raise StreamletsError(
                f"streamlet '{self.name}' returned {result!r}; use outlet.emit(record)"
            )
        return ((self.single_outlet, result),)

    def encode_outputs(self, results: Iterable[tuple[str, Any]], out: list[Emitted]) -> None:
        """Validate and encode routed results, appending one :class:`Emitted` per topic."""
        for outlet_name, record in results:
            encoder = self.encoders.get(outlet_name)
            if encoder is None:
                raise StreamletsError(f"streamlet '{self.name}' has no outlet '{outlet_name}'")
            headers = encoder.headers
            room = encoder.room
            self.stats.records_out += 1
            single = encoder.single
            if single is not None:  # one topic: the common case, kept short
                value = single[1].encode(record)
                if len(value) > room:
                    raise self._too_large(len(value), room, single[0])
                out.append(Emitted(single[0], Message(value, None, headers)))
                continue
            if not encoder.targets:
                continue
            if encoder.same_codec:
                value = encoder.targets[0][1].encode(record)
                if len(value) > room:
                    raise self._too_large(len(value), room, encoder.targets[0][0])
                for topic, _ in encoder.targets:
                    out.append(Emitted(topic, Message(value, headers=encoder.headers)))
            else:
                for topic, codec in encoder.targets:
                    value = codec.encode(record)
                    if len(value) > room:
                        raise self._too_large(len(value), room, topic)
                    out.append(Emitted(topic, Message(value, headers=encoder.headers)))

    def route(self, result: Any) -> list[tuple[str, Any]]:
        """Turn what ``process``/``generate`` returned into ``(outlet, record)`` pairs."""
        return list(self._route(result))

    # -- processing ----------------------------------------------------------------------

    def _decode(self, inlet: str, message: Message) -> tuple[bool, Any, DeadLetter | None]:
        try:
            return True, self.decoders[inlet].decode(message), None
        except CodecError as exc:
            return False, None, self._fail(_decode_stage(exc), exc, message, inlet)

    def process_one_sync(
        self, inlet: str, message: Message, out: list[Emitted], dead: list[DeadLetter]
    ) -> None:
        """Process one message of a streamlet with a synchronous handler."""
        self.stats.records_in += 1
        try:
            record = self.decoders[inlet].decode(message)
        except CodecError as exc:
            self._reject(_decode_stage(exc), exc, message, inlet, dead)
            return
        try:
            result = self.handlers[inlet](record)
            if result is None:
                return
            routed = self.route(result)
        except StreamletFailed:
            raise
        except Exception as exc:
            self._reject("process", exc, message, inlet, dead)
            return
        self._encode_or_fail(routed, message, inlet, out, dead)

    def _process_sync_batch(
        self, inlet: str, messages: Sequence[Message], out: list[Emitted], dead: list[DeadLetter]
    ) -> None:
        """:meth:`process_one_sync` for each message, with lookups hoisted out of the loop.

        The per-record path of a sync streamlet is the runner's hot loop; each attribute
        lookup saved here is measurable in ``benchmarks/local_runner.py``.
        """
        decoder = self.decoders[inlet]
        only = decoder.only
        handler = self.handlers[inlet]
        fast = self._fast
        if fast is None:
            for message in messages:
                self.process_one_sync(inlet, message, out, dead)
            return
        topic, codec, headers, room = fast
        encode = codec.encode
        stats = self.stats
        stats.records_in += len(messages)
        gate = self._gate
        unchanged = self._passthrough.get(inlet) if gate.open else None
        snapshot: Any = None
        forwarded = 0
        for message in messages:
            try:
                record = only.decode(message.value) if only is not None else decoder.decode(message)
            except CodecError as exc:
                self._reject(_decode_stage(exc), exc, message, inlet, dead)
                continue
            if unchanged is not None:
                snapshot = record.copy()
            try:
                result = handler(record)
                if result is None:
                    continue
                if not isinstance(result, _SINGLE_RECORD):
                    routed = self.route(result)
            except StreamletFailed:
                raise
            except Exception as exc:
                self._reject("process", exc, message, inlet, dead)
                continue
            if isinstance(result, _SINGLE_RECORD):
                if unchanged is not None and result is record and unchanged(result, snapshot):
                    value = message.value  # passed on unchanged: its bytes are the output's
                    forwarded += 1
                else:
                    try:
                        value = encode(result)
                    except (CodecError, StreamletsError) as exc:
                        self._reject("encode", exc, message, inlet, dead)
                        continue
                if len(value) > room:
                    too_large = self._too_large(len(value), room, topic)
                    self._reject("encode", too_large, message, inlet, dead)
                    continue
                stats.records_out += 1
                out.append(Emitted(topic, Message(value, None, headers)))
            else:
                self._encode_or_fail(routed, message, inlet, out, dead)
        if unchanged is not None:
            gate.record(len(messages), forwarded)

    def _encode_or_fail(
        self,
        routed: list[tuple[str, Any]],
        message: Message | Callable[[], Message],
        inlet: str | None,
        out: list[Emitted],
        dead: list[DeadLetter],
    ) -> None:
        """Encode a record's outputs, all or none; on failure its dead letter keeps
        ``message`` (or what it returns, when the original is only made on failure)."""
        mark = len(out)
        try:
            self.encode_outputs(routed, out)
        except (CodecError, StreamletsError) as exc:
            del out[mark:]  # all outputs of a record, or none
            original = message if isinstance(message, Message) else message()
            self._reject("encode", exc, original, inlet, dead)

    async def _call_async(self, inlet: str, record: Any) -> Any:
        handler = self.handlers[inlet]
        result = handler(record)
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
        """Process messages of one inlet in order; returns outputs and dead letters in order."""
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
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
        decoded: list[tuple[Message, Any]] = []
        for message in messages:
            self.stats.records_in += 1
            ok, record, failed = self._decode(inlet, message)
            if not ok:
                if failed is not None:
                    dead.append(failed)
                continue
            decoded.append((message, record))
        results: list[Any] = [None] * len(decoded)
        errors: list[Exception | None] = [None] * len(decoded)
        pending = iter(range(len(decoded)))
        call = self._call_async

        async def worker() -> None:
            for index in pending:  # shared: each index goes to exactly one worker
                try:
                    results[index] = await call(inlet, decoded[index][1])
                except Exception as exc:
                    errors[index] = exc

        start = time.perf_counter()
        try:
            workers = min(self.concurrency, len(decoded))
            if workers == 1:
                await worker()
            elif workers:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(worker())
        finally:
            self.stats.process_seconds += time.perf_counter() - start
        outcomes = (
            (message, result if error is None else error)
            for (message, _), result, error in zip(decoded, results, errors, strict=True)
        )
        self._emit_outcomes(inlet, outcomes, out, dead)
        return out, dead

    def _emit_outcomes(
        self,
        inlet: str,
        outcomes: Iterable[tuple[Message, Any]],
        out: list[Emitted],
        dead: list[DeadLetter],
    ) -> None:
        """Route and encode each record's result, in order; an exception in place of a
        result is that record's failure, so the error policy applies to it alone."""
        for message, result in outcomes:
            if isinstance(result, BaseException):
                if isinstance(result, StreamletFailed):
                    raise result
                self._reject("process", result, message, inlet, dead)
                continue
            try:
                routed = self.route(result)
            except StreamletsError as exc:
                self._reject("process", exc, message, inlet, dead)
                continue
            self._encode_or_fail(routed, message, inlet, out, dead)

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
        for message in messages:
            self.stats.records_in += 1
            ok, record, failed = self._decode(inlet, message)
            if not ok:
                if failed is not None:
                    dead.append(failed)
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
        self._emit_outcomes(inlet, zip(originals, results, strict=True), out, dead)
        return out, dead

    def encode_generated(self, item: Any, out: list[Emitted], dead: list[DeadLetter]) -> None:
        """Encode one item a source generated (a record, Routed, or iterable of them).

        A :class:`~streamlets.rejected.Rejected` item goes to the error policy as a record
        that failed to decode, with its original bytes.
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
