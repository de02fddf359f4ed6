"""The live view of a running pipeline, in the browser (``flow run-local --ui``,
``flow run-local --kafka --ui``, ``flow ui --metrics``).

A page served from the process that runs (or watches) the pipeline draws the blueprint's
graph and updates it from server-sent events; the same data is JSON under ``/api/``. The
page's code is plain HTML, CSS and JavaScript shipped in this package (``static/``): no
build step, nothing fetched from the internet.
"""

from __future__ import annotations

from runner.ui.launch import linger, start_view
from runner.ui.local_source import LocalSource
from runner.ui.server import UiServer, is_loopback
from runner.ui.view import LiveView, Reading, Source, StreamletReading

__all__ = [
    "LiveView",
    "LocalSource",
    "Reading",
    "Source",
    "StreamletReading",
    "UiServer",
    "is_loopback",
    "linger",
    "start_view",
]
