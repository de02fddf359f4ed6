"""Ctrl-C and SIGTERM for the commands that run an application: drain first, then stop.

Both ``flow run-local`` and ``flow run-local --kafka`` stop gently on the first SIGINT or
SIGTERM and at once on the next; :func:`stop_signals` installs that pair of reactions on
the running asyncio loop for the length of a block.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["stop_signals"]


@contextmanager
def stop_signals(first: Callable[[str], None], again: Callable[[], None]) -> Iterator[None]:
    """While the block runs, the first SIGINT/SIGTERM calls ``first(signal name)`` and
    every later one ``again()``; the handlers are removed when the block ends.

    Call it from a coroutine on the main thread (elsewhere signals cannot be handled; the
    block then runs without them).
    """
    loop = asyncio.get_running_loop()
    count = 0

    def on_signal(signum: int) -> None:
        nonlocal count
        count += 1
        if count == 1:
            first(signal.Signals(signum).name)
        else:
            again()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
