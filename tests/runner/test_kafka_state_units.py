"""Parts of the Kafka runner's keyed state that need no broker: changelog topic plans,
state directories, stores held by another process, readiness while restoring, the
changelog a commit writes, and the options that place the state."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from blueprint import VerifiedBlueprint, verify
from runner.cli import cli
from runner.kafka import plan_topics
from runner.kafka.changelogs import StateStoreError, open_store, process_state_dir, source_key
from runner.kafka.metrics import Health
from runner.kafka.options import DEFAULT_STATE_DIR, ProcessOptions
from runner.kafka.supervisor import Supervisor
from runner.runtime.state import MemoryStore, StateManager
from streamlets import State
from streamlets.state import RecordScope

MODULE = """
from collections.abc import Iterator

from pydantic import BaseModel
from streamlets import Inlet, Outlet, State, Streamlet


class Item(BaseModel):
    id: int


class Source(Streamlet):
    out = Outlet(Item, key=lambda item: str(item.id))
    position = State(int, default=0)

    def generate(self) -> Iterator[Item]:
        yield Item(id=1)


class Count(Streamlet):
    inp = Inlet(Item)
    seen = State(int, default=0)
    last = State(Item)

    def process(self, item: Item) -> None:
        self.seen.set(self.seen.get() + 1)
"""

BLUEPRINT = """
name: units
streamlets:
  src: {class: state_units_app:Source}
  count: {class: state_units_app:Count}
topics:
  items:
    producers: [src.out]
    consumers: [count.inp]
    partitions: 4
    replication_factor: 1
"""


@pytest.fixture
def blueprint(tmp_path: Path) -> VerifiedBlueprint:
    (tmp_path / "state_units_app.py").write_text(MODULE)
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT))
    return verify(str(path)).unwrap()


def test_each_state_has_a_compacted_changelog_with_the_input_partitions(
    blueprint: VerifiedBlueprint,
) -> None:
    plans = {p.name: p for p in plan_topics(blueprint)}
    for name in ("units.count.seen.changelog", "units.count.last.changelog"):
        plan = plans[name]
        assert (plan.partitions, plan.replication_factor) == (4, 1)
        assert plan.config == {"cleanup.policy": "compact"}
    source = plans["units.src.position.changelog"]
    assert source.partitions == 1  # a source has no input: one partition, a key per replica
    assert {p.name for p in plan_topics(blueprint, ["count"])} == {
        "items",
        "units.count.dead-letters",
        "units.count.seen.changelog",
        "units.count.last.changelog",
    }


def test_a_changelog_follows_an_input_topic_that_exists_with_more_partitions(
    blueprint: VerifiedBlueprint,
) -> None:
    plans = {p.name: p for p in plan_topics(blueprint)}
    changelog = plans["units.count.seen.changelog"]
    assert changelog.follows == ("items",)
    # The input was made with 6 partitions (by hand, or a broker's auto-creation): a store
    # per input partition writes to the changelog partition of its number.
    assert changelog.following({"items": 6}).partitions == 6
    assert changelog.following({"items": 2}).partitions == 4  # never fewer than planned
    assert changelog.following({}).partitions == 4
    assert plans["units.src.position.changelog"].following({"items": 6}).partitions == 1


def test_processes_sharing_a_state_root_never_share_a_store(
    blueprint: VerifiedBlueprint, tmp_path: Path
) -> None:
    first = process_state_dir(tmp_path, blueprint, "count", 0)
    second = process_state_dir(tmp_path, blueprint, "count", 1)
    assert first != second and first.parent == second.parent == tmp_path / "units"
    assert source_key(0) != source_key(1)
    store = open_store(first, 2)
    try:
        with pytest.raises(StateStoreError, match="is another process using this state dir"):
            open_store(first, 2)  # RocksDB holds a lock on an open store
    finally:
        store.close()
    open_store(first, 2).close()  # closed: free again


def test_readyz_is_503_while_partitions_restore() -> None:
    health = Health()
    health.ready = True
    health.restoring = 2
    ok, why = health.readiness()
    assert not ok and "restoring state: 2 partition(s)" in why
    health.restoring = 0
    assert health.readiness() == (True, "ok")


class _Count:
    seen = State(int, default=0)


def test_a_commit_writes_the_latest_value_of_each_changed_key_once() -> None:
    manager = StateManager("count", {"seen": _Count.seen}, lambda _: MemoryStore(), changelog=True)
    for n in range(1, 6):
        for key, partition in ((b"a", 0), (b"b", 1)):
            scope, token = manager.enter(key, partition)
            manager.write("seen", scope, n)
            manager.leave(scope, token, ok=True)
    scope, token = manager.enter(b"c", 1)
    manager.remove("seen", scope)
    manager.leave(scope, token, ok=True)
    entries = {(e.partition, e.key): e.value for e in manager.take_changelog()}
    codec = manager.codecs["seen"]
    assert {k: codec.decode(v) if v else v for k, v in entries.items()} == {
        (0, b"a"): 5,
        (1, b"b"): 5,
        (1, b"c"): None,  # a tombstone
    }
    assert manager.take_changelog() == []
    # The checkpoint keeps the changelog offset each store caught up to.
    manager.checkpoint({("seen", 1): 42})
    assert manager.changelog_offset("seen", 1) == 42
    assert manager.changelog_offset("seen", 0) is None
    assert manager.drop("seen", 1) == 1  # b"b" (b"c" was deleted)
    assert manager.changelog_offset("seen", 1) is None


def test_a_source_state_is_keyed_by_its_replica() -> None:
    manager = StateManager(
        "src",
        {"seen": _Count.seen},
        lambda _: MemoryStore(),
        changelog=True,
        source=True,
        own_key=b"replica-1",
    )
    own = manager.own
    assert isinstance(own, RecordScope) and own.key == b"replica-1" and not own.keyed
    manager.write("seen", own, 7)
    assert manager.take_changelog() == []  # not before the records it follows are out
    manager.apply_own(manager.own_snapshot())
    manager.apply_own(manager.own_snapshot())  # nothing changed since: nothing more
    [entry] = manager.take_changelog()
    assert (entry.partition, entry.key) == (0, b"replica-1")


def test_run_streamlet_takes_a_state_dir_and_run_local_gives_each_process_its_own(
    blueprint: VerifiedBlueprint, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["run-streamlet", "--help"])
    assert "--state-dir" in result.output
    assert ProcessOptions.layered({}).state_dir == DEFAULT_STATE_DIR
    given = ProcessOptions.layered({}, state_dir=tmp_path)
    assert given.state_dir == tmp_path
    supervisor = Supervisor(blueprint, "blueprint.yaml", run_dir=tmp_path / "run")
    supervisor.state_dir = tmp_path / "run" / "state"
    from runner.kafka.supervisor import _Child

    command = supervisor._command(_Child("count", 1, False, tmp_path), "127.0.0.1:9092")
    assert command[command.index("--state-dir") + 1] == str(tmp_path / "run" / "state")
