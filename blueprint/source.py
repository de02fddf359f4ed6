"""Reading blueprint and config files: the only file I/O of the blueprint package.

Everything after this step works on the bytes or text read here, so a blueprint can be
verified from text that never was a file (a ConfigMap, a test).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["BlueprintSource", "read_blueprint", "read_bytes"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlueprintSource:
    """A blueprint's contents and where they came from.

    ``text`` is the YAML (bytes are decoded as UTF-8 during verification, so that bytes
    which are not UTF-8 give a problem with a line number, not an exception). ``display``
    names the file in every problem's location. ``directory`` is where ``module:Class``
    and relative ``Path`` config values resolve. ``path`` is the file it was read from
    (``""`` when the text came from elsewhere).
    """

    text: str | bytes
    display: str
    directory: str
    path: str = ""


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The contents of the file at ``path`` (raises ``OSError`` when it cannot be read)."""
    with open(path, "rb") as fh:
        return fh.read()


def read_blueprint(path: str | os.PathLike[str], *, display: str | None = None) -> BlueprintSource:
    """Read the blueprint file at ``path`` (raises ``OSError`` when it cannot be read).

    Its directory (made absolute against the current directory) is where its classes
    and relative config paths resolve; ``display`` (default: ``path``) names it in problems.
    """
    file = os.fspath(path)
    return BlueprintSource(
        text=read_bytes(file),
        display=display or file,
        directory=os.path.dirname(os.path.abspath(file)),
        path=file,
    )
