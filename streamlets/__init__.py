"""streamlets: typed streaming components wired into verified blueprints.

The SDK a user writes against: :class:`Streamlet`, its ports :class:`Inlet` and
:class:`Outlet`, keyed :class:`State`, windows over event time (:class:`Window`; the types
and aggregates are in :mod:`streamlets.windows`), :func:`timer`, schemas and codecs, and
the one root exception :class:`StreamletsError`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from streamlets.errors import (
    CodecError,
    ConfigError,
    DecodeError,
    EncodeError,
    RecordValidationError,
    SchemaError,
    StreamletDefinitionError,
    StreamletsError,
)
from streamlets.meta import Meta
from streamlets.paths import OutputPath
from streamlets.ports import FromConfig, Inlet, Outlet, Routed
from streamlets.rejected import Rejected
from streamlets.state import State, StateError
from streamlets.streamlet import NoConfig, Streamlet
from streamlets.timers import timer
from streamlets.windows import Window, Windowed

try:
    __version__ = version("streamlets")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "CodecError",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "FromConfig",
    "Inlet",
    "Meta",
    "NoConfig",
    "Outlet",
    "OutputPath",
    "RecordValidationError",
    "Rejected",
    "Routed",
    "SchemaError",
    "State",
    "StateError",
    "Streamlet",
    "StreamletDefinitionError",
    "StreamletsError",
    "Window",
    "Windowed",
    "__version__",
    "timer",
]
