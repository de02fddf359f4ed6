"""Make the README's screenshot of the live view: the sensors example run with
``flow run-local --kafka --ui`` (or ``--local``: in-process), shown in headless Chromium.

    PYTHONPATH=. .venv/bin/python scripts/ui_screenshot.py [--local] [-o docs/live-view.png]

Needs Debian's ``chromium`` and ``chromium-driver`` (installed when run as root, as the
tests do) and ``selenium`` (the dev extra). The example is copied to a temporary
directory, so the run leaves nothing in the repository but the picture.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ui.browser import chrome  # noqa: E402
from tests.ui.runs import ViewRun  # noqa: E402


def _wait(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "live-view.png")
    parser.add_argument("--local", action="store_true", help="run in-process, not on Kafka")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        app = Path(scratch) / "sensors"
        shutil.copytree(
            ROOT / "examples" / "sensors",
            app,
            ignore=shutil.ignore_patterns("output", "runs", "__pycache__"),
        )
        command = ["run-local", "blueprint.yaml", "--ui", "-q"]
        if not args.local:
            command.append("--kafka")
        run = ViewRun(command, app, timeout=120)
        browser = chrome(1720, 600)
        try:
            browser.get(run.url)
            script = (
                "const s = document.getElementById('streamlet-store');"
                "return s ? Number(s.dataset.recordsIn || 0) : 0;"
            )
            _wait(lambda: browser.execute_script(script) > 0, 120, "records to flow")
            browser.find_element("id", "streamlet-threshold").click()

            def config_shown() -> str:
                return str(browser.find_element("id", "panel-config").text.strip())

            _wait(config_shown, 30, "the streamlet's panel")
            time.sleep(1.0)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(args.output))
            print(f"wrote {args.output}")
        finally:
            browser.quit()
            run.stop()


if __name__ == "__main__":
    main()
