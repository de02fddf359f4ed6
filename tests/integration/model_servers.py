"""Real model servers for integration tests and benchmarks, each in its own virtualenv.

- MLServer with its scikit-learn runtime (Open Inference Protocol V2), ``uvloop<0.22``.
- KServe's scikit-learn model server (V1): the ``kserve`` package from PyPI and the
  ``sklearnserver`` module of the KServe repository, which is not published on PyPI and is
  kept under ``kserve_sklearnserver/`` (Apache-2.0, unchanged).

Their dependency pins clash with each other and with this project, so each gets its own
virtualenv under ``.cache/model-servers/`` (created once with uv, reused while the pinned
requirements are the same). scikit-learn is pinned to the version of this interpreter so a
model saved here loads identically there. Servers listen on free loopback ports and are
stopped by the PID they were started with.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sklearn

from runner.kafka.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("STREAMLETS_MODEL_SERVERS_CACHE", ROOT / ".cache" / "model-servers"))
SKLEARNSERVER_SOURCE = Path(__file__).resolve().parent / "kserve_sklearnserver"

MLSERVER_REQUIREMENTS = (
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop<0.22",
    f"scikit-learn=={sklearn.__version__}",
)
KSERVE_REQUIREMENTS = (
    "kserve==0.21.0",
    "kserve-storage==0.21.0",
    f"scikit-learn=={sklearn.__version__}",
    "joblib",
    "pandas",
)


class ModelServerError(RuntimeError):
    """A model server could not be installed or started; the message says why."""


def _uv() -> list[str]:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found:
        return [found]
    return [sys.executable, "-m", "uv"]


def ensure_venv(name: str, requirements: tuple[str, ...]) -> Path:
    """The python of virtualenv ``name`` with ``requirements``, installed on first use.

    A marker file holds a digest of the requirements: a changed pin reinstalls. An
    exclusive file lock keeps two test processes from installing at once.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / name
    python = venv / "bin" / "python"
    marker = venv / ".requirements"
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and marker.exists() and marker.read_text() == digest:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        commands = [
            [*_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)],
            [*_uv(), "pip", "install", "--quiet", "--python", str(python), *requirements],
        ]
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ModelServerError(
                    f"installing {name} failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr}"
                )
        marker.write_text(digest)
    return python


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a served model server like Ctrl-C


@dataclass(frozen=True)
class ServedModel:
    """A joblib model file to serve under ``name`` (MLServer also serves the ``version``)."""

    name: str
    path: Path
    version: str | None = None


@dataclass
class ModelServer:
    """One model server process (MLServer or KServe sklearnserver) on a loopback port."""

    kind: str  # "mlserver" or "kserve"
    models: tuple[ServedModel, ...]
    workdir: Path
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)  # MLServer's gRPC port
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_url(self) -> str:
        """The address of MLServer's gRPC port (Open Inference Protocol)."""
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def protocol(self) -> str:
        """``v2`` for MLServer, ``v1`` for KServe."""
        return "v2" if self.kind == "mlserver" else "v1"

    def _command(self) -> tuple[list[str], dict[str, str], Path]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        if self.kind == "mlserver":
            python = ensure_venv("mlserver", MLSERVER_REQUIREMENTS)
            repo = self.workdir / "mlserver-models"
            for model in self.models:
                folder = repo / (f"{model.name}-{model.version}" if model.version else model.name)
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(model.path, folder / "model.joblib")
                parameters: dict[str, str] = {"uri": "./model.joblib"}
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
                "grpc_port": self.grpc_port,
                "metrics_endpoint": None,
                "parallel_workers": 0,
            }
            (repo / "settings.json").write_text(json.dumps(server))
            mlserver = python.parent / "mlserver"
            return [str(mlserver), "start", str(repo)], env, repo
        if self.kind == "kserve":
            python = ensure_venv("kserve", KSERVE_REQUIREMENTS)
            (model,) = self.models
            folder = self.workdir / f"kserve-{model.name}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(model.path, folder / "model.joblib")
            env["PYTHONPATH"] = str(SKLEARNSERVER_SOURCE)
            command = [
                str(python),
                "-m",
                "sklearnserver",
                f"--model_dir={folder}",
                f"--model_name={model.name}",
                f"--http_port={self.port}",
                f"--grpc_port={free_port()}",
                "--enable_grpc=false",
                "--workers=1",
            ]
            return command, env, folder
        raise ModelServerError(f"unknown model server kind {self.kind!r}")

    def start(self, timeout: float = 120.0) -> ModelServer:
        """Start the server and wait until every model is ready."""
        command, env, cwd = self._command()
        self.log_path = self.workdir / f"{self.kind}-{self.port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def ready_urls(self) -> list[str]:
        """The readiness URL of each model."""
        if self.kind == "mlserver":
            return [f"{self.url}/v2/models/{m.name}/ready" for m in self.models]
        return [f"{self.url}/v1/models/{m.name}" for m in self.models]

    def wait_ready(self, timeout: float) -> None:
        """Poll the readiness URLs until all answer 200 (or the process dies)."""
        deadline = time.monotonic() + timeout
        pending = self.ready_urls()
        while pending:
            if self.process is not None and self.process.poll() is not None:
                raise ModelServerError(
                    f"{self.kind} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            url = pending[0]
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        pending.pop(0)
                        continue
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ModelServerError(
                    f"{self.kind} not ready at {url} after {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server (its whole process group) and wait for it to go."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def serve_until_interrupted(self, announce: str) -> None:
        """Start the server, print ``announce`` and keep it running until Ctrl-C or SIGTERM
        (or until it exits by itself); then stop it."""
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.start()  # inside the try: Ctrl-C while it starts stops it too
            print(announce)
            while self.process is not None and self.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """SIGTERM the server by its PID (SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def running(
    kind: str, models: Mapping[str, Path] | tuple[ServedModel, ...], workdir: Path
) -> Iterator[ModelServer]:
    """Run a model server for the duration of the ``with`` block."""
    served = (
        tuple(ServedModel(name, path) for name, path in models.items())
        if isinstance(models, Mapping)
        else models
    )
    workdir.mkdir(parents=True, exist_ok=True)
    server = ModelServer(kind, served, workdir)
    try:
        yield server.start()
    finally:
        server.stop()
