"""Calling ``kubectl``: found on PATH, errors turned into messages a person can act on."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamlets.errors import StreamletsError

__all__ = ["ClusterUnreachableError", "Kubectl", "KubectlError", "KubectlNotFoundError"]

_UNREACHABLE = (
    "unable to connect to the server",
    "connection refused",
    "couldn't get current server api group list",
    "no such host",
    "i/o timeout",
    "dial tcp",
    "no configuration has been provided",
    "the server has asked for the client to provide credentials",
    "context was not found",
    "current-context is not set",
    "tls handshake timeout",
)


class KubectlError(StreamletsError):
    """A kubectl call failed; the message says which call and what kubectl said."""


class KubectlNotFoundError(KubectlError):
    """``kubectl`` is not on PATH."""


class ClusterUnreachableError(KubectlError):
    """kubectl ran but could not reach (or is not configured for) a cluster."""


@dataclass(frozen=True, slots=True)
class Kubectl:
    """A kubectl binary, optionally bound to one kubeconfig context."""

    binary: str
    context: str | None = None
    timeout: float = 300.0

    @classmethod
    def find(cls, context: str | None = None) -> Kubectl:
        """The ``kubectl`` on PATH; raises :class:`KubectlNotFoundError` when there is none."""
        binary = shutil.which("kubectl")
        if binary is None:
            raise KubectlNotFoundError(
                "kubectl is not on PATH: install it (see "
                "https://kubernetes.io/docs/tasks/tools/, or your distribution's kubectl "
                "package) and point it at your cluster, or write the manifests with "
                "'flow deploy ... -o DIR' and apply them yourself"
            )
        return cls(binary, context)

    def command(self, args: Sequence[str]) -> list[str]:
        """The full command line for ``kubectl ARGS``."""
        prefix = ["--context", self.context] if self.context else []
        return [self.binary, *prefix, *args]

    def run(self, args: Sequence[str], stdin: str | None = None) -> str:
        """Run ``kubectl ARGS`` and return its standard output; raise on failure."""
        command = self.command(args)
        shown = "kubectl " + " ".join(args)
        try:
            proc = subprocess.run(
                command,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ClusterUnreachableError(
                f"'{shown}' did not finish within {self.timeout:.0f} s: is the cluster "
                "reachable? ('kubectl cluster-info' tells)"
            ) from None
        except OSError as exc:
            raise KubectlError(f"cannot run {self.binary}: {exc.strerror}") from None
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
            if any(marker in said.lower() for marker in _UNREACHABLE):
                raise ClusterUnreachableError(
                    f"cannot reach the Kubernetes cluster ('{shown}' failed: {said}); check "
                    "kubectl's current context ('kubectl config current-context', "
                    "'kubectl cluster-info') or pass --context"
                )
            raise KubectlError(f"'{shown}' failed: {said}")
        return proc.stdout

    def json(self, args: Sequence[str]) -> Any:
        """Run ``kubectl ARGS -o json`` and return the parsed output."""
        out = self.run([*args, "-o", "json"])
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            raise KubectlError(
                f"'kubectl {' '.join(args)} -o json' printed something that is not JSON: "
                f"{out[:200]!r}"
            ) from None
