"""Container image references, checked before they go into manifests (Kubernetes would
take a malformed one and every pod would fail to pull it, as ``InvalidImageName``)."""

from __future__ import annotations

import re

__all__ = ["image_reference_problem"]

# The grammar of github.com/distribution/reference (what docker and the kubelet parse).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::{_TAG})?(?:@{_DIGEST})?"
)
_NAME_MAX = 255
_EXAMPLE = "registry.example.com/shop:1.0"


def image_reference_problem(image: str) -> str | None:
    """Why ``image`` is not a valid image reference (``None`` when it is one)."""
    if not image or image != image.strip():
        return f"{image!r} is empty or has spaces around it; give one like {_EXAMPLE}"
    match = _REFERENCE.fullmatch(image)
    if match is None:
        bad = sorted({c for c in image if not (c.isalnum() or c in "._-/:@[]")})
        what = f"it has {' '.join(map(repr, bad))}, which" if bad else "it"
        return (
            f"{image!r} is not an image reference: {what} does not fit "
            "[REGISTRY[:PORT]/]NAME[:TAG][@DIGEST] (the name in lower case; a tag of letters, "
            f"digits, '_', '.' and '-'), e.g. {_EXAMPLE}"
        )
    if len(match["name"]) > _NAME_MAX:
        return f"the image name in {image!r} is longer than {_NAME_MAX} characters"
    return None
