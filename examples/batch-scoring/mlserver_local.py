"""Run MLServer (with its scikit-learn runtime) on a loopback port, for this example.

Self-contained, to copy into a project of your own: MLServer's dependency pins clash with
most applications', so it gets a virtualenv of its own under ``.cache/model-servers/``
(created on first use, with uv when it is installed, else pip; reused while the pinned
requirements stay the same). The model files are joblib dumps of scikit-learn models.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sklearn

REQUIREMENTS = (
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop<0.22",
    f"scikit-learn=={sklearn.__version__}",  # so the models load as they were saved
)
CACHE = Path(os.environ.get("STREAMLETS_MODEL_SERVERS_CACHE", Path.cwd() / ".cache/model-servers"))


class MLServerError(RuntimeError):
    """MLServer could not be installed or started; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def mlserver_executable() -> Path:
    """The ``mlserver`` command of MLServer's own virtualenv, installed on first use."""
    venv = CACHE / "mlserver"
    python = venv / "bin" / "python"
    marker = venv / ".requirements"
    digest = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()
    if not (python.exists() and marker.exists() and marker.read_text() == digest):
        shutil.rmtree(venv, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
        if uv:
            steps = [
                [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
                [uv, "pip", "install", "--quiet", "--python", str(python), *REQUIREMENTS],
            ]
        else:
            steps = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise MLServerError(f"installing MLServer failed:\n{done.stdout}{done.stderr}")
        marker.write_text(digest)
    return venv / "bin" / "mlserver"


@dataclass(frozen=True)
class Model:
    """A joblib model file served as ``name`` (and ``version``, when given)."""

    name: str
    path: Path
    version: str | None = None


@dataclass
class MLServer:
    """One MLServer process serving ``models`` on 127.0.0.1:``port``."""

    models: Sequence[Model]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"mlserver-{self.port}.log"

    def _repository(self) -> Path:
        repo = self.workdir / "mlserver-models"
        for model in self.models:
            folder = repo / (f"{model.name}-{model.version}" if model.version else model.name)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(model.path, folder / "model.joblib")
            parameters = {"uri": "./model.joblib"}
            if model.version:
                parameters["version"] = model.version
            settings = {
                "name": model.name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": parameters,
            }
            (folder / "model-settings.json").write_text(json.dumps(settings))
        server = {
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_endpoint": None,
            "parallel_workers": 0,
        }
        (repo / "settings.json").write_text(json.dumps(server))
        return repo

    def start(self, timeout: float = 120.0) -> MLServer:
        """Start the server and wait until every model answers ready."""
        if port_taken(self.port):
            raise MLServerError(
                f"port {self.port} on 127.0.0.1 is taken (another model server still "
                "running?); stop it, or pass another --port"
            )
        executable = mlserver_executable()
        repo = self._repository()
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(executable), "start", str(repo)],
                cwd=repo,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        for model in self.models:
            url = f"{self.url}/v2/models/{model.name}/ready"
            while not self._ready(url):
                if self.process.poll() is not None:
                    raise MLServerError(
                        f"MLServer exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise MLServerError(f"MLServer not ready after {timeout:.0f} s")
                time.sleep(0.1)
        return self

    @staticmethod
    def _ready(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the server's process group by its PID (SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server like Ctrl-C


def serve(server: MLServer, announce: str) -> int:
    """Start ``server``, print ``announce`` once it is ready, run until Ctrl-C or SIGTERM;
    returns the exit status: 0 when stopped, 1 when it could not start or exited."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()  # inside the try: Ctrl-C while it starts stops it too
        print(announce, flush=True)
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        code = server.process.returncode if server.process is not None else 1
        print(f"error: MLServer exited with {code}:\n{server.log_tail()}", file=sys.stderr)
        return 1
    except MLServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


@contextlib.contextmanager
def running(models: Sequence[Model], workdir: Path) -> Iterator[MLServer]:
    """An MLServer on a free port for the duration of the ``with`` block."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = MLServer(models, workdir)
    try:
        yield server.start()
    finally:
        server.stop()
