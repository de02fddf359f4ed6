"""frozen_heap() keeps the collector out of a streaming run's way, and undoes that after."""

from __future__ import annotations

import gc

from runner.runtime.heap import MIDDLE_THRESHOLD, YOUNG_THRESHOLD, frozen_heap


def test_the_heap_is_frozen_inside_and_given_back_after_the_outermost_block() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    kept = [object()]  # tracked containers alive before the block are frozen with it
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD
        assert gc.get_threshold()[1] >= MIDDLE_THRESHOLD
        with frozen_heap():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the outer block is still open
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    assert kept


def test_the_heap_is_given_back_when_the_block_raises() -> None:
    gc.unfreeze()
    try:
        with frozen_heap():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold()[0] < YOUNG_THRESHOLD
