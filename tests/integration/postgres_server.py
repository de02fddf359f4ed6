"""A real PostgreSQL server for integration tests, from Debian's packages.

The server binaries are taken from the machine (``postgres`` and ``initdb`` on ``PATH`` or
under ``/usr/lib/postgresql/<version>/bin``); when there are none and the tests run as
root on a Debian machine, the ``postgresql`` package is installed first (without the
cluster Debian would create and start). PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` account (``nobody`` when there is none). Each server has
its own data directory, listens on a free loopback port with trust authentication, and is
stopped by the PID it was started with.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from runner.kafka.broker import free_port

#: Debian's switch that keeps the package's install from creating (and starting) a cluster.
_CREATECLUSTER = Path("/etc/postgresql-common/createcluster.conf")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be had on this machine; the message says why."""


def _bin_dir() -> Path | None:
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _install() -> None:
    """``apt-get install postgresql`` (root on Debian only), once per machine."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable(
            "PostgreSQL is not installed and cannot be installed here (needs root and "
            "apt-get); install Debian's 'postgresql' package to run these tests"
        )
    with open("/tmp/streamlets-postgres-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _bin_dir() is not None:
            return
        if not _CREATECLUSTER.exists():
            _CREATECLUSTER.parent.mkdir(parents=True, exist_ok=True)
            _CREATECLUSTER.write_text("create_main_cluster = false\n")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or _bin_dir() is None:
            raise PostgresUnavailable(
                f"apt-get install postgresql failed: {(done.stderr or done.stdout)[-500:]}"
            )


def _account() -> pwd.struct_passwd | None:
    """The account the server runs as: ``None`` (this one) unless this one is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root, and there is no 'postgres' or 'nobody' account")


class PostgresServer:
    """One PostgreSQL server in a temporary directory: :meth:`start`, :meth:`stop` (and start
    again on the same port and data), :meth:`close` to remove it all."""

    USER = "streamlets"

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            _install()
            bin_dir = _bin_dir()
        assert bin_dir is not None
        self.bin_dir = bin_dir
        self.account = _account()
        self.root = Path(tempfile.mkdtemp(prefix="streamlets-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )

    def _user(self) -> dict[str, int]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid}

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False, **self._user())
        if done.returncode != 0:
            raise PostgresUnavailable(f"{command[0]} failed: {done.stderr[-500:]}")

    def dsn(self, database: str = "postgres") -> str:
        """The connection string of ``database`` on this server."""
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it takes connections."""
        import psycopg

        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            **self._user(),
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"PostgreSQL did not start: {self.log.read_text()[-1000:]}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server by its PID (fast shutdown: connections are cut)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
