"""What `flow deploy` warns about and refuses before a cluster would fail silently."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runner.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SENSORS = ROOT / "examples" / "sensors" / "blueprint.yaml"

MODULE = '''
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from streamlets import Inlet, Outlet, OutputPath, Streamlet


class Order(BaseModel):
    id: str


class Orders(Streamlet):
    """A source that cannot tell whether it ends."""

    out = Outlet(Order)

    def generate(self) -> Iterator[Order]:
        yield Order(id="1")


class Endless(Orders):
    def is_bounded(self) -> bool:
        return False


class Report(Streamlet):
    """Passes orders on and writes a report file (declared OutputPath)."""

    orders = Inlet(Order)
    out = Outlet(Order)

    class Config(BaseModel):
        report: OutputPath = Path("report.txt")
        model: Path = Path("model.bin")  # read, not written: no warning

    def process(self, order: Order) -> Order:
        return order
'''

BLUEPRINT = """
name: shop
streamlets:
  orders: {class: shop_app:Orders}
  ticks: {class: shop_app:Endless}
  file-in: {class: streamlets.library:FileSource, config: {path: in.jsonl, schema: shop_app:Order}}
  report: {class: shop_app:Report}
  big:
    class: streamlets.library:FileSink
    config: {path: output/big.jsonl, schema: shop_app:Order, mode: append}
topics:
  orders: {producers: [orders.out, ticks.out, file-in.out], consumers: [report.orders]}
  reported: {producers: [report.out], consumers: [big.records]}
"""


def flow(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "shop_app.py").write_text(MODULE)
    (tmp_path / "in.jsonl").write_text('{"id": "a"}\n')
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(BLUEPRINT))
    return path


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_files_written_outside_tmp_are_warned_about_with_the_fix(
    shop: Path, tmp_path: Path
) -> None:
    result = flow("deploy", str(shop), "--image", "shop:1", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    warnings = "\n".join(_warnings(result.stderr))
    # A FileSink's path (a sink's path field) and an OutputPath field, as the pod sees them.
    assert (
        "streamlet 'big' (FileSink) writes its config 'path' to /app/output/big.jsonl, on the "
        "pod's read-only root filesystem" in warnings
    )
    assert "--set big.path=/tmp/big.jsonl" in warnings
    assert "streamlet 'report' (Report) writes its config 'report' to /app/report.txt" in warnings
    assert "'model'" not in warnings  # a Path it reads
    # Moved to /tmp, nothing is said about them.
    result = flow(
        "deploy", str(shop), "--image", "shop:1", "-o", str(tmp_path / "out"),
        "--set", "big.path=/tmp/big.jsonl", "--set", "report.report=/tmp/r.txt",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not any("writes its config" in w for w in _warnings(result.stderr))


def test_sources_that_may_end_are_told_to_run_as_jobs(shop: Path, tmp_path: Path) -> None:
    result = flow("deploy", str(shop), "--image", "shop:1", "-o", str(tmp_path / "out"))
    warnings = _warnings(result.stderr)
    bounded = [w for w in warnings if "file-in" in w]
    assert bounded == [
        "warning: streamlet 'file-in' (FileSource) is a bounded source: as a Deployment its "
        "pod is restarted each time the source ends, and every start produces all its "
        "records again; deploy it with --job file-in (a Job runs it once, to completion)"
    ]
    unknown = [w for w in warnings if "'orders'" in w]
    assert len(unknown) == 1 and "--job orders" in unknown[0]
    assert "def is_bounded(self): return False" in unknown[0]
    assert not [w for w in warnings if "'ticks'" in w]  # it says it never ends
    result = flow(
        "deploy", str(shop), "--image", "shop:1", "-o", str(tmp_path / "out"),
        "--job", "file-in", "--job", "orders",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not [w for w in _warnings(result.stderr) if "--job" in w]
    assert (tmp_path / "out" / "job-file-in.yaml").exists()


@pytest.mark.parametrize(
    ("image", "found"),
    [
        ("bad image name!", "it has ' ' '!'"),
        ("Shop:1", "the name in lower case"),
        ("shop:", "does not fit"),
        ("", "is empty"),
    ],
)
def test_an_invalid_image_reference_is_refused(image: str, found: str, tmp_path: Path) -> None:
    result = flow("deploy", str(SENSORS), "--image", image, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "--image:" in result.output and found in result.output
    assert "not an image reference" in result.output or "is empty" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "image",
    ["shop:1", "registry.example.com:5000/team/shop:v1.2-rc_1", "ghcr.io/a/b@sha256:" + "0" * 64],
)
def test_valid_image_references_are_taken(image: str, tmp_path: Path) -> None:
    result = flow("deploy", str(SENSORS), "--image", image, "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert f"image: {image}" in (tmp_path / "out" / "deployment-threshold.yaml").read_text()
