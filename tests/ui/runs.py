"""Starting ``flow run-local --ui`` (or ``flow ui``) as a process and finding its view."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
_URL = re.compile(r"live view: (http://\S+/)")


def write_app(directory: Path, blueprint: str) -> Path:
    """``blueprint.yaml`` (text) next to a copy of the tests' streamlets (``ui_app``)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "ui_app.py", directory / "ui_app.py")
    path = directory / "blueprint.yaml"
    path.write_text(blueprint)
    return path


class ViewRun:
    """A ``flow`` process that serves a live view; stopped by its PID."""

    def __init__(self, args: list[str], cwd: Path, timeout: float = 60.0) -> None:
        self.log = cwd / "flow-ui.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runner.cli", *args],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.url = self._wait_for_url(timeout)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _URL.search(self.text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"no live view address was printed:\n{self.text()}")

    def text(self) -> str:
        """What the process wrote so far."""
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url.rstrip("/") + path, timeout=10)

    def status(self) -> dict:
        return self.get("/api/status").json()

    def wait_status(self, check, timeout: float = 60.0) -> dict:  # type: ignore[no-untyped-def]
        """Poll ``/api/status`` until ``check(status)`` holds."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            status = self.status()
            if check(status):
                return status
            time.sleep(0.3)
        raise AssertionError(f"the status never matched: {status}\n{self.text()[-3000:]}")

    def interrupt(self) -> None:
        """One Ctrl-C (SIGINT to the process)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl-C until it exits (it drains, then keeps its view until the next one)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self.interrupt()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(2)
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()


@contextlib.contextmanager
def view_run(args: list[str], cwd: Path, timeout: float = 60.0) -> Iterator[ViewRun]:
    run = ViewRun(args, cwd, timeout)
    try:
        yield run
    finally:
        run.stop()
