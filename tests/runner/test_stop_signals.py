"""The first SIGINT/SIGTERM drains, the next stops at once: with and without an event loop."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from runner.runtime.stop_signals import install_stop_signals, stop_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_install_stop_signals_calls_first_then_again(restore_handlers: None) -> None:
    calls: list[str] = []
    install_stop_signals(calls.append, lambda: calls.append("again"))
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    assert calls == ["SIGTERM", "again", "again"]


def test_stop_signals_on_the_loop_for_the_block_only(restore_handlers: None) -> None:
    calls: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with stop_signals(calls.append, lambda: calls.append("again")):
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
        assert not loop.remove_signal_handler(signal.SIGINT)  # already removed

    asyncio.run(main())
    assert calls == ["SIGINT", "again"]
