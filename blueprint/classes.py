"""Loading streamlet classes named ``module:Class``, and the ``sys.path`` of user code.

Verification asks a :data:`ClassLoader` for each class; :func:`load_streamlet_class`, the
default, imports it. Modules resolve first against the blueprint file's directory, then
against installed packages. Failures come back as :class:`ClassLoadFailure` values with a
stable problem code, never as exceptions, because a user's module may fail in any way
while importing.

Importing changes the interpreter: the module stays in ``sys.modules`` (a cached module of
the same name from another directory is dropped first), but ``sys.path`` is as it was once
the loader returns. Code that runs user code later, and so may import the blueprint's
sibling modules, does so inside :func:`user_code_path`: verification while it validates
configs (a ``Config`` may import a ``module:Class`` of its own), the runners while they run.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TypeAlias

from blueprint.names import CLASS_PATH_HINT, class_path_problem, did_you_mean
from blueprint.user_frames import user_frame_of
from streamlets.streamlet import Streamlet

__all__ = ["ClassLoadFailure", "ClassLoader", "load_streamlet_class", "user_code_path"]


@dataclass(frozen=True, slots=True)
class ClassLoadFailure:
    """Why a ``module:Class`` reference could not be loaded as a streamlet class."""

    code: str
    message: str
    hint: str | None = None


#: Resolves ``(class_path, directory)`` to a streamlet class, or says why it cannot.
#: ``class_path`` is the blueprint's ``module:Class`` as written; ``directory`` is the
#: blueprint's directory, where the module is looked for first.
ClassLoader: TypeAlias = Callable[[str, str], type[Streamlet] | ClassLoadFailure]


@contextmanager
def user_code_path(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` while the ``with`` block runs.

    Run streamlets inside it: user code may import the modules next to its blueprint
    lazily, long after the blueprint was verified. On exit the entry added is removed
    again, so ``sys.path`` is as it was (nested uses with the same directory are fine).
    """
    entry = os.path.abspath(directory)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with suppress(ValueError):  # user code removed it already
            sys.path.remove(entry)


def _module_file_in(directory: str, module: str) -> str | None:
    base = os.path.join(directory, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _forget_stale(module: str, directory: str) -> None:
    """Drop cached modules that shadow a file in the blueprint's directory.

    Two blueprints in different directories may each bring a module of the same name (for
    instance ``streamlets_app``); the one next to the blueprint being verified must win.
    """
    top = module.split(".", maxsplit=1)[0]
    cached = sys.modules.get(top)
    if cached is None or _module_file_in(directory, top) is None:
        return
    cached_file = os.path.abspath(getattr(cached, "__file__", "") or "")
    if cached_file.startswith(os.path.abspath(directory) + os.sep):
        return
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            del sys.modules[name]


def _where(exc: BaseException) -> str:
    """`` (at app.py:3)``: the line of the user's module the import failed at, if any
    (for a SyntaxError the line of the error, not a frame of the import machinery)."""
    frame = user_frame_of(exc)
    return f" (at {frame})" if frame is not None else ""


def load_streamlet_class(path: str, directory: str) -> type[Streamlet] | ClassLoadFailure:
    """Import the class named by ``path`` (``module:Class``) relative to ``directory``.

    The default :data:`ClassLoader`. ``directory`` is on ``sys.path`` only while the module
    imports; a cached module of the same name that does not come from ``directory`` is
    dropped from ``sys.modules`` first, so that the module next to the blueprint wins.
    """
    if (why := class_path_problem(path)) is not None:
        return ClassLoadFailure(
            "invalid-class-path",
            f"class {path!r} is not of the form 'module:Class': {why}",
            CLASS_PATH_HINT,
        )
    module_name, _, qualname = path.partition(":")
    module_name, qualname = module_name.strip(), qualname.strip()
    directory = os.path.abspath(directory)
    _forget_stale(module_name, directory)
    try:
        with user_code_path(directory):
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            return ClassLoadFailure(
                "class-not-found",
                f"module '{module_name}' of class {path!r} was not found "
                f"(looked next to the blueprint in {directory} and in installed packages)",
                "check the spelling, or install the package that provides it",
            )
        return ClassLoadFailure(
            "import-error",
            f"module '{module_name}' failed to import: {type(exc).__name__}: {exc}{_where(exc)}",
            f"install '{missing}' or fix the import" if missing else None,
        )
    except (Exception, SystemExit) as exc:
        return ClassLoadFailure(
            "import-error",
            f"module '{module_name}' failed to import: {type(exc).__name__}: {exc}{_where(exc)}",
            "fix the error in the module; importing it must not fail",
        )
    obj: object = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            candidates = [n for n in dir(module) if not n.startswith("_")]

            return ClassLoadFailure(
                "class-not-found",
                f"module '{module_name}' has no class '{qualname}'",
                did_you_mean(qualname, candidates) or "check the class name after the ':'",
            )
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Streamlet)) or obj is Streamlet:
        return ClassLoadFailure(
            "not-a-streamlet",
            f"{path!r} is {_describe(obj)}, not a Streamlet subclass",
            "subclass streamlets.Streamlet and declare its inlets and outlets",
        )
    return obj


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__name__}"
