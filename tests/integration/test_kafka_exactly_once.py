"""The exactly-once path on a real broker: transactions commit offsets; an old instance is fenced.

Tansu accepts transactions but shows records of aborted or unfinished transactions to
read_committed consumers, so this test cannot check isolation: it checks that outputs and
input offsets go through transactions, that a producer with the same transactional id
fences the running process (which stops with a clear message instead of writing on), and
that a restart resumes from the offsets committed in transactions.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Producer

from tests.integration.conftest import KafkaApp, KafkaTools, item_ids, stop

COUNT = 1500

PIPELINE = f"""
streamlets:
  numbers: {{class: ktapp:Numbers, config: {{count: {COUNT}}}}}
  pass:
    class: ktapp:Passthrough
    config: {{delay: 0.004}}
    processing: exactly-once
topics:
  items:
    name: "{{app}}-items"
    producers: [numbers.out]
    consumers: [pass.inp]
    partitions: 2
  out:
    name: "{{app}}-out"
    producers: [pass.out]
"""


def test_transactions_commit_and_a_second_instance_fences_the_first(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    app = kafka_app(PIPELINE)
    assert app.streamlet("numbers").wait(60) == 0, app.log("numbers")
    group, items = f"{app.name}.pass", f"{app.name}-items"

    first = app.streamlet("pass", "--commit-interval", "0.2")
    second = None
    try:
        kafka.read(f"{app.name}-out", 200, timeout=60)
        deadline = time.monotonic() + 30
        while sum(max(o, 0) for o in kafka.committed(group, items).values()) == 0:
            assert time.monotonic() < deadline, "no offsets committed through a transaction"
            time.sleep(0.2)
        # A producer with the same transactional id (what a second process with the same
        # --replica would start with) fences the running one, which stops at once.
        fencer = Producer(
            {"bootstrap.servers": kafka.bootstrap, "transactional.id": f"{app.name}.pass-0.tx"}
        )
        fencer.init_transactions(30)
        assert first.wait(60) == 1
        log = app.log("pass")
        assert "fenced: another process took over transactional id" in log, log
        assert "Traceback" not in log
        # A restarted replica resumes from the offsets committed in transactions.
        second = app.streamlet("pass", replica=0)
        records = kafka.read(f"{app.name}-out", COUNT, timeout=120)
        deadline = time.monotonic() + 60
        while set(item_ids(records)) != set(range(COUNT)) and time.monotonic() < deadline:
            records = kafka.read(f"{app.name}-out", len(records) + 1, timeout=5)
        assert set(item_ids(records)) == set(range(COUNT))
        deadline = time.monotonic() + 30
        while sum(max(o, 0) for o in kafka.committed(group, items).values()) < COUNT:
            assert time.monotonic() < deadline, kafka.committed(group, items)
            time.sleep(0.2)
        assert stop(second) == 0, app.log("pass")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                stop(process)
