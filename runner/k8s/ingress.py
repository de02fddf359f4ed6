"""Which streamlets accept HTTP from outside, and on which port.

A streamlet class is an HTTP ingress when it sets the class attribute
``__http_ingress__ = True`` and its config has an integer ``port`` field; such a streamlet
gets a Service (and, when asked for, an Ingress) in front of its pods.
"""

from __future__ import annotations

from blueprint import StreamletSpec

__all__ = ["HTTP_INGRESS_MARKER", "http_port"]

#: The class attribute that marks a streamlet class as an HTTP ingress.
HTTP_INGRESS_MARKER = "__http_ingress__"


def http_port(spec: StreamletSpec) -> int | None:
    """The port the streamlet serves HTTP on, or ``None`` when it is not an HTTP ingress."""
    if getattr(spec.cls, HTTP_INGRESS_MARKER, False) is not True:
        return None
    port = getattr(spec.config, "port", None)
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return port
    return None
