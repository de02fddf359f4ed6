"""The live view's web server (aiohttp, in a thread of its own): the page, its static
files, the JSON under ``/api/`` and the server-sent events that update the page.

One reading of the run is taken every :data:`INTERVAL` seconds, whatever the number of
pages open, and pushed to each of them on ``/api/events`` (``event: status``, the JSON of
``/api/status``): pages never poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from runner.ui.view import LiveView

__all__ = ["INTERVAL", "UiServer", "is_loopback"]

log = logging.getLogger("streamlets.runner.ui")

#: Seconds between readings (and so between the page's updates).
INTERVAL = 0.5
#: Seconds between keep-alive comments on an event stream that has nothing new.
KEEPALIVE = 15.0

_STATIC = Path(str(resources.files("runner.ui") / "static"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


class UiServer:
    """Serves ``view`` on ``host``:``port`` (0: a free port) from a daemon thread."""

    def __init__(
        self,
        view: LiveView,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float = INTERVAL,
    ) -> None:
        self.view = view
        self.host = host
        self.interval = interval
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._changed: asyncio.Condition | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The page's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # -- handlers ------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(_STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _blueprint(self, request: web.Request) -> web.Response:
        return _json(self.view.graph())

    async def _status(self, request: web.Request) -> web.Response:
        return _json(self.view.status())

    async def _streamlet(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self.view.streamlet, name)
        if found is None:
            return _json({"error": f"no streamlet '{name}' in the blueprint"}, 404)
        return _json(found)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        changed = self._changed
        assert changed is not None
        seen = -1
        try:
            await response.write(b"retry: 1000\n\n")
            while True:
                if self.view.seq != seen:
                    seen = self.view.seq
                    data = json.dumps(self.view.status(), ensure_ascii=False)
                    await response.write(f"id: {seen}\nevent: status\ndata: {data}\n\n".encode())
                    continue
                last = seen

                def moved(last: int = last) -> bool:
                    return self.view.seq != last

                async with changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait_for(moved), KEEPALIVE)
                if self.view.seq == seen:
                    await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    # -- running -------------------------------------------------------------------------

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        changed = self._changed
        assert changed is not None
        while True:
            try:
                await loop.run_in_executor(None, self.view.tick)
            except Exception:  # one bad reading must not end the view
                log.exception("the live view could not read the run")
            else:
                async with changed:
                    changed.notify_all()
            await asyncio.sleep(self.interval)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/api/blueprint", self._blueprint)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/streamlets/{name}", self._streamlet)
        app.router.add_get("/api/events", self._events)
        app.router.add_static("/static/", _STATIC)
        return app

    async def _serve(self) -> None:
        self._changed = asyncio.Condition()
        runner = self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.SockSite(runner, self._socket)
        await site.start()
        ticker = asyncio.create_task(self._tick())
        self._started.set()
        try:
            await asyncio.Event().wait()  # until the loop is stopped
        finally:
            ticker.cancel()

    def _thread_main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        main = loop.create_task(self._serve())
        try:
            loop.run_until_complete(main)
        except BaseException as exc:
            if not main.cancelled():
                self._error = exc
        finally:
            self._started.set()  # nobody waits for a server that ended
            with contextlib.suppress(Exception):
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def start(self) -> UiServer:
        """Serve in the background (returns once the server takes connections)."""
        self._thread = threading.Thread(target=self._thread_main, name="live-view", daemon=True)
        self._thread.start()
        # However long a loaded machine takes: the address is printed only once it serves.
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        loop = self._loop
        if loop is None or self._thread is None:
            return

        def cancel() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()

        with contextlib.suppress(RuntimeError):  # the loop has closed already
            loop.call_soon_threadsafe(cancel)
        self._thread.join(5)
