"""A source's record that does not fit its outlet is dead-lettered, and the source goes on."""

from __future__ import annotations

from typing import Any

import pytest

from runner.testkit import run_streamlet
from streamlets import Outlet, Streamlet

ITEM: dict[str, Any] = {
    "type": "record",
    "name": "Item",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}


def item(i: int, **changes: Any) -> dict[str, Any]:
    return {"id": i, "name": f"n{i}", **changes}


class BadSource(Streamlet):
    """Generates one record that fits and one that does not (a string where a long goes)."""

    out = Outlet(ITEM)

    def generate(self) -> Any:
        yield item(1)
        yield item(2, id="two")


class BadRoutingSource(Streamlet):
    """The same through outlet.emit() with two outlets (the routed path)."""

    out = Outlet(ITEM)
    other = Outlet(ITEM)

    def generate(self) -> Any:
        yield self.out.emit(item(1))
        yield self.other.emit(item(2, id="two"))


@pytest.mark.parametrize("cls", [BadSource, BadRoutingSource])
def test_a_generated_record_that_does_not_fit_is_dead_lettered_with_its_repr(
    cls: type[Streamlet],
) -> None:
    result = run_streamlet(cls)
    assert result.outputs["out"] == [item(1)]
    assert result.outputs.get("other", []) == []
    (letter,) = result.dead_letters
    assert letter.stage == "encode"
    assert "'two'" in letter.original.value.decode()
