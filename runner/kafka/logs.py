"""Structured logs of a streamlet process: JSON lines when not on a terminal, text on one."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "FAILURE_REPORT_SECONDS",
    "ConnectionFailures",
    "JsonFormatter",
    "client_log",
    "configure_logging",
]

#: librdkafka's own log lines (every client passes it as ``logger``), routed through logging
#: so that they are JSON lines too.
client_log = logging.getLogger("streamlets.runner.kafka.client")

#: Seconds between two log lines about failed broker connections of one process.
FAILURE_REPORT_SECONDS = 10.0


class ConnectionFailures(logging.Filter):
    """Lets one of librdkafka's connection-failure lines through per ``interval`` seconds.

    librdkafka logs every failed attempt to connect to a broker (facility ``FAIL``), and
    its clients retry many times a second: a broker out of reach would flood the log. The
    line let through says that the client retries and how many failures were held back
    since the last one; it is a warning, since the client goes on by itself.
    """

    def __init__(
        self,
        interval: float = FAILURE_REPORT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: float | None = None
        self._held = 0
        self._lock = threading.Lock()  # clients log from their own threads

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged (it is rewritten when it is a failure let through)."""
        args = record.args
        # confluent-kafka logs ("%s [%s] %s", facility, client name, message).
        if not (isinstance(args, tuple) and len(args) == 3 and args[0] == "FAIL"):
            return True
        now = self.clock()
        with self._lock:
            if self._last is not None and now - self._last < self.interval:
                self._held += 1
                return False
            held = self._held
            self._last, self._held = now, 0
        _, client, message = args
        if held:
            said = f"{held} more failure(s) since the last such line"
        else:
            said = f"such failures are logged once every {self.interval:g} s"
        record.msg = "connection to a Kafka broker failed (client %s): %s; retrying (%s)"
        record.args = (client, message, said)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


client_log.addFilter(ConnectionFailures())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception, context)."""

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.context = context or {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self.context,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    log_format: str = "auto", level: int = logging.INFO, context: dict[str, Any] | None = None
) -> None:
    """Log to stderr as ``text`` or ``json`` (``auto``: JSON unless stderr is a terminal)."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(context))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("streamlets").setLevel(level)
