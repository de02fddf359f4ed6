"""Errors of the model-serving streamlet, all under :class:`~streamlets.errors.StreamletsError`."""

from __future__ import annotations

from streamlets.errors import StreamletsError

__all__ = [
    "ModelRejected",
    "ModelUnavailable",
    "ResponseTooLarge",
    "ServingError",
    "TransportError",
]


class ServingError(StreamletsError):
    """Base class of the errors raised by :mod:`streamlets.serving`."""


class TransportError(ServingError):
    """The model server could not be reached or the connection broke (a transient fault).

    ``timeout`` tells a request that got no answer in time from one that could not connect.
    """

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class ModelRejected(ServingError):
    """The model refused one record; the message is the server's (or the model's) own.

    Raised for the record's ``process`` call, so the runner's error policy applies to that
    record alone (by default it goes to the dead letters with this message).
    """

    def __init__(self, message: str, *, model: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.status = status


class ModelUnavailable(ServingError):
    """A request kept failing with transient errors (timeouts, 429, 502-504) past ``retries``."""


class ResponseTooLarge(ServingError):
    """An answer was larger than the transport's ``max_response_bytes``; it was not read.

    Not a transport fault: the model serving streamlet splits the batch, so that smaller
    answers come back, down to a single record, which goes to the dead letters.
    """
