"""A real headless browser for the live view's tests: Debian's ``chromium`` driven by its
``chromedriver`` through selenium.

When the browser is missing and the tests run as root on a Debian machine, the packages
``chromium`` and ``chromium-driver`` are installed first (once per machine); elsewhere the
tests that need it are skipped, saying why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "chromium-driver")


class BrowserUnavailable(RuntimeError):
    """No headless browser can be had here; the message says why."""


def _present() -> bool:
    return CHROMEDRIVER.exists() and CHROMIUM.exists()


def install() -> None:
    """``apt-get install chromium chromium-driver`` unless they are there already."""
    if _present():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailable(
            "Chromium is not installed and cannot be installed here (needs root and apt-get); "
            "install Debian's 'chromium' and 'chromium-driver' packages to run these tests"
        )
    with open("/tmp/streamlets-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _present():
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not _present():
            said = (done.stderr or done.stdout)[-500:]
            raise BrowserUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {said}")


def chrome(width: int = 1400, height: int = 900) -> Any:
    """A new headless Chromium session (the caller quits it)."""
    install()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise BrowserUnavailable(
            f"selenium is not installed (the dev extra has it): {exc}"
        ) from exc
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root, Chromium's sandbox does not start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
