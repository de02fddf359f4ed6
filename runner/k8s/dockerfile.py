"""The Dockerfile of an application image, matching what the manifests expect.

The image has the streamlets framework and the application (the blueprint's directory,
copied to :data:`~runner.k8s.options.APP_DIR`) installed, runs as the non-root user
:data:`~runner.k8s.options.RUN_AS_USER`, writes nothing outside ``/tmp`` and has ``flow``
as its entrypoint; the Deployments pass ``run-streamlet BLUEPRINT NAME`` as arguments.

The framework comes from its source tree when the build context holds it (a checkout of
the framework, as for its examples), else from a wheel of the installed framework that
``flow dockerfile`` writes into the context (:mod:`runner.k8s.framework_wheel`): the
framework is on no package index.
"""

from __future__ import annotations

import os
import posixpath
import tomllib
from dataclasses import dataclass

import streamlets
from runner.k8s.framework_wheel import FRAMEWORK_PACKAGES, wheel_name
from runner.k8s.options import APP_DIR, METRICS_PORT, RUN_AS_USER

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "FRAMEWORK_PACKAGES",
    "WHEELS_DIR",
    "DockerfileError",
    "ImagePlan",
    "dockerfile",
    "plan_image",
]

DEFAULT_BASE_IMAGE = "python:3.11-slim"
_FRAMEWORK_FILES = ("pyproject.toml", "README.md")
#: Where in the build context ``flow dockerfile`` puts the framework's wheel.
WHEELS_DIR = "wheels"


class DockerfileError(streamlets.StreamletsError):
    """The image cannot be described (e.g. the blueprint is outside the build context)."""


@dataclass(frozen=True, slots=True)
class ImagePlan:
    """What goes into the image, with paths relative to the build context (POSIX style).

    ``framework_source`` is the framework's source tree when it is inside the build
    context (a checkout of the framework); otherwise the image installs the wheel
    ``framework_wheel`` (of ``framework_version``), which must be written into the context
    (:func:`~runner.k8s.framework_wheel.write_framework_wheel`) before the build.
    """

    app: str
    app_dir: str
    framework_source: str | None
    framework_version: str
    framework_wheel: str | None = None
    requirements: bool = False
    installable: bool = False
    base_image: str = DEFAULT_BASE_IMAGE


def _relative(path: str, context: str) -> str | None:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(context))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return rel.replace(os.sep, "/")


def _framework_root() -> str | None:
    """The framework's source tree, when it is installed from one (editable install)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(streamlets.__file__)))
    try:
        with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if project.get("name") == "streamlets" else None


def _has_requirements(path: str) -> bool:
    """Whether the requirements file at ``path`` names anything to install (pip refuses
    one of comments only)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.split("#", 1)[0].strip() for line in fh]
    except OSError:
        return False
    return any(lines)


def _installable(directory: str) -> bool:
    """Whether ``directory`` is a Python project pip can install: a ``setup.py``, or a
    ``pyproject.toml`` with a ``[project]`` table (one holding tool settings only is not)."""
    if os.path.isfile(os.path.join(directory, "setup.py")):
        return True
    try:
        with open(os.path.join(directory, "pyproject.toml"), "rb") as fh:
            return "project" in tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False


def plan_image(
    app: str, blueprint_dir: str, context: str, base_image: str = DEFAULT_BASE_IMAGE
) -> ImagePlan:
    """Decide what the image holds for the application whose blueprint is in ``blueprint_dir``.

    Raises :class:`DockerfileError` when the blueprint is outside the build ``context``.
    """
    app_dir = _relative(blueprint_dir, context)
    if app_dir is None:
        raise DockerfileError(
            f"the blueprint's directory {blueprint_dir} is not inside the build context "
            f"{os.path.abspath(context)}: run 'flow dockerfile' from a directory that "
            "contains it, or pass --context"
        )
    root = _framework_root()
    framework_source = _relative(root, context) if root is not None else None
    version = streamlets.__version__
    return ImagePlan(
        app=app,
        app_dir=app_dir,
        framework_source=framework_source,
        framework_version=version,
        framework_wheel=(
            None if framework_source is not None else f"{WHEELS_DIR}/{wheel_name(version)}"
        ),
        requirements=_has_requirements(os.path.join(blueprint_dir, "requirements.txt")),
        installable=_installable(blueprint_dir) and os.path.abspath(blueprint_dir) != root,
        base_image=base_image,
    )


def _src(rel: str, name: str) -> str:
    return name if rel == "." else posixpath.join(rel, name)


def dockerfile(plan: ImagePlan) -> str:
    """The Dockerfile text for ``plan``."""
    lines = [
        f"# Generated by 'flow dockerfile' for the application '{plan.app}'.",
        "# Build it with this directory as the context, e.g.:",
        "#   docker build -f Dockerfile -t IMAGE .",
        "# then 'flow deploy BLUEPRINT --image IMAGE'. Keep .venv, .git and the output of",
        "# 'flow deploy' (its secret.yaml) out of the context with a .dockerignore.",
        f"FROM {plan.base_image}",
        "",
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
        "",
    ]
    if plan.framework_source is not None:
        rel = plan.framework_source
        lines.append("# The streamlets framework, from its source tree.")
        files = " ".join(_src(rel, f) for f in _FRAMEWORK_FILES)
        lines.append(f"COPY {files} /opt/streamlets/")
        lines.extend(
            f"COPY {_src(rel, package)}/ /opt/streamlets/{package}/"
            for package in FRAMEWORK_PACKAGES
        )
        lines.append("RUN pip install /opt/streamlets")
    else:
        wheel = plan.framework_wheel or f"{WHEELS_DIR}/{wheel_name(plan.framework_version)}"
        installed = f"/tmp/{WHEELS_DIR}/{posixpath.basename(wheel)}"
        lines.append(
            f"# The streamlets framework {plan.framework_version}: the wheel 'flow dockerfile' "
            "wrote into the build context."
        )
        lines.append(f"COPY {wheel} /tmp/{WHEELS_DIR}/")
        lines.append(f"RUN pip install {installed} && rm -rf /tmp/{WHEELS_DIR}")
    lines.append("")
    lines.append("# The application: the blueprint's directory and what it needs.")
    source = "." if plan.app_dir == "." else plan.app_dir.rstrip("/") + "/"
    lines.append(f"COPY {source} {APP_DIR}/")
    if plan.requirements:
        lines.append(f"RUN pip install -r {APP_DIR}/requirements.txt")
    if plan.installable:
        lines.append(f"RUN pip install {APP_DIR}")
    lines.extend(
        [
            f"WORKDIR {APP_DIR}",
            f"ENV PYTHONPATH={APP_DIR} \\",
            "    HOME=/tmp",
            "",
            "# A non-root user with a numeric id, so Kubernetes can enforce runAsNonRoot.",
            f"RUN groupadd --gid {RUN_AS_USER} streamlets \\",
            f" && useradd --uid {RUN_AS_USER} --gid {RUN_AS_USER} --no-create-home \\",
            "      --home-dir /tmp --shell /usr/sbin/nologin streamlets",
            f"USER {RUN_AS_USER}:{RUN_AS_USER}",
            f"EXPOSE {METRICS_PORT}",
            'ENTRYPOINT ["flow"]',
            'CMD ["--help"]',
        ]
    )
    return "\n".join(lines) + "\n"
