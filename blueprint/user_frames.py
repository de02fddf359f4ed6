"""Where in the user's code something went wrong: the innermost stack frame that is neither
the framework's (``streamlets``, ``blueprint``, ``runner``) nor the standard library's nor an
installed package's, shown as ``path:line`` relative to the current directory."""

from __future__ import annotations

import os
import re
import sysconfig
import traceback
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["UserFrame", "is_user_file", "show_path", "user_frame_in_trace", "user_frame_of"]

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<name>.+)$')


@dataclass(frozen=True, slots=True)
class UserFrame:
    """A frame of the user's code: file, line and function."""

    file: str
    line: int
    name: str = ""

    def __str__(self) -> str:
        return f"{show_path(self.file)}:{self.line}"


@cache
def _not_user_dirs() -> tuple[str, ...]:
    root = Path(__file__).resolve().parents[1]
    dirs = {str(root / package) for package in ("streamlets", "blueprint", "runner")}
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.add(os.path.realpath(paths[key]))
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


def is_user_file(path: str) -> bool:
    """Whether ``path`` is a file of the user's code (not the framework, the standard
    library, an installed package, or no file at all, such as ``<frozen importlib...>``)."""
    if not path or path.startswith("<"):
        return False
    real = os.path.realpath(path)
    return not real.startswith(_not_user_dirs())


def show_path(path: str) -> str:
    """``path`` relative to the current directory when it is below it, else as it is."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if rel.startswith(os.pardir) else rel


def user_frame_of(exc: BaseException) -> UserFrame | None:
    """The innermost frame of the user's code in ``exc``'s traceback; for a
    :class:`SyntaxError` in the user's file, the place of the error."""
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        return UserFrame(exc.filename, exc.lineno or 0)
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if is_user_file(frame.filename):
            return UserFrame(frame.filename, frame.lineno or 0, frame.name)
    return None


def user_frame_in_trace(text: str) -> UserFrame | None:
    """The innermost frame of the user's code in a formatted traceback (``text``), such as
    a dead letter's stack trace."""
    found = None
    for line in text.splitlines():
        match = _FRAME.match(line)
        if match and is_user_file(match["file"]):
            found = UserFrame(match["file"], int(match["line"]), match["name"])
    return found
