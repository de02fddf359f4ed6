"""Blueprints: parse a blueprint, build its graph and verify it.

``verify(path)`` reads the file and returns one frozen :class:`Verification`: every
:class:`Problem` found (file order), ``ok``, and the :class:`VerifiedBlueprint` when there
is no error; ``verify(path).unwrap()`` gives the blueprint or raises
:class:`InvalidBlueprint` listing the problems. ``verify_source`` does the same for text
that is already read (a :class:`BlueprintSource`).

Reading files happens in one step (``blueprint.source``), and importing the streamlet
classes in one module behind a :data:`ClassLoader` (``blueprint.classes``): pass a loader
that returns classes from a mapping and verification imports nothing (unless a streamlet's
``Config`` imports a ``module:Class`` of its own). ``sys.path`` is as it was once verify
returns; code that runs the streamlets does so inside :func:`user_code_path`, so that they
can import the modules next to their blueprint.
"""

from __future__ import annotations

from blueprint.classes import ClassLoader, ClassLoadFailure, load_streamlet_class, user_code_path
from blueprint.declarations import PortRef
from blueprint.model import StreamletSpec, TopicSpec, VerifiedBlueprint
from blueprint.overrides import ConfigOverrides, OverrideSyntaxError, load_overrides
from blueprint.problems import PROBLEM_CODES, Location, Problem, Severity
from blueprint.resources import ResourceSpec
from blueprint.result import InvalidBlueprint, Verification
from blueprint.source import BlueprintSource, read_blueprint
from blueprint.verify import verify, verify_source

__all__ = [
    "PROBLEM_CODES",
    "BlueprintSource",
    "ClassLoadFailure",
    "ClassLoader",
    "ConfigOverrides",
    "InvalidBlueprint",
    "Location",
    "OverrideSyntaxError",
    "PortRef",
    "Problem",
    "ResourceSpec",
    "Severity",
    "StreamletSpec",
    "TopicSpec",
    "Verification",
    "VerifiedBlueprint",
    "load_overrides",
    "load_streamlet_class",
    "read_blueprint",
    "user_code_path",
    "verify",
    "verify_source",
]
