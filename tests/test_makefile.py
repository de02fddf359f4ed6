"""`make demo`, the README's first command, on its happy path: quiet but for the demo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_make_demo_says_nothing_but_the_demo() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -o: the venv this test runs in is taken as installed (no reinstall under the tests).
    done = subprocess.run(
        ["make", "-o", ".venv/.installed", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for noise in ("Error", "ignored", "deprecated", "Traceback", "WARNING", "SIGTERM"):
        assert noise not in out, f"{noise!r} in make demo's output:\n{out}"
    assert "blueprint is invalid: " in out  # what verify catches in broken.yaml, shown
    assert "sensor-alerts: finished in" in out
    assert "the first alerts, of 98," in out
