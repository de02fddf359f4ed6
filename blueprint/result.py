"""The result of verification: the verified blueprint or every problem found, as one value."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from blueprint.model import VerifiedBlueprint
from blueprint.problems import Problem, Severity
from streamlets.errors import StreamletsError

__all__ = ["InvalidBlueprint", "Verification"]


def _summary(problems: Sequence[Problem]) -> str:
    counts = Counter(p.severity for p in problems)
    parts = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.NOTE):
        n = counts.get(severity, 0)
        if n:
            parts.append(f"{n} {severity.value}{'s' if n != 1 else ''}")
    return ", ".join(parts)


class InvalidBlueprint(StreamletsError):
    """A blueprint with errors was used where a verified one is needed.

    ``problems`` holds every problem verification found (file order); the message lists
    them, one per line, as ``flow verify`` prints them.
    """

    def __init__(self, problems: Sequence[Problem], file: str = "") -> None:
        self.problems = tuple(problems)
        self.file = file
        name = f"blueprint {file}" if file else "the blueprint"
        lines = [f"{name} is invalid ({_summary(self.problems) or 'no problems recorded'}):"]
        lines.extend(f"  {p}" for p in self.problems)
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class Verification:
    """What verifying a blueprint found.

    ``problems`` is every problem (errors, warnings and notes) in file order, those
    without a location last. ``blueprint`` is the :class:`VerifiedBlueprint` when there is
    no error, else ``None``. ``file`` names the blueprint as problems do.
    """

    problems: tuple[Problem, ...]
    blueprint: VerifiedBlueprint | None = None
    file: str = ""

    def __post_init__(self) -> None:
        if (self.blueprint is None) == (not self.errors):
            raise ValueError(
                "a Verification has a blueprint exactly when it has no errors; "
                f"got blueprint={self.blueprint is not None} with {len(self.errors)} error(s)"
            )

    @property
    def ok(self) -> bool:
        """Whether the blueprint is valid (it may still have warnings and notes)."""
        return self.blueprint is not None

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems that make the blueprint invalid."""
        return tuple(p for p in self.problems if p.is_error)

    def unwrap(self) -> VerifiedBlueprint:
        """The verified blueprint; raises :class:`InvalidBlueprint` listing every problem."""
        if self.blueprint is None:
            raise InvalidBlueprint(self.problems, self.file)
        return self.blueprint
