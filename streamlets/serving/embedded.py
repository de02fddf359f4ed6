"""An embedded model: a scikit-learn model (joblib) or an ONNX model scored in-process.

The state of the streamlet is then the model itself. Batches are scored in a worker thread
so the event loop keeps moving records while the model computes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streamlets.serving.backends import BatchRejected
from streamlets.serving.errors import ServingError
from streamlets.serving.model_info import ModelInfo
from streamlets.serving.retry import Backoff

__all__ = ["EmbeddedBackend", "load_embedded"]

#: The methods of a scikit-learn model that may be named as outputs.
SKLEARN_OUTPUTS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def _plain(value: Any) -> Any:
    """numpy values and arrays as plain Python (lists, floats, ints, strings)."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _squeeze(row: Any) -> Any:
    return row[0] if isinstance(row, list) and len(row) == 1 else row


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()[:12]


class EmbeddedBackend:
    """Scores batches with a model loaded from a file (see :func:`load_embedded`)."""

    def __init__(self, info: ModelInfo, score: Callable[[Sequence[Any]], list[Any]]) -> None:
        self._info = info
        self._score = score
        self._retired = asyncio.Event()

    @property
    def info(self) -> ModelInfo:
        """The model's name (file stem unless given), version (given, or a file digest)."""
        return self._info

    @property
    def retired(self) -> asyncio.Event:
        """Set once a control record switched to another backend."""
        return self._retired

    async def wait_ready(self, backoff: Backoff, timeout: float) -> bool:
        """Always ready: the model was loaded before the backend was made."""
        return not self._retired.is_set()

    def mark_unready(self) -> None:
        """Nothing can go away in-process."""

    async def predict(self, inputs: Sequence[Any], timeout: float) -> tuple[list[Any], ModelInfo]:
        """Score ``inputs`` in a worker thread; a model error rejects the batch."""
        start = time.perf_counter()
        try:
            predictions = await asyncio.to_thread(self._score, inputs)
        except Exception as exc:  # the model's own error, e.g. a wrong number of features
            raise BatchRejected(f"{type(exc).__name__}: {exc}") from exc
        if len(predictions) != len(inputs):
            raise BatchRejected(
                f"model {self._info.label} returned {len(predictions)} predictions for "
                f"{len(inputs)} records"
            )
        elapsed = time.perf_counter() - start
        info = ModelInfo(
            self._info.name,
            self._info.version,
            "embedded",
            self._info.url,
            latency_s=elapsed,
            batch_size=len(inputs),
        )
        return predictions, info

    async def aclose(self) -> None:
        """Retire the backend."""
        self._retired.set()


def _sklearn_scorer(model: Any, outputs: Sequence[str]) -> Callable[[Sequence[Any]], list[Any]]:
    names = list(outputs) or ["predict"]
    for name in names:
        if name not in SKLEARN_OUTPUTS or not callable(getattr(model, name, None)):
            available = [n for n in SKLEARN_OUTPUTS if callable(getattr(model, n, None))]
            raise ServingError(
                f"the embedded model ({type(model).__name__}) has no output {name!r}; "
                f"it has {', '.join(available)}"
            )
    features = getattr(model, "feature_names_in_", None)
    feature_names = [str(f) for f in features] if features is not None else None

    def rows(inputs: Sequence[Any]) -> list[Any]:
        if inputs and isinstance(inputs[0], Mapping):
            if feature_names is None:
                raise ServingError(
                    "named inputs (a dict) need a model fitted with feature names; "
                    "return a list of feature values from to_input instead"
                )
            return [[row[name] for name in feature_names] for row in inputs]
        return list(inputs)

    def score(inputs: Sequence[Any]) -> list[Any]:
        x = rows(inputs)
        columns = {n: [_squeeze(_plain(r)) for r in getattr(model, n)(x)] for n in names}
        if len(names) == 1:
            return columns[names[0]]
        return [{n: columns[n][i] for n in names} for i in range(len(x))]

    return score


def _onnx_scorer(path: Path, outputs: Sequence[str]) -> Callable[[Sequence[Any]], list[Any]]:
    try:
        # Optional dependencies (the onnx extra): imported when an ONNX model is loaded.
        import numpy as np  # noqa: PLC0415
        import onnxruntime  # noqa: PLC0415
    except ImportError as exc:
        raise ServingError(
            f"{path} is an ONNX model but onnxruntime is not installed; "
            "install the extra: pip install 'streamlets[onnx]'"
        ) from exc
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model_inputs = session.get_inputs()
    available = [o.name for o in session.get_outputs()]
    names = list(outputs) or available
    missing = [n for n in names if n not in available]
    if missing:
        raise ServingError(
            f"the ONNX model {path.name} has no output(s) {', '.join(missing)}; "
            f"it has {', '.join(available)}"
        )

    def dtype_of(kind: str) -> Any:
        if "int64" in kind:
            return np.int64
        if "int32" in kind:
            return np.int32
        if "double" in kind:
            return np.float64
        if "string" in kind:
            return np.object_
        return np.float32

    # Worked out once at load: (input name, numpy dtype) for each of the model's inputs.
    typed = [(i.name, dtype_of(i.type)) for i in model_inputs]

    def score(inputs: Sequence[Any]) -> list[Any]:
        if inputs and isinstance(inputs[0], Mapping):
            feed = {
                name: np.asarray([row[name] for row in inputs], dtype=dtype)
                for name, dtype in typed
            }
        else:
            name, dtype = typed[0]
            feed = {name: np.asarray(list(inputs), dtype=dtype)}
        results = session.run(names, feed)
        columns: dict[str, list[Any]] = {}
        for name, result in zip(names, results, strict=True):
            values = result if isinstance(result, list) else _plain(result)
            columns[name] = [
                {str(k): _plain(v) for k, v in r.items()} if isinstance(r, Mapping) else _squeeze(r)
                for r in values
            ]
        if len(names) == 1:
            return columns[names[0]]
        return [{n: columns[n][i] for n in names} for i in range(len(inputs))]

    return score


def load_embedded(
    path: str | Path,
    *,
    name: str | None = None,
    version: str | None = None,
    outputs: Sequence[str] = (),
) -> EmbeddedBackend:
    """Load a model file: ``.onnx`` with onnxruntime, anything else with joblib.

    Blocking (reads the file): call it in a worker thread from async code. Raises
    :class:`ServingError` with what to do when the file is missing or is not a model.
    """
    file = Path(path)
    if not file.is_file():
        raise ServingError(f"embedded model file {file} does not exist")
    if file.suffix == ".onnx":
        score = _onnx_scorer(file, outputs)
    else:
        try:
            import joblib  # noqa: PLC0415  (optional: the serving extra)
        except ImportError as exc:
            raise ServingError(
                "embedded scikit-learn models need joblib and scikit-learn; "
                "install the extra: pip install 'streamlets[serving]'"
            ) from exc
        try:
            model = joblib.load(file)
        except Exception as exc:
            raise ServingError(
                f"cannot load embedded model {file}: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(getattr(model, "predict", None)):
            raise ServingError(
                f"{file} holds a {type(model).__name__}, which has no predict(); "
                "save a fitted scikit-learn model with joblib.dump"
            )
        score = _sklearn_scorer(model, outputs)
    info = ModelInfo(name or file.stem, version or _digest(file), "embedded", str(file))
    return EmbeddedBackend(info, score)
