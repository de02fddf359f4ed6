"""Testkit: run one streamlet, or a whole blueprint, on in-memory records.

Records go through the same execution core and the same codecs as in a real run, so a test
sees what production sees (including dead letters for records that fail)::

    from runner.testkit import run_streamlet

    result = run_streamlet(Threshold, {"readings": [Reading(sensor_id="a", temperature=31)]},
                           config={"limit": 30})
    assert result.outputs["alerts"] == [Alert(sensor_id="a", temperature=31, limit=30)]

    from runner.testkit import run_blueprint

    result = run_blueprint("blueprint.yaml", inject={"readings": [...]}, collect=["alerts"])
    assert len(result.topics["alerts"]) == 3

``run_blueprint`` runs the part of the blueprint between what is injected and what is
collected (``result.ran`` names it): the injected records stand in for the streamlets
that would write those topics, and a sink that reads a collected topic does not run (it
would write its file, or wherever it writes, as a real run does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import networkx as nx
from pydantic import BaseModel

from blueprint import (
    ConfigOverrides,
    Location,
    PortRef,
    StreamletSpec,
    TopicSpec,
    VerifiedBlueprint,
    load_overrides,
    user_code_path,
    verify,
)
from runner.local import LocalRunner
from runner.runtime.executor import user_headers
from runner.runtime.messages import DeadLetter, Message
from runner.runtime.stats import StreamletStats
from runner.runtime.topic_codecs import TopicCodecs
from streamlets.codecs import SCHEMA_HEADER, Codec, codec_for, schema_fingerprint
from streamlets.errors import StreamletsError
from streamlets.meta import from_epoch_ms, to_epoch_ms
from streamlets.schema import Schema
from streamlets.streamlet import Streamlet

__all__ = [
    "BlueprintResult",
    "Raw",
    "Record",
    "StreamletResult",
    "TestkitError",
    "run_blueprint",
    "run_streamlet",
    "streamlet_blueprint",
]


class TestkitError(StreamletsError):
    """The testkit was used with something it cannot run (e.g. a topic the blueprint lacks).

    An invalid blueprint file raises :class:`blueprint.InvalidBlueprint` instead, with
    every problem verification found.
    """

    __test__ = False  # not a pytest test class


@dataclass(frozen=True, slots=True)
class Record:
    """A record with its metadata, as a test puts it on a topic or gets it back.

    In: ``key`` (text is UTF-8 encoded), ``timestamp`` (a datetime, naive = UTC, or epoch
    milliseconds; ``None``: the time it is put on the topic) and ``headers`` (text values
    UTF-8 encoded). Out (``result.records``): ``key`` as text (bytes when it is not UTF-8),
    ``timestamp`` an aware UTC datetime, ``headers`` the record's own headers (without the
    framework's). A ``value`` of ``None`` is a tombstone, in and out: ``Record(None,
    key="c1")`` deletes ``c1`` from a table.
    """

    value: Any
    key: str | bytes | None = None
    timestamp: datetime | int | None = None
    headers: Mapping[str, str | bytes] | None = None


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes to put on a topic as they are, bypassing encoding (to test bad records)."""

    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    key: bytes | None = None


@dataclass
class StreamletResult:
    """What one streamlet produced: records per outlet, dead letters and counters."""

    outputs: dict[str, list[Any]]
    dead_letters: list[DeadLetter]
    stats: StreamletStats
    error: BaseException | None = None
    records: dict[str, list[Record]] = field(default_factory=dict)
    #: state -> key -> value after the run (keys as text, bytes when not UTF-8).
    state: dict[str, dict[str | bytes, Any]] = field(default_factory=dict)


@dataclass
class BlueprintResult:
    """What a blueprint run produced: records per collected topic, dead letters, counters
    (of the streamlets that ran, ``ran``)."""

    topics: dict[str, list[Any]]
    dead_letters: list[DeadLetter]
    stats: dict[str, StreamletStats]
    error: BaseException | None = None
    messages: dict[str, list[Message]] = field(default_factory=dict)
    records: dict[str, list[Record]] = field(default_factory=dict)
    #: streamlet -> state -> key -> value after the run (keys as in StreamletResult.state).
    state: dict[str, dict[str, dict[str | bytes, Any]]] = field(default_factory=dict)
    ran: tuple[str, ...] = ()


def _encode(
    records: Iterable[Any],
    schema: Schema,
    codec_name: str,
    make: Callable[..., Codec] = codec_for,
) -> list[Message]:
    codec = make(codec_name, schema, schema)
    headers = ((SCHEMA_HEADER, schema_fingerprint(schema).encode()),)
    messages = []
    for record in records:
        if isinstance(record, Raw):
            messages.append(Message(record.value, record.key, record.headers))
        elif isinstance(record, Record):
            own = tuple(
                (str(k), v.encode() if isinstance(v, str) else bytes(v))
                for k, v in (record.headers or {}).items()
            )
            key = record.key.encode() if isinstance(record.key, str) else record.key
            when = record.timestamp
            stamp = (
                -1 if when is None else to_epoch_ms(when) if isinstance(when, datetime) else when
            )
            if record.value is None:  # a tombstone: a key without a value
                messages.append(Message(None, key, own, "", -1, -1, stamp))
                continue
            messages.append(
                Message(codec.encode(record.value), key, own + headers, "", -1, -1, stamp)
            )
        elif record is None:
            messages.append(Message(None))  # a tombstone without a key
        else:
            messages.append(Message(codec.encode(record), headers=headers))
    return messages


def _records(messages: Sequence[Message], values: Sequence[Any]) -> list[Record]:
    """The collected ``messages`` (decoded as ``values``) as :class:`Record` values."""
    found = []
    for message, value in zip(messages, values, strict=True):
        raw = message.key
        key: str | bytes | None = raw
        if raw is not None:
            try:
                key = raw.decode("utf-8")
            except UnicodeDecodeError:
                key = raw
        headers = dict(user_headers(message.headers))
        found.append(Record(value, key, from_epoch_ms(message.timestamp), headers))
    return found


def _text_key(raw: bytes) -> str | bytes:
    """A key as text when it is UTF-8, else as its bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _seed(
    state: Mapping[str, Mapping[str, Mapping[str | bytes, Any]]],
) -> dict[str, dict[str, dict[bytes, Any]]]:
    """Testkit state seeds (text or bytes keys) as the runner takes them (bytes keys)."""
    return {
        streamlet: {
            name: {(k.encode() if isinstance(k, str) else bytes(k)): v for k, v in values.items()}
            for name, values in states.items()
        }
        for streamlet, states in state.items()
    }


def _state_out(
    state: Mapping[str, Mapping[bytes, Any]],
) -> dict[str, dict[str | bytes, Any]]:
    return {name: {_text_key(k): v for k, v in values.items()} for name, values in state.items()}


def _decode(
    messages: Iterable[Message],
    schema: Schema,
    codec_name: str,
    writers: Sequence[Schema],
    make: Callable[..., Codec] = codec_for,
) -> list[Any]:
    codecs = {schema_fingerprint(w).encode(): make(codec_name, w, schema) for w in writers}
    default = make(codec_name, schema, schema)
    return [
        None
        if m.value is None
        else codecs.get(m.header(SCHEMA_HEADER) or b"", default).decode(m.value)
        for m in messages
    ]


def _run(runner: LocalRunner) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise TestkitError("the testkit runs its own event loop; call it from synchronous code")
    holder: list[Any] = []

    async def main() -> None:
        # The result goes out through `holder`, not as the task's result: asyncio.run
        # formats a finished main task's result, which costs dearly for a big run.
        holder.append(await runner.run())

    asyncio.run(main())
    return holder[0]


def run_streamlet(
    streamlet: type[Streamlet],
    inputs: Mapping[str, Iterable[Any]] | None = None,
    *,
    config: BaseModel | Mapping[str, Any] | None = None,
    codec: str = "avro",
    on_error: str | None = None,
    state: Mapping[str, Mapping[str | bytes, Any]] | None = None,
) -> StreamletResult:
    """Run one streamlet with ``inputs`` (records per inlet); collect records per outlet.

    A source runs its ``generate()`` to the end. Records are encoded with ``codec`` on the
    way in and decoded on the way out, as on a real topic. ``on_error`` overrides the
    class's policy (``dead-letter``, ``skip`` or ``fail``). ``state`` seeds the streamlet's
    keyed states before the run (``{"spent": {"alice": 3.0}}``: state -> key -> value);
    ``result.state`` holds them after it. A source's state has one value, under the key
    ``""``.
    """
    inputs = dict(inputs or {})
    unknown = set(inputs) - set(streamlet.inlets())
    if unknown:
        raise TestkitError(
            f"{streamlet.__name__} has no inlet(s) {', '.join(sorted(unknown))}; "
            f"its inlets: {', '.join(streamlet.inlets()) or 'none'}"
        )
    blueprint = streamlet_blueprint(streamlet, config=config, codec=codec, on_error=on_error)
    name = "streamlet"
    spec = blueprint.streamlets[name]
    # One in-process registry for the run and for what goes in and comes out of it.
    codecs = TopicCodecs(None, local=True)
    inject = {
        f"in.{inlet}": _encode(
            records, spec.schema(inlet), codec, codecs(blueprint.topics[f"in.{inlet}"])
        )
        for inlet, records in inputs.items()
    }
    unknown_states = set(state or {}) - set(streamlet.states())
    if unknown_states:
        raise TestkitError(
            f"{streamlet.__name__} has no state(s) {', '.join(sorted(unknown_states))}; "
            f"its states: {', '.join(streamlet.states()) or 'none'}"
        )
    runner = LocalRunner(
        blueprint,
        inject=inject,
        collect=[f"out.{o}" for o in streamlet.outlets()],
        state=_seed({name: state or {}}),
        codecs=codecs,
    )
    result = _run(runner)
    outputs: dict[str, list[Any]] = {}
    records: dict[str, list[Record]] = {}
    for outlet in streamlet.outlets():
        schema = spec.schema(outlet)
        messages = result.collected[f"out.{outlet}"]
        made = codecs(blueprint.topics[f"out.{outlet}"])
        outputs[outlet] = _decode(messages, schema, codec, [schema], made)
        records[outlet] = _records(messages, outputs[outlet])
    return StreamletResult(
        outputs,
        result.dead_letters,
        result.stats[name],
        result.error,
        records,
        _state_out(result.state.get(name, {})),
    )


def streamlet_blueprint(
    streamlet: type[Streamlet],
    *,
    config: BaseModel | Mapping[str, Any] | None = None,
    codec: str = "avro",
    on_error: str | None = None,
) -> VerifiedBlueprint:
    """The blueprint :func:`run_streamlet` runs: ``streamlet``, named ``streamlet``, with a
    topic of ``codec`` per port (``in.<inlet>``, ``out.<outlet>``)."""
    problems = streamlet.definition_problems()
    if problems:
        raise TestkitError(f"{streamlet.__name__} cannot run: {'; '.join(problems)}")
    name = "streamlet"
    spec = StreamletSpec(
        name=name,
        class_path=f"{streamlet.__module__}:{streamlet.__qualname__}",
        cls=streamlet,
        config=streamlet.validate_config(config),
        config_data={},
        replicas=1,
        on_error=on_error or streamlet.on_error,
        processing="at-least-once",
    )
    topics: dict[str, TopicSpec] = {}
    for inlet in streamlet.inlets():
        key = f"in.{inlet}"
        topics[key] = TopicSpec(key, key, (), (PortRef(name, inlet),), codec, None, None)
    for outlet in streamlet.outlets():
        key = f"out.{outlet}"
        topics[key] = TopicSpec(key, key, (PortRef(name, outlet),), (), codec, None, None)
    return VerifiedBlueprint(
        name="testkit",
        path="",
        directory=os.getcwd(),
        description="",
        processing="at-least-once",
        streamlets={name: spec},
        topics=topics,
        graph=nx.DiGraph(),
    )


def _topic_schemas(bp: VerifiedBlueprint, key: str) -> tuple[Schema, list[Schema]]:
    """The schema to read a topic with (first consumer, else first producer) and its writers."""
    topic = bp.topics[key]
    writers = [bp.streamlets[r.streamlet].schema(r.port) for r in topic.producers]
    if topic.consumers:
        ref = topic.consumers[0]
        reader = bp.streamlets[ref.streamlet].schema(ref.port)
    else:
        reader = writers[0]
    return reader, writers


def _downstream(bp: VerifiedBlueprint, topics: Iterable[str]) -> set[str]:
    """The streamlets that records on ``topics`` reach, directly or through other topics."""
    found: set[str] = set()
    todo = list(topics)
    while todo:
        for ref in bp.topics[todo.pop()].consumers:
            if ref.streamlet not in found:
                found.add(ref.streamlet)
                cls = bp.streamlets[ref.streamlet].cls
                todo += [t.key for o in cls.outlets() for t in bp.outlet_topics(ref.streamlet, o)]
    return found


def _upstream(bp: VerifiedBlueprint, topics: Iterable[str], stop: Iterable[str] = ()) -> set[str]:
    """The streamlets whose records end up on ``topics``, directly or through other topics
    (not through the topics ``stop``)."""
    found: set[str] = set()
    todo = list(topics)
    stopped = set(stop)
    while todo:
        for ref in bp.topics[todo.pop()].producers:
            if ref.streamlet not in found:
                found.add(ref.streamlet)
                for inlet in bp.streamlets[ref.streamlet].cls.inlets():
                    topic = bp.inlet_topic(ref.streamlet, inlet)
                    if topic is not None and topic.key not in stopped:
                        todo.append(topic.key)
    return found


def _to_run(
    bp: VerifiedBlueprint,
    inject: Iterable[str],
    collect: Iterable[str],
    streamlets: Iterable[str] | None,
) -> tuple[str, ...]:
    """The streamlets :func:`run_blueprint` runs, in blueprint order."""
    if streamlets is not None:
        chosen = set(streamlets)
        unknown = sorted(chosen - set(bp.streamlets))
        if unknown:
            raise TestkitError(
                f"cannot run {', '.join(map(repr, unknown))}: the blueprint has no such "
                f"streamlet; it has {', '.join(bp.streamlets)}"
            )
    else:
        injected, collect = set(inject), list(collect)
        chosen = set(bp.streamlets)
        if injected:
            chosen = _downstream(bp, injected)
            # What feeds them besides the injected topics runs too (a control source).
            feeding = {
                topic.key
                for name in chosen
                for inlet in bp.streamlets[name].cls.inlets()
                if (topic := bp.inlet_topic(name, inlet)) is not None and topic.key not in injected
            }
            chosen |= _upstream(bp, feeding, stop=injected)
        if collect:
            chosen &= _upstream(bp, collect)
    return tuple(name for name in bp.streamlets if name in chosen)


def _only(bp: VerifiedBlueprint, names: Sequence[str]) -> VerifiedBlueprint:
    """``bp`` with only the streamlets ``names``: every topic stays, without the ports of
    the streamlets left out (a topic none of them writes is empty)."""
    keep = set(names)
    topics = {
        key: dataclasses.replace(
            topic,
            producers=tuple(r for r in topic.producers if r.streamlet in keep),
            consumers=tuple(r for r in topic.consumers if r.streamlet in keep),
        )
        for key, topic in bp.topics.items()
    }
    graph = bp.graph.subgraph(
        n for n in bp.graph.nodes if n[0] != "streamlet" or n[1] in keep
    ).copy()
    return dataclasses.replace(
        bp,
        streamlets={n: s for n, s in bp.streamlets.items() if n in keep},
        topics=topics,
        graph=graph,
    )


def run_blueprint(
    blueprint: str | os.PathLike[str] | VerifiedBlueprint,
    *,
    inject: Mapping[str, Iterable[Any]] | None = None,
    collect: Iterable[str] = (),
    config: Mapping[str, Mapping[str, Any]] | None = None,
    sets: Sequence[str] = (),
    state: Mapping[str, Mapping[str, Mapping[str | bytes, Any]]] | None = None,
    streamlets: Iterable[str] | None = None,
    fuse: bool = False,
) -> BlueprintResult:
    """Run a blueprint in-process with records injected on topics; collect topics.

    What runs is the part of the graph between the two (``result.ran`` names it): with
    ``inject``, the streamlets that records on the injected topics reach, and what feeds
    their other inlets (a control source); the injected records stand in for the
    injected topics' own producers, which do not run. With ``collect``, of those only the
    ones whose records reach a collected topic (a sink reading it does not run, so it
    writes no file). With neither, the whole blueprint runs, its sources included.
    ``streamlets`` names the streamlets to run instead.

    ``config`` overrides streamlet config (``{"threshold": {"limit": 25}}``), as do ``sets``
    (``["threshold.limit=25"]``). Injected records are encoded with the schema of the
    topic's readers; collected records are decoded likewise. A blueprint file with errors
    raises :class:`blueprint.InvalidBlueprint`. The streamlets run with the blueprint's
    directory on ``sys.path`` (see :func:`blueprint.user_code_path`). ``state`` seeds keyed
    state (streamlet -> state -> key -> value); ``result.state`` holds it after the run.
    ``fuse`` hands records on as objects where a hop allows it, as ``flow run-local
    --fuse`` does (see :mod:`runner.runtime.fused`).
    """
    if isinstance(blueprint, VerifiedBlueprint):
        verified = blueprint
    else:
        overrides = load_overrides(None, sets)
        if config:
            values = {k: dict(v) for k, v in overrides.values.items()}
            for name, entries in config.items():
                for key, value in entries.items():
                    values.setdefault(name, {})[key] = (
                        value,
                        Location(f"testkit config {name}.{key}"),
                    )
            overrides = ConfigOverrides(values, overrides.sections, overrides.problems)
        verified = verify(blueprint, overrides).unwrap()
    encoded = {}
    # One in-process registry for the run and for what goes in and comes out of it.
    codecs = TopicCodecs(None, local=True)
    for key, records in (inject or {}).items():
        if key not in verified.topics:
            raise TestkitError(f"cannot inject into topic '{key}': the blueprint has no such topic")
        reader, _ = _topic_schemas(verified, key)
        topic = verified.topics[key]
        encoded[key] = _encode(records, reader, topic.codec, codecs(topic))
    collect = list(collect)
    for key in collect:
        if key not in verified.topics:
            raise TestkitError(f"cannot collect topic '{key}': the blueprint has no such topic")
    for name, states in (state or {}).items():
        if name not in verified.streamlets:
            raise TestkitError(
                f"cannot seed state of '{name}': the blueprint has no such streamlet"
            )
        unknown = set(states) - set(verified.streamlets[name].cls.states())
        if unknown:
            raise TestkitError(f"streamlet '{name}' has no state(s) {', '.join(sorted(unknown))}")
    ran = _to_run(verified, encoded, collect, streamlets)
    runner = LocalRunner(
        _only(verified, ran),
        inject=encoded,
        collect=collect,
        state=_seed(state or {}),
        codecs=codecs,
        fuse=fuse,
    )
    with user_code_path(verified.directory):
        result = _run(runner)
    topics: dict[str, list[Any]] = {}
    with_meta: dict[str, list[Record]] = {}
    for key in collect:
        reader, writers = _topic_schemas(verified, key)
        topic = verified.topics[key]
        topics[key] = _decode(result.collected[key], reader, topic.codec, writers, codecs(topic))
        with_meta[key] = _records(result.collected[key], topics[key])
    return BlueprintResult(
        topics,
        result.dead_letters,
        result.stats,
        result.error,
        result.collected,
        with_meta,
        {name: _state_out(states) for name, states in result.state.items()},
        ran,
    )
