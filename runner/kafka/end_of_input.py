"""The cue that every bounded input of a supervised run has ended, for windows.

On Kafka a streamlet process cannot tell the end of its input from a pause: a topic has no
end, and a SIGTERM means a restart or a rebalance as often as the end of a run, so a
process that closed its windows on SIGTERM would emit windows half full after every
deploy. ``flow run-local --kafka`` knows better: once every bounded source has ended and
every consumer group has caught up, it creates an *end-of-input file* per windowed
streamlet (``--end-of-input-file``, given to those processes only), in the order the
graph runs (a windowed streamlet downstream of another is cued once the upstream one has
closed its windows and its results have been read). A process that sees its file while
its input is idle closes and emits every open window of its partitions, commits, and
says so in its status file; then the supervisor ends the run. A process restarted after
the cue sees the file again (its windows, restored from the changelog, close again: none
are emitted twice once their closing was committed). Deployed processes are never given
the file: their windows close as stream time passes them.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["EndOfInput", "cue_file"]

#: Seconds between two looks at the file.
CHECK_SECONDS = 0.25


def cue_file(run_dir: Path, streamlet: str) -> Path:
    """The end-of-input file of ``streamlet`` in a run directory."""
    return run_dir / "end-of-input" / streamlet


class EndOfInput:
    """Looks (at most every :data:`CHECK_SECONDS`) whether the end-of-input file exists."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done = False  # the windows were closed for it
        self._checked = 0.0

    def arrived(self) -> bool:
        """Whether the cue has come and has not been acted on yet."""
        if self.path is None or self.done:
            return False
        now = time.monotonic()
        if now - self._checked < CHECK_SECONDS:
            return False
        self._checked = now
        return self.path.exists()
