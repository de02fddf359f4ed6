"""Config fields that name a file a streamlet writes: ``path: OutputPath``.

``OutputPath`` is a :class:`~pathlib.Path` to pydantic and to type checkers; the marker
tells ``flow deploy`` that the streamlet writes there, so it can warn when the path is on
the pod's read-only root filesystem. (A path field of a sink, a streamlet without outlets,
is taken as one it writes even without the marker.)
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic.fields import FieldInfo

__all__ = ["OutputPath", "is_written_path"]


class _Writes:
    """The marker of :data:`OutputPath`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Writes"


_WRITES = _Writes()

#: A config field holding the path of a file the streamlet writes (see the module).
OutputPath = Annotated[Path, _WRITES]


def _annotation_marks(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        _, *extras = typing.get_args(annotation)
        if any(isinstance(e, _Writes) for e in extras):
            return True
    return any(_annotation_marks(a) for a in typing.get_args(annotation))


def is_written_path(info: FieldInfo) -> bool:
    """Whether the config field ``info`` is declared :data:`OutputPath` (also inside
    ``OutputPath | None``)."""
    return any(isinstance(m, _Writes) for m in info.metadata) or _annotation_marks(info.annotation)
