"""Writing manifests to a directory (for ``kubectl apply -k``) or as one YAML stream."""

from __future__ import annotations

import os

from runner.k8s.render import GENERATED_HEADER, SECRET_FILE, Manifests
from runner.k8s.yaml_output import to_yaml

__all__ = ["manifest_stream", "write_manifests"]

_GITIGNORE = (
    f"{GENERATED_HEADER}: {SECRET_FILE} holds secret config values; keep it out of git.\n"
    f"{SECRET_FILE}\n"
)


def _is_generated(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().startswith(GENERATED_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def write_manifests(manifests: Manifests, directory: str) -> list[str]:
    """Write every manifest and ``kustomization.yaml`` into ``directory``; return the paths.

    Files an earlier run generated that this run does not (a streamlet was removed) are
    deleted; other files are left alone. ``secret.yaml`` is readable by its owner only.
    Raises ``OSError``.
    """
    os.makedirs(directory, exist_ok=True)
    files = manifests.files()
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.endswith(".yaml") and entry not in files and _is_generated(path):
            os.remove(path)
    written: list[str] = []
    for name, text in files.items():
        path = os.path.join(directory, name)
        mode = 0o600 if name == SECRET_FILE else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, mode)
        written.append(path)
    gitignore = os.path.join(directory, ".gitignore")
    if not os.path.exists(gitignore) or _is_generated(gitignore):
        with open(gitignore, "w", encoding="utf-8") as fh:
            fh.write(_GITIGNORE)
    return written


def manifest_stream(manifests: Manifests, *, include_secret: bool) -> str:
    """Every resource as one multi-document YAML stream (the Secret only when asked)."""
    documents = [m.resource for m in manifests if include_secret or m.filename != SECRET_FILE]
    return manifests.header() + "".join("---\n" + to_yaml(d) for d in documents)
