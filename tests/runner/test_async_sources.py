"""Async sources: what they yield reaches the runner in order and in batches, their
failures end the run once their earlier records are out, and they share the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runner.local import pipeline
from runner.testkit import run_streamlet
from streamlets import Outlet, Streamlet

COUNTER: dict[str, Any] = {
    "type": "record",
    "name": "Counter",
    "fields": [{"name": "n", "type": "long"}],
}


class Fast(Streamlet):
    """Yields its records without ever waiting."""

    out = Outlet(COUNTER)

    async def generate(self) -> AsyncIterator[dict[str, int]]:
        for n in range(2000):
            yield {"n": n}


class Slow(Streamlet):
    """Waits a moment before each record."""

    out = Outlet(COUNTER)

    async def generate(self) -> AsyncIterator[dict[str, int]]:
        for n in range(5):
            await asyncio.sleep(0.01)
            yield {"n": n}


class FailsAfterTen(Streamlet):
    """Yields ten records, then fails."""

    out = Outlet(COUNTER)

    async def generate(self) -> AsyncIterator[dict[str, int]]:
        for n in range(10):
            yield {"n": n}
        raise RuntimeError("the feed went away")


def test_a_fast_async_sources_records_arrive_in_order_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[int] = []
    publish = pipeline._Topic.publish

    async def counting(self: Any, messages: list[Any]) -> None:
        batches.append(len(messages))
        await publish(self, messages)

    monkeypatch.setattr(pipeline._Topic, "publish", counting)
    result = run_streamlet(Fast)
    assert result.outputs["out"] == [{"n": n} for n in range(2000)]
    # Not a batch per record (a task and a hop per record cost four times the CPU).
    assert sum(batches) == 2000 and len(batches) <= 2000 // 50, batches


def test_a_slow_async_sources_records_each_go_on_as_they_come() -> None:
    result = run_streamlet(Slow)
    assert result.outputs["out"] == [{"n": n} for n in range(5)]


def test_a_failing_async_source_fails_the_run_after_its_earlier_records() -> None:
    result = run_streamlet(FailsAfterTen)
    assert result.outputs["out"] == [{"n": n} for n in range(10)]
    assert result.error is not None
    assert "generate() failed" in str(result.error)
    assert "the feed went away" in str(result.error)
