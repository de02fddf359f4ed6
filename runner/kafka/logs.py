"""Structured logs of a streamlet process: JSON lines when not on a terminal, text on one."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "client_log", "configure_logging"]

#: librdkafka's own log lines (every client passes it as ``logger``), routed through logging
#: so that they are JSON lines too.
client_log = logging.getLogger("streamlets.runner.kafka.client")


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
