"""What the live view shows, as JSON: the blueprint's graph with each node's place, every
streamlet's and topic's live numbers, and one streamlet's details.

A :class:`Source` reads the run (the in-process runner, the Kafka supervisor, or running
processes' ``/metrics``); :class:`LiveView` turns its readings into the documented JSON of
``/api/blueprint``, ``/api/status`` and ``/api/streamlets/NAME``, with rates over the last
few readings.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from blueprint import VerifiedBlueprint
from blueprint.secrets import mask_secrets, secret_texts
from runner.kafka.dead_letter_records import decoded_record, jsonable, raw_text
from runner.runtime.dead_letter_summary import error_entry
from runner.runtime.executor import user_headers
from runner.runtime.lifecycle import LifecycleError
from runner.runtime.messages import DeadLetter
from runner.runtime.stats import StreamletStats
from runner.ui.layout import layout

__all__ = [
    "HEALTHS",
    "LiveView",
    "Reading",
    "Source",
    "StreamletReading",
    "dead_letter_entry",
    "error_entry",
    "errors_of",
    "exception_entry",
    "overall_health",
]

#: A streamlet's (or a replica's) health, most telling first: the view shows the first
#: that any replica has.
HEALTHS = (
    "failed",
    "restarting",
    "unreachable",
    "running",
    "draining",
    "starting",
    "stopped",
    "done",
)
#: Readings the rates are taken over (with a reading each half second: about two seconds).
RATE_READINGS = 5


def overall_health(replicas: Sequence[str]) -> str:
    """A streamlet's health from its replicas': the most telling one (see :data:`HEALTHS`);
    ``done`` only when every replica is done."""
    if not replicas:
        return "starting"
    for health in HEALTHS[:-2]:
        if health in replicas:
            return health
    return "done" if all(h == "done" for h in replicas) else "stopped"


@dataclass(slots=True)
class StreamletReading:
    """One streamlet at one moment: its counters (summed over replicas), each replica's
    health, and what else its runner knows (``None``: not known here)."""

    stats: StreamletStats
    replicas: list[str]
    lag: int | None = None
    state_entries: int | None = None
    open_windows: int | None = None


@dataclass(slots=True)
class Reading:
    """The run at one moment: per streamlet, per topic the records written to it so far
    (``None``: not known), and the run's state (``running``, ``finished``, ``failed``,
    ``stopped``) with its error."""

    streamlets: dict[str, StreamletReading]
    topics: dict[str, int | None] = field(default_factory=dict)
    run: str = "running"
    error: str | None = None


class Source(Protocol):
    """Where a live view reads a run. Its methods are called from the view's thread."""

    #: ``local``, ``kafka`` or ``metrics``
    mode: str

    def read(self) -> Reading:
        """The run now."""
        ...

    def errors(self, streamlet: str) -> list[dict[str, Any]]:
        """The latest errors of ``streamlet``, newest first (see :func:`error_entry`)."""
        ...

    def dead_letters(self, streamlet: str) -> Sequence[DeadLetter]:
        """The latest dead letters of ``streamlet``, newest last."""
        ...


def exception_entry(exc: BaseException) -> dict[str, Any]:
    """What ended a replica (a lifecycle hook that raised, say), as an error entry."""
    if isinstance(exc, LifecycleError):
        return {
            "stage": exc.hook,
            "error_class": type(exc.cause).__name__,
            "message": str(exc.cause),
            "where": exc.where or None,
            "inlet": None,
            "topic": None,
            "partition": -1,
            "offset": -1,
        }
    return {
        "stage": "run",
        "error_class": type(exc).__name__,
        "message": str(exc),
        "where": None,
        "inlet": None,
        "topic": None,
        "partition": -1,
        "offset": -1,
    }


def dead_letter_entry(dead: DeadLetter, blueprint: VerifiedBlueprint) -> dict[str, Any]:
    """A dead letter as the view shows it: stage, error, where, and the original record
    decoded with its topic's codec (``record``; ``record_error`` says why when it cannot
    be, and ``value`` has the raw value then)."""
    original = dead.original
    record, why = decoded_record(blueprint, dead)
    return {
        **error_entry(dead, blueprint),
        "error_message": dead.error_message,
        "timestamp": original.timestamp,
        "key": None if original.key is None else raw_text(original.key),
        "headers": {k: raw_text(v) for k, v in user_headers(original.headers)},
        "record": jsonable(record) if why is None else None,
        "record_error": why,
        "value": None if why is None else raw_text(original.value)[:4000],
    }


def _config(blueprint: VerifiedBlueprint, name: str) -> Any:
    """A streamlet's validated config as JSON, secret values masked."""
    spec = blueprint.streamlets[name]
    try:
        data: Any = spec.config.model_dump(mode="json", by_alias=True)
    except Exception:  # a value pydantic cannot write as JSON: as text
        data = json.loads(json.dumps(spec.config.model_dump(by_alias=True), default=str))
    secrets = secret_texts(type(spec.config), spec.config_data)
    if not secrets:
        return data
    return json.loads(mask_secrets(json.dumps(data), secrets))


class LiveView:
    """The JSON of the live view over ``source``; :meth:`tick` takes a new reading."""

    def __init__(self, blueprint: VerifiedBlueprint, source: Source) -> None:
        self.blueprint = blueprint
        self.source = source
        self.started = time.monotonic()
        self.seq = 0
        self._history: deque[tuple[float, Reading]] = deque(maxlen=RATE_READINGS)
        self._status: dict[str, Any] = {}
        self._graph = self._make_graph()

    # -- the graph -----------------------------------------------------------------------

    def _make_graph(self) -> dict[str, Any]:
        bp = self.blueprint
        placed = layout(bp.graph)

        def box(node: tuple[str, str]) -> dict[str, int]:
            b = placed.boxes[node]
            return {"x": b.x, "y": b.y, "w": b.w, "h": b.h}

        streamlets = [
            {
                "name": name,
                "class": spec.class_path,
                "replicas": spec.replicas,
                "on_error": spec.on_error,
                "description": spec.description,
                "inlets": list(spec.cls.inlets()),
                "outlets": list(spec.cls.outlets()),
                "stateful": spec.stateful,
                "windows": list(spec.cls.windows()),
                **box(("streamlet", name)),
            }
            for name, spec in bp.streamlets.items()
        ]
        topics = [
            {
                "key": key,
                "name": topic.name,
                "partitions": topic.partitions or 1,
                "codec": topic.codec,
                **box(("topic", key)),
            }
            for key, topic in bp.topics.items()
        ]
        edges = [
            {
                "from": {"kind": src[0], "name": src[1]},
                "to": {"kind": dst[0], "name": dst[1]},
                "port": data.get("port", ""),
            }
            for src, dst, data in bp.graph.edges(data=True)
        ]
        return {
            "name": bp.name,
            "description": bp.description,
            "mode": self.source.mode,
            "width": placed.width,
            "height": placed.height,
            "streamlets": streamlets,
            "topics": topics,
            "edges": edges,
        }

    def graph(self) -> dict[str, Any]:
        """``/api/blueprint``: the streamlets, topics and edges, each node with its box."""
        return self._graph

    # -- live numbers --------------------------------------------------------------------

    def tick(self) -> dict[str, Any]:
        """Take a reading and make the status of it (see :meth:`status`)."""
        now = time.monotonic()
        reading = self.source.read()
        self._history.append((now, reading))
        then, first = self._history[0]
        seconds = now - then

        def rate(now_n: int | None, before_n: int | None) -> float | None:
            if now_n is None or before_n is None:
                return None
            return round(max(now_n - before_n, 0) / seconds, 1) if seconds > 0 else 0.0

        streamlets: dict[str, Any] = {}
        for name, item in reading.streamlets.items():
            s = item.stats
            before = first.streamlets.get(name)
            b = before.stats if before is not None else StreamletStats()
            streamlets[name] = {
                "health": overall_health(item.replicas),
                "replicas": list(item.replicas),
                "records_in": s.records_in,
                "records_out": s.records_out,
                "errors": s.errors,
                "dead_letters": s.dead_lettered,
                "skipped": s.skipped,
                "late": s.late,
                "in_per_second": rate(s.records_in, b.records_in),
                "out_per_second": rate(s.records_out, b.records_out),
                "lag": item.lag,
                "state_entries": item.state_entries,
                "open_windows": item.open_windows,
            }
        topics: dict[str, Any] = {}
        for key, topic in self.blueprint.topics.items():
            records = reading.topics.get(key)
            topics[key] = {
                "records": records,
                "per_second": rate(records, first.topics.get(key)),
                "partitions": topic.partitions or 1,
            }
        self.seq += 1
        self._status = {
            "seq": self.seq,
            "time": time.time(),
            "seconds": round(now - self.started, 1),
            "mode": self.source.mode,
            "run": reading.run,
            "error": reading.error,
            "streamlets": streamlets,
            "topics": topics,
        }
        return self._status

    def status(self) -> dict[str, Any]:
        """``/api/status``: the latest reading (one is taken when there is none yet)."""
        return self._status or self.tick()

    def streamlet(self, name: str) -> dict[str, Any] | None:
        """``/api/streamlets/NAME``: config (secrets masked), latest errors and dead letters
        (newest first), and the latest numbers; ``None`` for a name not in the blueprint."""
        spec = self.blueprint.streamlets.get(name)
        if spec is None:
            return None
        dead = list(self.source.dead_letters(name))[::-1]
        return {
            "name": name,
            "class": spec.class_path,
            "replicas": spec.replicas,
            "on_error": spec.on_error,
            "description": spec.description,
            "config": _config(self.blueprint, name),
            "status": self.status()["streamlets"].get(name),
            "errors": self.source.errors(name),
            "dead_letters": [dead_letter_entry(d, self.blueprint) for d in dead],
        }


def errors_of(
    recent: Sequence[DeadLetter],
    failure: BaseException | None,
    blueprint: VerifiedBlueprint,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Error entries, newest first: ``failure`` (what ended a replica, unless it is the
    latest failed record itself), then the ``recent`` failed records."""
    entries = [error_entry(d, blueprint) for d in reversed(recent)]
    if failure is not None:
        dead = getattr(failure, "dead", None)
        if not (isinstance(dead, DeadLetter) and recent and recent[-1] is dead):
            entries.insert(0, exception_entry(failure))
    return entries[:limit]
