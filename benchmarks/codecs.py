"""Benchmark: our codecs against a bare fastavro (and bare pydantic) loop, in the same run.

Each case encodes and decodes the same N records with our codec and with the bare loop
doing the same work (``parse_schema`` once, ``schemaless_writer`` into a fresh BytesIO,
``schemaless_reader`` from one; for models also ``model_dump`` before writing and
``model_validate`` after reading, since a model port needs both). Measurements are
interleaved and repeated, and the best of each is kept, since the machine is noisy.

Run with ``.venv/bin/python benchmarks/codecs.py [--records N] [--repeat R]``, or import
:func:`run_codec_benchmark` (``benchmarks/verify.py`` calls :func:`main`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import fastavro  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from streamlets.codecs import AvroCodec, JsonCodec  # noqa: E402
from streamlets.schema import Schema  # noqa: E402

#: the ratio ours/bare the dict case should reach
GOAL = 0.9


class Position(BaseModel):
    """Where an event happened."""

    lat: float
    lon: float


class Event(BaseModel):
    """A typical record: scalars, a timestamp, an optional nested record and a list."""

    id: str
    value: float
    count: int
    at: datetime
    position: Position | None = None
    tags: list[str] = []


EVENT_AVRO: dict[str, Any] = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "value", "type": "double"},
        {"name": "count", "type": "long"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {
            "name": "position",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Position",
                    "fields": [
                        {"name": "lat", "type": "double"},
                        {"name": "lon", "type": "double"},
                    ],
                },
            ],
            "default": None,
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}


def _dicts(n: int) -> list[dict[str, Any]]:
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return [
        {
            "id": f"event-{i}",
            "value": i * 0.5,
            "count": i,
            "at": at,
            "position": {"lat": 52.0 + i % 7, "lon": 4.0 - i % 5} if i % 2 else None,
            "tags": ["a", "b"][: i % 3],
        }
        for i in range(n)
    ]


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _ours(codec: Any, records: list[Any]) -> Callable[[], object]:
    encode, decode = codec.encode, codec.decode

    def run() -> object:
        return [decode(encode(r)) for r in records]

    return run


def _bare_avro(parsed: Any, records: list[Any]) -> Callable[[], object]:
    writer, reader = fastavro.schemaless_writer, fastavro.schemaless_reader

    def run() -> object:
        out = []
        for r in records:
            fo = BytesIO()
            writer(fo, parsed, r)
            out.append(reader(BytesIO(fo.getvalue()), parsed))
        return out

    return run


def _bare_avro_model(parsed: Any, records: list[Event]) -> Callable[[], object]:
    writer, reader = fastavro.schemaless_writer, fastavro.schemaless_reader
    validate = Event.model_validate

    def run() -> object:
        out = []
        for r in records:
            fo = BytesIO()
            writer(fo, parsed, r.model_dump())
            out.append(validate(reader(BytesIO(fo.getvalue()), parsed)))
        return out

    return run


def _bare_json_model(records: list[Event]) -> Callable[[], object]:
    validate = Event.model_validate_json

    def run() -> object:
        return [validate(r.model_dump_json(by_alias=True).encode()) for r in records]

    return run


def run_codec_benchmark(n: int = 100_000, repeat: int = 5) -> list[dict[str, Any]]:
    """Encode+decode ``n`` records per case; one row per case with records/s and ratio.

    Each row: ``case``, ``ours`` and ``bare`` (records/s, best of ``repeat`` interleaved
    runs), ``ratio`` (ours/bare) and ``goal`` (the ratio aimed for, or None).
    """
    dicts = _dicts(n)
    models = [Event.model_validate(d) for d in dicts]
    dict_schema = Schema.of(EVENT_AVRO)
    model_schema = Schema.of(Event)
    # The same schema parsed separately, as a user of bare fastavro would.
    bare_dict = fastavro.parse_schema(EVENT_AVRO)
    bare_model = fastavro.parse_schema(model_schema.avro)

    # Sanity: both sides do the same work and get the same records back.
    assert _ours(AvroCodec(dict_schema), dicts[:50])() == _bare_avro(bare_dict, dicts[:50])()
    assert _ours(AvroCodec(model_schema), models[:50])() == models[:50]

    cases: list[tuple[str, Callable[[], object], Callable[[], object], float | None]] = [
        (
            "avro, Avro-dict schema, dict records",
            _ours(AvroCodec(dict_schema), dicts),
            _bare_avro(bare_dict, dicts),
            GOAL,
        ),
        (
            "avro, pydantic model (bare: + model_dump/model_validate)",
            _ours(AvroCodec(model_schema), models),
            _bare_avro_model(bare_model, models),
            None,
        ),
        (
            "json, pydantic model (bare: model_dump_json/model_validate_json)",
            _ours(JsonCodec(model_schema), models),
            _bare_json_model(models),
            None,
        ),
    ]
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name, *_ in cases}
    for i in range(repeat):
        for name, ours, bare, _goal in cases:
            # Alternate the order so that neither side always runs on a warmer machine.
            if i % 2 == 0:
                t_ours, t_bare = _time(ours), _time(bare)
            else:
                t_bare, t_ours = _time(bare), _time(ours)
            best[name][0] = min(best[name][0], t_ours)
            best[name][1] = min(best[name][1], t_bare)
    rows = []
    for name, *_rest, goal in cases:
        t_ours, t_bare = best[name]
        rows.append(
            {
                "case": name,
                "records": n,
                "ours": n / t_ours,
                "bare": n / t_bare,
                "ratio": t_bare / t_ours,
                "goal": goal,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table."""
    width = max(len(r["case"]) for r in rows)
    lines = [
        f"{'case':{width}}  {'ours rec/s':>11}  {'bare rec/s':>11}  {'ours/bare':>9}  goal",
    ]
    for r in rows:
        goal = f">= {r['goal']:.2f}" if r["goal"] is not None else "-"
        mark = "" if r["goal"] is None else ("  ok" if r["ratio"] >= r["goal"] else "  MISSED")
        lines.append(
            f"{r['case']:{width}}  {r['ours']:>11,.0f}  {r['bare']:>11,.0f}  "
            f"{r['ratio']:>9.2f}  {goal}{mark}"
        )
    return "\n".join(lines)


def main(records: int = 100_000, repeat: int = 5) -> None:
    """Run the benchmark and print the table."""
    print(f"codecs: encode+decode {records:,} records, best of {repeat} interleaved runs")
    print(format_table(run_codec_benchmark(records, repeat)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    main(args.records, args.repeat)
