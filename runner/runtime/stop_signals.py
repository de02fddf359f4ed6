"""Ctrl-C and SIGTERM for the commands that run streamlets: drain first, then stop.

``flow run-local`` (in-process or ``--kafka``) and ``flow run-streamlet`` stop gently on
the first SIGINT or SIGTERM and at once on the next. :func:`stop_signals` installs that
pair of reactions on the running asyncio loop for the length of a block;
:func:`install_stop_signals` installs it for the rest of a process that has no loop.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["install_stop_signals", "stop_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _first_then_again(
    first: Callable[[str], None], again: Callable[[], None]
) -> Callable[[int], None]:
    """A handler that calls ``first(signal name)`` the first time and ``again()`` after."""
    count = 0

    def on_signal(signum: int) -> None:
        nonlocal count
        count += 1
        if count == 1:
            first(signal.Signals(signum).name)
        else:
            again()

    return on_signal


def install_stop_signals(first: Callable[[str], None], again: Callable[[], None]) -> None:
    """For the rest of the process (``signal.signal``): the first SIGINT/SIGTERM calls
    ``first(signal name)``, every later one ``again()``."""
    on_signal = _first_then_again(first, again)
    for signum in _SIGNALS:
        signal.signal(signum, lambda number, _frame: on_signal(number))


@contextmanager
def stop_signals(first: Callable[[str], None], again: Callable[[], None]) -> Iterator[None]:
    """While the block runs, the first SIGINT/SIGTERM calls ``first(signal name)`` and
    every later one ``again()``; the handlers are removed when the block ends.

    Call it from a coroutine on the main thread (elsewhere signals cannot be handled; the
    block then runs without them).
    """
    loop = asyncio.get_running_loop()
    on_signal = _first_then_again(first, again)
    installed = []
    for signum in _SIGNALS:
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
