"""A run's ``dead-letters.jsonl``: one JSON object per dead letter, as both runners write it.

The in-process runner writes each batch's dead letters as they happen; ``flow run-local
--kafka`` writes the ones it reads back from the dead-letter topics. The file is created
with the first one (a run without dead letters leaves none), and the first dead letter of
each streamlet is kept for the run's summary.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from runner.runtime.messages import DeadLetter

__all__ = ["DEAD_LETTER_FILE", "DeadLetterFile", "read_dead_letter_file"]

#: The file's name in a run directory.
DEAD_LETTER_FILE = "dead-letters.jsonl"
#: The latest dead letters kept in memory per streamlet (for a live view).
RECENT_DEAD_LETTERS = 20


class DeadLetterFile:
    """Appends dead letters to ``directory/dead-letters.jsonl`` (``directory`` ``None``:
    counts them only)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.path: Path | None = None  # set once the file exists
        self.count = 0
        #: The first dead letter of each streamlet, in the order they came.
        self.first: dict[str, DeadLetter] = {}
        #: The latest dead letters of each streamlet (at most RECENT_DEAD_LETTERS), newest last.
        self.recent: dict[str, deque[DeadLetter]] = {}
        self._file: IO[str] | None = None

    def write(self, dead: Iterable[DeadLetter]) -> None:
        """Append ``dead`` (and flush, so a reader sees them at once)."""
        wrote = False
        for item in dead:
            self.count += 1
            if item.streamlet not in self.first:
                self.first[item.streamlet] = item
                self.recent[item.streamlet] = deque(maxlen=RECENT_DEAD_LETTERS)
            self.recent[item.streamlet].append(item)
            if self.directory is None:
                continue
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self.path = self.directory / DEAD_LETTER_FILE
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps(item.as_json(), ensure_ascii=False) + "\n")
            wrote = True
        if wrote and self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Close the file (writing again opens it again, to append)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_dead_letter_file(path: Path) -> Iterator[tuple[int, DeadLetter | str]]:
    """(line number, dead letter) per line of a ``dead-letters.jsonl``; a line that is no
    dead letter gives the reason instead. Raises ``OSError`` when the file cannot be read."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield number, DeadLetter.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                yield number, f"{type(exc).__name__}: {exc}"
