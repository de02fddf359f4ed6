"""Fresh virtual environments for tests that install the framework as a user does.

Such a test creates a venv with nothing in it, runs the install commands the README (or a
generated Dockerfile) gives, and then uses only that venv's ``python``, ``pip`` and
``flow``: whatever the clone's own ``.venv`` has installed does not count. The packages
come from the same index (and pip cache) as the clone's ``.venv``, so this takes about a
minute; the tests that do it are marked ``slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "Venv", "fresh_venv"]

ROOT = Path(__file__).resolve().parents[1]
_INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class Venv:
    """A virtual environment at ``path``."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a user of this venv has: its bin first on PATH, nothing of the
        clone's venv or source tree on PYTHONPATH."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        env.update(extra)
        return env

    def run(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path,
        timeout: float = 300,
        check: bool = True,
        **extra_env: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (``pip``, ``flow``, ... are this venv's) in ``cwd``."""
        argv = [str(a) for a in args]
        if not os.path.isabs(argv[0]) and self.bin(argv[0]).exists():
            argv[0] = str(self.bin(argv[0]))
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc

    def pip_install(self, *args: str | os.PathLike[str], cwd: Path) -> None:
        """``pip install --quiet ARGS`` in this venv (a long timeout: it may download)."""
        self.run(["pip", "install", "--quiet", *args], cwd=cwd, timeout=_INSTALL_TIMEOUT)


def fresh_venv(path: Path) -> Venv:
    """A new, empty virtual environment at ``path`` (pip only, as ``python -m venv`` makes it)."""
    subprocess.run(
        [sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, timeout=120
    )
    return Venv(path)
