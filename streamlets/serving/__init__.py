"""Model serving: score a stream against model servers or an embedded model.

Subclass :class:`ModelServingStreamlet` with your record types; it batches records,
keeps a bounded number of requests in flight, emits results in input order and switches
models when a :class:`ModelUpdate` arrives on its ``control`` inlet.
"""

from __future__ import annotations

from streamlets.serving.errors import (
    ModelRejected,
    ModelUnavailable,
    ServingError,
    TransportError,
)
from streamlets.serving.metrics import ModelMetrics, ServingMetrics
from streamlets.serving.model_info import ModelInfo
from streamlets.serving.protocols import InferenceProtocol, Target, V1Protocol, V2Protocol
from streamlets.serving.streamlet import ModelServingStreamlet, ModelUpdate, ServingConfig
from streamlets.serving.transport import HttpResponse, HttpxTransport, StreamsTransport, Transport

__all__ = [
    "HttpResponse",
    "HttpxTransport",
    "InferenceProtocol",
    "ModelInfo",
    "ModelMetrics",
    "ModelRejected",
    "ModelServingStreamlet",
    "ModelUnavailable",
    "ModelUpdate",
    "ServingConfig",
    "ServingError",
    "ServingMetrics",
    "StreamsTransport",
    "Target",
    "Transport",
    "TransportError",
    "V1Protocol",
    "V2Protocol",
]
