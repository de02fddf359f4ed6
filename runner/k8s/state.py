"""The state volume of a stateful streamlet's pods (DESIGN §8).

A streamlet that declares a :class:`~streamlets.State` keeps a local store per input
partition in its state directory, ``--state-dir`` of ``flow run-streamlet``, which the
pod mounts at :data:`~runner.k8s.options.STATE_DIR`. The store is a cache of the
changelog topics: a pod that starts with an empty directory rebuilds it from them, one
that keeps its directory only catches up from where its store stopped.

- Without ``state: {storage: ...}`` the directory is an ``emptyDir``: it lives as long
  as the pod, on the node's disk, and a new pod restores its partitions from the
  changelogs.
- With it, a StatefulSet's ``volumeClaimTemplates`` give each pod a PersistentVolumeClaim
  of that size (``state-<workload>-<ordinal>``), kept across restarts, rollouts and
  rescheduling, so a restarted pod restores only what changed while it was away. A Job
  (a source run with ``--job``) gets a generic ephemeral volume of that size instead:
  a Job's pods have no stable identity to keep a claim for.
"""

from __future__ import annotations

from typing import Any

from blueprint import StreamletSpec
from runner.k8s.options import STATE_DIR

__all__ = ["STATE_VOLUME", "state_claim_template", "state_mount", "state_volume"]

#: The name of the state volume (and of its claim template).
STATE_VOLUME = "state"


def state_mount() -> dict[str, Any]:
    """The container's mount of the state volume at :data:`STATE_DIR`."""
    return {"name": STATE_VOLUME, "mountPath": STATE_DIR}


def _claim_spec(storage: str) -> dict[str, Any]:
    return {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}


def state_volume(spec: StreamletSpec, kind: str) -> dict[str, Any] | None:
    """The pod volume of ``spec``'s state in a workload of ``kind``, or ``None`` when the
    StatefulSet's claim template provides it (or the streamlet keeps no state)."""
    if not spec.stateful:
        return None
    storage = spec.state_storage
    if storage is None:
        return {"name": STATE_VOLUME, "emptyDir": {}}
    if kind == "StatefulSet":
        return None  # from the volumeClaimTemplates
    return {
        "name": STATE_VOLUME,
        "ephemeral": {"volumeClaimTemplate": {"spec": _claim_spec(storage)}},
    }


def state_claim_template(spec: StreamletSpec, labels: dict[str, str]) -> dict[str, Any] | None:
    """The StatefulSet's claim template of ``spec``'s state, when it gives a size."""
    if not spec.stateful or spec.state_storage is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": STATE_VOLUME, "labels": labels},
        "spec": _claim_spec(spec.state_storage),
    }
