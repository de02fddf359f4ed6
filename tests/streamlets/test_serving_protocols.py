"""Pure tests of the V1/V2 protocol layer, the backoff and the server-message extraction."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlets.serving.errors import ServingError
from streamlets.serving.protocols import (
    BatchShapeError,
    ProtocolError,
    Target,
    V1Protocol,
    V2Protocol,
    protocol_for,
    server_message,
)
from streamlets.serving.retry import Backoff
from streamlets.serving.transport import HttpResponse

TARGET = Target("http://127.0.0.1:1/", "iris", "3", "v2", ("predict",))


def answer(data: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(data).encode(), "application/json")


def test_v1_request_and_urls() -> None:
    v1 = V1Protocol()
    target = Target("http://h:8080/", "m", None, "v1")
    url, body = v1.infer(target, [[1.0, 2.0], [3.0, 4.0]])
    assert url == "http://h:8080/v1/models/m:predict"
    assert json.loads(body) == {"instances": [[1.0, 2.0], [3.0, 4.0]]}
    assert (
        v1.infer(Target("http://h", "m", "7"), [[1]])[0]
        == "http://h/v1/models/m/versions/7:predict"
    )
    assert v1.ready_url(target) == "http://h:8080/v1/models/m"


def test_v1_readiness_kserve_and_tf_serving_answers() -> None:
    v1 = V1Protocol()
    assert v1.is_ready(answer({"name": "m", "ready": True}))
    assert not v1.is_ready(answer({"name": "m", "ready": False}))
    assert v1.is_ready(answer({"model_version_status": [{"state": "AVAILABLE"}]}))
    assert not v1.is_ready(answer({"model_version_status": [{"state": "LOADING"}]}))
    assert not v1.is_ready(answer({"error": "nope"}, 404))


def test_v1_predictions_count_must_match() -> None:
    v1 = V1Protocol()
    target = Target("http://h", "m")
    assert v1.predictions(target, answer({"predictions": [0, 2]}), 2) == ([0, 2], None)
    with pytest.raises(ProtocolError, match="sent 3 instance"):
        v1.predictions(target, answer({"predictions": [0, 2]}), 3)
    with pytest.raises(ProtocolError, match="no 'predictions'"):
        v1.predictions(target, answer({"nothing": 1}), 1)
    with pytest.raises(ProtocolError, match="not JSON"):
        v1.predictions(target, HttpResponse(200, b"<html>"), 1)


def test_v2_request_stacks_rows_into_a_typed_tensor_and_names_outputs() -> None:
    url, body = V2Protocol("x").infer(TARGET, [[1.0, 2.0], [3, 4.5]])
    assert url == "http://127.0.0.1:1/v2/models/iris/versions/3/infer"
    assert json.loads(body) == {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0, 3, 4.5]}],
        "outputs": [{"name": "predict"}],
    }


def test_v2_named_inputs_and_datatypes() -> None:
    target = Target("http://h", "m", protocol="v2")
    _, body = V2Protocol().infer(
        target, [{"a": 1, "b": "x", "c": True}, {"a": 2, "b": "y", "c": False}]
    )
    tensors = {t["name"]: t for t in json.loads(body)["inputs"]}
    assert tensors["a"] == {"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 2]}
    assert tensors["b"]["datatype"] == "BYTES"
    assert tensors["c"]["datatype"] == "BOOL"
    assert "outputs" not in json.loads(body)


def test_v2_inputs_that_do_not_stack_are_a_batch_shape_error() -> None:
    v2 = V2Protocol()
    with pytest.raises(BatchShapeError, match=r"shape \[3\] for one record and \[2\]"):
        v2.infer(TARGET, [[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(BatchShapeError, match="name different inputs"):
        v2.infer(TARGET, [{"a": 1}, {"b": 2}])
    with pytest.raises(BatchShapeError, match="mixes value types"):
        v2.infer(TARGET, [[1.0, "x"]])


def test_v2_outputs_split_per_record_and_squeeze_single_values() -> None:
    v2 = V2Protocol()
    response = answer(
        {
            "model_name": "iris",
            "model_version": "v9",
            "outputs": [
                {"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]},
                {
                    "name": "proba",
                    "shape": [2, 2],
                    "datatype": "FP64",
                    "data": [0.1, 0.9, 0.8, 0.2],
                },
            ],
        }
    )
    assert v2.predictions(TARGET, response, 2) == ([0, 2], "v9")
    both = Target("http://h", "iris", None, "v2", ("predict", "proba"))
    predictions, _ = v2.predictions(both, response, 2)
    assert predictions == [{"predict": 0, "proba": [0.1, 0.9]}, {"predict": 2, "proba": [0.8, 0.2]}]


def test_v2_output_errors_are_explained() -> None:
    v2 = V2Protocol()
    wrong = answer({"outputs": [{"name": "predict_proba", "shape": [1, 3], "data": [1, 2, 3]}]})
    with pytest.raises(ProtocolError, match=r"asked for output.*predict.*predict_proba"):
        v2.predictions(TARGET, wrong, 1)
    short = answer({"outputs": [{"name": "predict", "shape": [3], "data": [1, 2, 3]}]})
    with pytest.raises(ProtocolError, match="sent 2 record"):
        v2.predictions(TARGET, short, 2)


def test_server_message_prefers_the_servers_own_words() -> None:
    assert server_message(answer({"error": "X has 3 features"}, 500)) == "X has 3 features"
    assert "field required" in server_message(answer({"detail": [{"msg": "field required"}]}, 422))
    trace = b"Traceback (most recent call last):\n  File x\nValueError: bad shape\n"
    assert server_message(HttpResponse(500, trace)) == "ValueError: bad shape"
    assert server_message(HttpResponse(502, b"")) == "HTTP 502 with an empty body"


def test_protocol_for_rejects_unknown_names() -> None:
    assert protocol_for("v1").name == "v1"
    assert protocol_for("v2").name == "v2"
    with pytest.raises(ServingError, match="expected one of v1, v2"):
        protocol_for("grpc")


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    for attempt in range(10):
        full = min(1.0, 0.1 * 2**attempt)
        assert full / 2 <= backoff.delay(attempt) <= full
    assert len({backoff.delay(5) for _ in range(20)}) > 1


def test_public_names_are_sorted_and_importable() -> None:
    from streamlets import serving

    assert serving.__all__ == sorted(serving.__all__)
    for name in serving.__all__:
        assert getattr(serving, name).__doc__, name


# -- the request bodies' JSON ----------------------------------------------------------


_json_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
        st.none(),
    ),
    lambda children: st.lists(children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json_values, max_size=20))
def test_tensor_data_encodes_to_the_same_json_values_as_the_json_module(data: list[Any]) -> None:
    from streamlets.serving.protocols import _encode_data

    assert json.loads(_encode_data(data)) == json.loads(json.dumps(data))


def test_tensor_data_the_fast_encoder_does_not_know_fails_as_before() -> None:
    import numpy as np

    from streamlets.serving.protocols import _encode_data

    assert _encode_data([float("nan"), float("inf")]) == b"[NaN,Infinity]"
    with pytest.raises(TypeError, match="float32"):
        _encode_data([np.float32(1.5)])
