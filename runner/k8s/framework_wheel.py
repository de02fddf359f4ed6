"""The installed streamlets framework as a wheel file, for an image that cannot get it from
an index (the framework is not published to one).

The wheel is made from what is installed - the framework's packages as Python imports
them and the distribution's metadata - so it needs neither the framework's source tree nor
a build tool nor the network, and it is the same whether the framework was installed from
a clone, from a wheel or in editable mode. Its bytes depend on the files only (fixed
timestamps, sorted entries): writing it again for the same framework gives the same file,
so a docker build can keep its cached layers.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import zipfile
from collections.abc import Iterator
from email.message import Message
from importlib import metadata
from pathlib import Path

from streamlets.errors import StreamletsError

__all__ = ["FRAMEWORK_PACKAGES", "FrameworkWheelError", "wheel_name", "write_framework_wheel"]

#: The top-level packages of the framework's distribution.
FRAMEWORK_PACKAGES = ("streamlets", "blueprint", "runner")
_DISTRIBUTION = "streamlets"
_TAG = "py3-none-any"
_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the same bytes on every build
#: The files a wheel of the framework carries: its modules, type markers and stubs, and the
#: live view's page (package data in pyproject.toml).
_SUFFIXES = (".py", ".typed", ".pyi", ".html", ".js", ".css")


class FrameworkWheelError(StreamletsError):
    """The installed framework cannot be packed into a wheel (e.g. it is not installed)."""


def _distribution() -> metadata.Distribution:
    try:
        return metadata.distribution(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise FrameworkWheelError(
            "the streamlets framework is not installed as a distribution (its metadata is "
            "missing), so there is nothing to put into the image: install it with "
            "'pip install /path/to/streamlets' (or the wheel 'make dist' builds)"
        ) from None


def wheel_name(version: str | None = None) -> str:
    """The file name of the framework's wheel: ``streamlets-<version>-py3-none-any.whl``."""
    version = version or _distribution().version
    return f"{_DISTRIBUTION}-{version}-{_TAG}.whl"


def _package_files(package: str) -> Iterator[tuple[str, Path]]:
    """(path in the wheel, file) for each module and marker file of ``package``."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise FrameworkWheelError(f"the framework's package '{package}' cannot be found")
    root = Path(locations[0])
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(_SUFFIXES):
                path = Path(directory, name)
                yield f"{package}/{path.relative_to(root).as_posix()}", path


def _metadata_text(dist: metadata.Distribution) -> str:
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if text:
        return text
    message: Message = dist.metadata  # type: ignore[assignment]
    return message.as_string()


def _entry_points_text(dist: metadata.Distribution) -> str:
    groups: dict[str, list[str]] = {}
    for entry in dist.entry_points:
        groups.setdefault(entry.group, []).append(f"{entry.name} = {entry.value}")
    return "".join(
        f"[{group}]\n" + "\n".join(lines) + "\n\n" for group, lines in sorted(groups.items())
    )


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_framework_wheel(directory: str | os.PathLike[str]) -> Path:
    """Write the installed framework's wheel into ``directory`` (created when missing);
    returns its path.

    Raises :class:`FrameworkWheelError` when the framework is not installed or a package of
    it cannot be found, and ``OSError`` when the file cannot be written.
    """
    dist = _distribution()
    version = dist.version
    info = f"{_DISTRIBUTION}-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for package in FRAMEWORK_PACKAGES:
        entries.extend((name, path.read_bytes()) for name, path in _package_files(package))
    entries += [
        (f"{info}/METADATA", _metadata_text(dist).encode()),
        (
            f"{info}/WHEEL",
            (
                "Wheel-Version: 1.0\nGenerator: streamlets (flow dockerfile)\n"
                f"Root-Is-Purelib: true\nTag: {_TAG}\n"
            ).encode(),
        ),
        (f"{info}/entry_points.txt", _entry_points_text(dist).encode()),
        (f"{info}/top_level.txt", "".join(f"{p}\n" for p in FRAMEWORK_PACKAGES).encode()),
    ]
    record = "".join(_record_line(name, data) + "\n" for name, data in entries)
    record += f"{info}/RECORD,,\n"
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    path = target / wheel_name(version)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in [*entries, (f"{info}/RECORD", record.encode())]:
            item = zipfile.ZipInfo(name, _DATE)
            item.compress_type = zipfile.ZIP_DEFLATED
            item.external_attr = 0o644 << 16
            wheel.writestr(item, data)
    os.replace(tmp, path)
    return path
