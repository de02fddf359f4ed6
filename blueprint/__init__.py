"""Blueprints: load a blueprint file, build its graph and verify it (pure: no I/O but reading).

``verify(path)`` returns a frozen :class:`VerifiedBlueprint` or the tuple of every
:class:`Problem` found.
"""

from __future__ import annotations

from blueprint.declarations import PortRef
from blueprint.model import StreamletSpec, TopicSpec, VerifiedBlueprint
from blueprint.overrides import ConfigOverrides, OverrideSyntaxError, load_overrides
from blueprint.problems import PROBLEM_CODES, Location, Problem, Severity
from blueprint.resources import ResourceSpec
from blueprint.verify import check, verify

__all__ = [
    "PROBLEM_CODES",
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
    "verify",
]
