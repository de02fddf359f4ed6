"""The life of one streamlet instance, the same on both runners: ``setup()``, the run,
``teardown()``; blocking hooks off the event loop; failures that name the streamlet, the
hook and the line of the user's code.

Sync hooks (``setup()``, ``teardown()``, and a sync ``generate()``, see
:mod:`runner.runtime.sources`) run in a worker thread of their own, so a hook that blocks
(a slow connection, a ``time.sleep``) stalls neither the other streamlets of an in-process
run nor a stop request. ``process()`` stays on the runner's thread: it is the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import sysconfig
import threading
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from runner.runtime.executor import Executor
from streamlets.errors import StreamletsError

__all__ = ["LifecycleError", "in_thread", "instance_lifecycle", "run_hook", "user_location"]

log = logging.getLogger("streamlets.runner")

T = TypeVar("T")

# Frames in these directories are the framework's or the interpreter's, not the user's.
_NOT_USER = tuple(
    os.path.abspath(p) + os.sep
    for p in {
        os.path.dirname(os.path.dirname(__file__)),  # runner/
        sysconfig.get_path("stdlib"),
        sysconfig.get_path("platstdlib"),
    }
)


def user_location(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``'s traceback in the user's code
    (outside the runner and the standard library); ``""`` when there is none."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        if not path.startswith(_NOT_USER) and "site-packages" not in path:
            return f"{_relative(frame.filename)}:{frame.lineno}"
    return ""


def _relative(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


def user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without the framework's own frames (the user's code and the
    libraries it called)."""
    summary = traceback.TracebackException.from_exception(exc)
    runner_dir = _NOT_USER[0] if _NOT_USER else ""
    summary.stack = traceback.StackSummary.from_list(
        [f for f in summary.stack if not os.path.abspath(f.filename).startswith(runner_dir)]
    )
    return "".join(summary.format()).rstrip()


class LifecycleError(StreamletsError):
    """A streamlet's ``setup()``, ``generate()`` or ``teardown()`` raised.

    The message names the streamlet, the hook and the line of the user's code that raised;
    ``cause`` is the original exception and ``details`` its traceback (user frames only).
    """

    def __init__(self, streamlet: str, hook: str, cause: BaseException) -> None:
        self.streamlet = streamlet
        self.hook = hook
        self.cause = cause
        self.where = user_location(cause)
        at = f" at {self.where}" if self.where else ""
        super().__init__(
            f"streamlet '{streamlet}': {hook}() failed{at}: {type(cause).__name__}: {cause}"
        )
        self.__cause__ = cause

    @property
    def details(self) -> str:
        """The traceback of ``cause``, without the framework's frames."""
        return user_traceback(self.cause)


async def in_thread(func: Callable[[], T], *, name: str) -> T:
    """``func()`` in a new daemon thread, awaited on the running loop.

    A daemon thread, not the loop's default executor: a hook that never returns must not
    keep the process from exiting (``asyncio.run`` waits for the default executor).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = func()
        except BaseException as exc:
            outcome: tuple[Any, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        # A closed loop: nobody waits for the result any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


async def run_hook(executor: Executor, hook: str) -> None:
    """Run the instance's ``setup`` or ``teardown`` hook: ``async def`` on the loop, a plain
    method in a worker thread; a failure is a :class:`LifecycleError`."""
    method = getattr(executor.instance, hook)
    try:
        if inspect.iscoroutinefunction(method):
            await method()
            return
        result = await in_thread(method, name=f"{executor.name}.{hook}")
        if inspect.isawaitable(result):
            await result
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise LifecycleError(executor.name, hook, exc) from exc


@asynccontextmanager
async def instance_lifecycle(executor: Executor) -> AsyncIterator[None]:
    """``setup()`` before the block, ``flush()`` after it when it succeeded, and
    ``teardown()`` after it whatever happens in it.

    A failing ``teardown()`` is the run's error when the block succeeded; after an earlier
    failure it is logged and the earlier failure stands.
    """
    await run_hook(executor, "setup")
    failed = False
    try:
        yield
        await run_hook(executor, "flush")
    except BaseException:
        failed = True
        raise
    finally:
        try:
            await run_hook(executor, "teardown")
        except LifecycleError as exc:
            if not failed:
                raise
            log.error("%s (after an earlier failure)", exc)
