"""What the end of a run says about its dead letters, and when there are too many.

A mistake in a streamlet (a record of the wrong type returned, a plain record where an
outlet must be named) fails every record: the run then must not look like a success. The
summary names each streamlet's first error with the line of the user's code it points to,
and :func:`excesses` finds the streamlets that dead-lettered more than
``max_dead_letter_ratio`` of their records (Kafka Connect's ``errors.tolerance``, as a
share), after which ``flow run-local`` fails.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blueprint import VerifiedBlueprint
from blueprint.user_frames import show_path, user_frame_in_trace
from runner.runtime.messages import DeadLetter
from runner.runtime.stats import StreamletStats

__all__ = [
    "DEFAULT_MAX_DEAD_LETTER_RATIO",
    "RUNNING_MIN_RECORDS",
    "Excess",
    "error_entry",
    "excesses",
    "first_error_line",
    "records_seen",
    "summary_lines",
    "user_location",
]

#: The share of a streamlet's records that may go to dead letters before `flow run-local`
#: fails (``runner: {max_dead_letter_ratio: ...}`` or ``--max-dead-letter-ratio``).
DEFAULT_MAX_DEAD_LETTER_RATIO = 0.5
#: While a run goes on, a streamlet is judged once it has seen this many records (at the
#: end, whatever it saw).
RUNNING_MIN_RECORDS = 100


def records_seen(stats: StreamletStats, *, source: bool) -> int:
    """The records a streamlet handled: those it read, or for a source those it made
    (written or failed)."""
    return stats.records_out + stats.errors if source else stats.records_in


@dataclass(frozen=True, slots=True)
class Excess:
    """A streamlet that dead-lettered more of its records than allowed."""

    streamlet: str
    dead: int
    seen: int
    max_ratio: float

    def message(self) -> str:
        """One sentence: how many, of how many, against what limit, what to do."""
        share = self.dead / self.seen if self.seen else 1.0
        return (
            f"streamlet '{self.streamlet}' sent {self.dead:,} of its {self.seen:,} records "
            f"({share:.0%}) to dead letters, more than max_dead_letter_ratio "
            f"{self.max_ratio:g} allows: a mistake in its code, most likely (its first error "
            "is above); allow more with --max-dead-letter-ratio or "
            "'runner: {max_dead_letter_ratio: ...}' in the --config file"
        )


def excesses(
    blueprint: VerifiedBlueprint,
    stats: Mapping[str, StreamletStats],
    max_ratio: float | None,
    *,
    min_records: int = 0,
) -> list[Excess]:
    """The streamlets over ``max_ratio`` (``None``: no limit), among those that have seen
    at least ``min_records`` records."""
    if max_ratio is None:
        return []
    found = []
    for name, s in stats.items():
        spec = blueprint.streamlets.get(name)
        seen = records_seen(s, source=spec is not None and not spec.cls.inlets())
        if s.dead_lettered and seen >= max(min_records, 1) and s.dead_lettered > max_ratio * seen:
            found.append(Excess(name, s.dead_lettered, seen, max_ratio))
    return found


def user_location(dead: DeadLetter, blueprint: VerifiedBlueprint) -> str | None:
    """Where in the user's code ``dead`` failed: the innermost frame of the user's code in
    its stack trace, else (an error the framework raised about what the code returned) the
    method that handled the record; ``None`` for a record that failed before any user code
    ran (``decode``, ``validate``)."""
    frame = user_frame_in_trace(dead.stack_trace)
    if frame is not None:
        return f"{frame}, in {frame.name}" if frame.name else str(frame)
    if dead.stage not in ("process", "encode"):
        return None
    spec = blueprint.streamlets.get(dead.streamlet)
    if spec is None:
        return None
    cls = spec.cls
    attr = cls.__handlers__.get(dead.inlet or "") or ("process" if cls.inlets() else "generate")
    method = inspect.unwrap(getattr(cls, attr, None) or (lambda: None))
    try:
        path = inspect.getsourcefile(method)
        _, line = inspect.getsourcelines(method)
    except (OSError, TypeError):
        return None
    if path is None:
        return None
    return f"{show_path(path)}:{line}, in {cls.__name__}.{attr}"


def error_entry(dead: DeadLetter, blueprint: VerifiedBlueprint) -> dict[str, Any]:
    """A failed record as JSON-able data (for a live view, and a Kafka process's status):
    stage, error, where in the user's code (see :func:`user_location`), and where from."""
    return {
        "stage": dead.stage,
        "error_class": dead.error_class,
        "message": dead.error_message,
        "where": user_location(dead, blueprint),
        "inlet": dead.inlet,
        "topic": dead.original.topic or None,
        "partition": dead.original.partition,
        "offset": dead.original.offset,
    }


def first_error_line(dead: DeadLetter, blueprint: VerifiedBlueprint, count: int) -> str:
    """``  route: 1,000 dead letters, the first at process: Error: message (at app.py:9 ...)``."""
    where = user_location(dead, blueprint)
    at = f" (at {where})" if where else ""
    message = dead.error_message.strip().splitlines()[0] if dead.error_message.strip() else ""
    error = f"{dead.error_class}: {message}" if message else dead.error_class
    return (
        f"  {dead.streamlet}: {count:,} dead letter{'s' if count != 1 else ''}, the first at "
        f"stage {dead.stage}: {error}{at}"
    )


def summary_lines(
    blueprint: VerifiedBlueprint,
    stats: Mapping[str, StreamletStats],
    first: Mapping[str, DeadLetter],
    file: Path | None,
    *,
    where: str = "dead letters",
) -> list[str]:
    """The lines a run ends with when it had dead letters (none when it had none): how many
    went ``where``, the file that holds them and how to look at them, and each
    streamlet's count with its first error."""
    total = sum(s.dead_lettered for s in stats.values())
    if not total:
        return []
    head = f"{total:,} record(s) went to {where}"
    if file is not None:
        command = (
            f"flow dead-letters {show_path(blueprint.path)} --run-dir {show_path(str(file.parent))}"
        )
        head += f", written to {show_path(str(file))} (to look at them: {command})"
    lines = [head + ":"]
    for name, s in stats.items():
        if not s.dead_lettered:
            continue
        dead = first.get(name)
        if dead is None:
            lines.append(f"  {name}: {s.dead_lettered:,} dead letters")
        else:
            lines.append(first_error_line(dead, blueprint, s.dead_lettered))
    return lines
