"""Blueprints: load a blueprint file, build its graph and verify it (pure: no I/O but reading).

``verify(path)`` returns a frozen :class:`VerifiedBlueprint` or the tuple of every
:class:`Problem` found. The streamlet classes come from a :data:`ClassLoader`
(``blueprint.classes``); the default one imports them and leaves ``sys.path`` as it found
it, so code that runs the streamlets does so inside :func:`user_code_path`.
"""

from __future__ import annotations

from blueprint.classes import ClassLoader, ClassLoadFailure, load_streamlet_class, user_code_path
from blueprint.declarations import PortRef
from blueprint.model import StreamletSpec, TopicSpec, VerifiedBlueprint
from blueprint.overrides import ConfigOverrides, OverrideSyntaxError, load_overrides
from blueprint.problems import PROBLEM_CODES, Location, Problem, Severity
from blueprint.resources import ResourceSpec
from blueprint.verify import check, verify

__all__ = [
    "PROBLEM_CODES",
    "ClassLoadFailure",
    "ClassLoader",
    "ConfigOverrides",
    "Location",
    "OverrideSyntaxError",
    "PortRef",
    "Problem",
    "ResourceSpec",
    "Severity",
    "StreamletSpec",
    "TopicSpec",
    "VerifiedBlueprint",
    "check",
    "load_overrides",
    "load_streamlet_class",
    "user_code_path",
    "verify",
]
