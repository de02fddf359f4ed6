"""The batch sink's delivery logic (streamlets.library.sinks) on a destination in memory:
batches, retries, isolating the bad records, waiting for an unreachable destination."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from runner.testkit import run_streamlet
from streamlets import Inlet
from streamlets.library import BatchSink
from streamlets.library.sinks import BatchSinkConfig, SinkRecordError


class Reading(BaseModel):
    sensor_id: str
    value: int


class Memory(BatchSink):
    """Keeps what it writes; refuses batches holding a negative value; the first
    ``down`` writes find it unreachable and the first ``flaky`` fail for no reason."""

    records = Inlet(Reading)

    class Config(BatchSinkConfig):
        down: int = 0
        flaky: int = 0

    config: Config
    written: ClassVar[list[list[int]]] = []
    attempts: ClassVar[list[int]] = []

    async def write_batch(self, records: Sequence[Any]) -> None:
        values = [r.value for r in records]
        type(self).attempts.append(len(values))
        if self.config.down > 0:
            self.config.down -= 1
            raise ConnectionRefusedError("nobody listens")
        if self.config.flaky > 0:
            self.config.flaky -= 1
            raise RuntimeError("the destination hiccuped")
        bad = [v for v in values if v < 0]
        if bad:
            raise SinkRecordError(f"value {bad[0]} is negative")
        type(self).written.append(values)


def _run(values: list[int], **config: Any) -> Any:
    Memory.written, Memory.attempts = [], []
    inputs = [Reading(sensor_id=f"s{v}", value=v) for v in values]
    return run_streamlet(Memory, {"records": inputs}, config={"backoff_initial_s": 0.001, **config})


def test_records_are_written_in_batches_of_at_most_batch_size_in_order() -> None:
    result = _run(list(range(25)), batch_size=10)
    assert result.error is None and not result.dead_letters
    assert [v for batch in Memory.written for v in batch] == list(range(25))
    assert max(len(batch) for batch in Memory.written) <= 10
    assert result.stats.records_in == 25


def test_a_refused_batch_is_written_one_by_one_and_only_the_bad_record_is_dead_lettered() -> None:
    values = [1, 2, -3, 4, 5]
    result = _run(values, batch_size=100)
    assert [v for batch in Memory.written for v in batch] == [1, 2, 4, 5]
    assert Memory.attempts == [5, 1, 1, 1, 1, 1]  # a data error is not retried as a batch
    (dead,) = result.dead_letters
    assert dead.stage == "process" and dead.error_class == "SinkRecordError"
    assert "value -3 is negative" in dead.error_message


def test_a_failing_batch_is_retried_with_backoff_before_it_is_isolated() -> None:
    result = _run([1, 2, 3], flaky=2, retries=3)
    assert Memory.attempts == [3, 3, 3]  # two failures, then written as a batch
    assert Memory.written == [[1, 2, 3]] and not result.dead_letters

    # Out of retries: one by one; the first record fails once more, is retried, passes.
    result = _run([1, 2], flaky=3, retries=1)
    assert Memory.attempts == [2, 2, 1, 1, 1]
    assert sorted(v for batch in Memory.written for v in batch) == [1, 2]


def test_records_wait_for_an_unreachable_destination_without_a_retry_limit() -> None:
    result = _run([7, 8], down=12, retries=0, backoff_max_s=0.002)
    assert Memory.attempts.count(2) == 13  # 12 times unreachable, then written
    assert Memory.written == [[7, 8]] and not result.dead_letters


def test_the_skip_policy_counts_a_refused_record() -> None:
    Memory.written = []
    result = run_streamlet(
        Memory,
        {"records": [Reading(sensor_id="a", value=-1), Reading(sensor_id="b", value=2)]},
        on_error="skip",
    )
    assert Memory.written == [[2]] and result.stats.skipped == 1
