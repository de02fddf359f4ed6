"""The fraud-counters example (examples/fraud-counters) on the in-process runner: its alerts
and its per-card state against a direct computation over the same transactions, a run
continued from a state directory, and state seeded through the testkit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.testkit import run_blueprint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-counters"
BLUEPRINT = EXAMPLE / "blueprint.yaml"
LIMIT = 1000.0  # the blueprint's daily_limit


def transactions(path: Path = EXAMPLE / "data" / "transactions.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def expected(
    rows: list[dict[str, Any]], seed: dict[str, tuple[str, float]] | None = None
) -> tuple[set[tuple[Any, ...]], dict[str, float]]:
    """Alerts (card, day, transaction, spent, lifetime) and lifetime spending per card,
    computed directly. The file is in time order, so each card's transactions are too."""
    day_spent: dict[tuple[str, str], float] = {
        (card, day): spent for card, (day, spent) in (seed or {}).items()
    }
    alerted: set[tuple[str, str]] = set()
    lifetime: dict[str, float] = {}
    alerts = set()
    for row in rows:
        card, day, amount = row["card_id"], row["at"][:10], row["amount"]
        lifetime[card] = lifetime.get(card, 0.0) + amount
        spent = day_spent[(card, day)] = day_spent.get((card, day), 0.0) + amount
        if spent > LIMIT and (card, day) not in alerted:
            alerted.add((card, day))
            alerts.add((card, day, row["id"], round(spent, 2), round(lifetime[card], 2)))
    return alerts, lifetime


def alert_rows(records: list[Any]) -> set[tuple[Any, ...]]:
    return {
        (a["card_id"], str(a["day"]), a["transaction_id"], a["spent"], a["lifetime"])
        for a in records
    }


def run_local(tmp_path: Path, *options: str) -> set[tuple[Any, ...]]:
    alerts = tmp_path / "alerts.jsonl"
    args = ["--set", f"alerts-file.path={alerts}", *options]
    result = CliRunner().invoke(
        cli, ["run-local", str(BLUEPRINT), "-q", "--run-dir", str(tmp_path / "run"), *args]
    )
    assert result.exit_code == 0, result.output
    return alert_rows([json.loads(line) for line in alerts.read_text().splitlines()])


def test_the_example_alerts_once_per_card_and_day_over_the_limit(tmp_path: Path) -> None:
    want, _ = expected(transactions())
    assert len({card for card, *_ in want}) > 1  # the data has alerts of several cards
    assert run_local(tmp_path) == want


def test_its_state_holds_each_cards_spending(tmp_path: Path) -> None:
    rows = transactions()
    want, lifetime = expected(rows)
    result = run_blueprint(
        BLUEPRINT, collect=["alerts"], sets=[f"alerts-file.path={tmp_path}/alerts.jsonl"]
    )
    assert result.error is None
    got = [a.model_dump() for a in result.topics["alerts"]]
    assert alert_rows(got) == want
    state = result.state["spending"]
    assert state["lifetime"] == pytest.approx(lifetime)
    last_day = {row["card_id"]: row["at"][:10] for row in rows}
    assert {card: str(s.day) for card, s in state["today"].items()} == last_day
    assert all(s.alerted == (s.spent > LIMIT) for s in state["today"].values())


def test_seeded_state_makes_a_card_alert_earlier(tmp_path: Path) -> None:
    rows = transactions()
    card, first_day = rows[0]["card_id"], rows[0]["at"][:10]
    from fraud.streamlets import Spending  # the example's module, on sys.path meanwhile

    seed = {card: (first_day, LIMIT - 1.0)}
    want, _ = expected(rows, seed)
    result = run_blueprint(
        BLUEPRINT,
        collect=["alerts"],
        sets=[f"alerts-file.path={tmp_path}/alerts.jsonl"],
        state={"spending": {"today": {card: Spending(day=first_day, spent=LIMIT - 1.0)}}},
    )
    assert result.error is None
    got = alert_rows([a.model_dump() for a in result.topics["alerts"]])
    # the card's first transaction takes it over the limit (lifetime counts from the run)
    assert any(a[0] == card and a[2] == rows[0]["id"] for a in got)
    assert {a[:3] for a in got} == {a[:3] for a in want}


@pytest.fixture(autouse=True)
def _example_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))


def test_a_state_dir_carries_the_spending_into_the_next_run(tmp_path: Path) -> None:
    """Two runs over the two halves of the stream, with one state directory, alert as one
    run over all of it: the second run starts from the first one's spending."""
    rows = transactions()
    half = len(rows) // 2
    parts = []
    for i, chunk in enumerate((rows[:half], rows[half:])):
        path = tmp_path / f"part-{i}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in chunk))
        parts.append(path)
    state_dir = tmp_path / "state"
    first = run_local(
        tmp_path / "1", "--state-dir", str(state_dir), "--set", f"transactions.path={parts[0]}"
    )
    # The second run reads another file: its source starts afresh (a source that keeps a
    # position would otherwise go on from where it stopped in the first file).
    shutil.rmtree(state_dir / "transactions", ignore_errors=True)
    second = run_local(
        tmp_path / "2", "--state-dir", str(state_dir), "--set", f"transactions.path={parts[1]}"
    )
    want, _ = expected(rows)
    assert first | second == want
    assert len(first) + len(second) == len(want)  # no card alerted twice for one day
    assert first and second  # the stream's alerts are not all in one half
    alone, _ = expected(rows[half:])
    assert second != alone  # the second run did go on from the first one's spending
