"""Kubernetes: manifests for a verified blueprint, and the kubectl operations on them.

The manifest functions are pure (verified blueprint + options -> plain dicts); writing
YAML and calling kubectl live in their own modules.
"""

from __future__ import annotations

from runner.k8s.config import AppConfig, build_app_config
from runner.k8s.options import METRICS_PORT, DeployOptions
from runner.k8s.render import Manifest, Manifests, option_problems, render
from runner.k8s.writer import manifest_stream, write_manifests

__all__ = [
    "METRICS_PORT",
    "AppConfig",
    "DeployOptions",
    "Manifest",
    "Manifests",
    "build_app_config",
    "manifest_stream",
    "option_problems",
    "render",
    "write_manifests",
]
