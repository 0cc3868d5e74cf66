"""The single-neuron model: seeding, building, predicting in large batches, and the scorer's
Predictor.

The Predictor is what both scoring engines use: the folded Dense(1) (weight and bias) when the
model is exactly that (read without TensorFlow when verified at publish, see
batch.model.linear), else the Keras model itself; it travels to Dask workers as a small
picklable object and is loaded once per process. `check_parity` compares its predictions with
the Keras model's own on a run's sample. No file is written here.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from batch.core.errors import ModelError

log = logging.getLogger(__name__)

PREDICT_BATCH = 1 << 16  # never predict()'s default of 32: that is ~24 s per million rows here
PARITY_ROWS = 10_000  # sampled rows of a run checked against the Keras model
PARITY_LIMIT = 2.0  # allowed gap, in float32 epsilons of the prediction


def keras() -> Any:
    """Import Keras lazily (TensorFlow takes seconds and ~0.7 GB), with its loggers quieted."""
    import keras as _keras

    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass
    return _keras


def set_determinism(seed: int) -> None:
    """Same data + same seed gives bit-identical weights (np/tf seeds alone do not, with
    Keras 3)."""
    k = keras()
    import tensorflow as tf

    k.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build(learning_rate: float, optimizer: str = "rmsprop") -> Any:
    """Dense(1) on one input, MSE loss: the tutorial's model."""
    k = keras()
    optimizers = {
        "rmsprop": k.optimizers.RMSprop,
        "adam": k.optimizers.Adam,
        "sgd": k.optimizers.SGD,
    }
    model = k.Sequential([k.Input(shape=(1,), name="rooms"), k.layers.Dense(1, name="price")])
    model.compile(optimizer=optimizers[optimizer](learning_rate=learning_rate), loss="mse")
    return model


def as_column(x: Any) -> np.ndarray:
    """Always (-1, 1) float32: mixing shapes on one model breaks Keras ("unknown rank")."""
    return np.asarray(x, dtype="float32").reshape(-1, 1)


def predict(model: Any, x: Any, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """The Keras model's own output, called on large slices, as a flat float32 array."""
    col = as_column(x)
    if len(col) == 0:
        return np.empty(0, dtype="float32")
    parts = [
        np.asarray(model(col[i : i + batch_size], training=False)).reshape(-1)
        for i in range(0, len(col), batch_size)
    ]
    return np.concatenate(parts).astype("float32", copy=False)


def weight_and_bias(model: Any) -> tuple[float, float]:
    kernel, bias = model.layers[-1].get_weights()
    return float(np.asarray(kernel).reshape(-1)[0]), float(np.asarray(bias).reshape(-1)[0])


def ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Closed-form least-squares slope and intercept (float64), the optimum gradient descent
    aims at."""
    slope, intercept = np.polyfit(np.asarray(x, "float64"), np.asarray(y, "float64"), 1)
    return float(slope), float(intercept)


@dataclass
class LinearFold:
    """A single linear Dense(1) folded into its weight and bias: y = x * w + b in float32."""

    weight: np.float32
    bias: np.float32

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype="float32").reshape(-1)
        out = x * self.weight
        out += self.bias
        return out


def fold_linear(model: Any) -> LinearFold | None:
    """The fold when the model is exactly one linear Dense(1) on one input; else None (the
    Keras path)."""
    k = keras()
    layers = [layer for layer in model.layers if not isinstance(layer, k.layers.InputLayer)]
    if len(layers) != 1 or not isinstance(layers[0], k.layers.Dense):
        return None
    dense = layers[0]
    if dense.units != 1 or dense.activation is not k.activations.linear:
        return None
    weights = dense.get_weights()
    if len(weights) != 2 or np.asarray(weights[0]).shape != (1, 1):
        return None
    return LinearFold(np.float32(weights[0].reshape(-1)[0]), np.float32(weights[1].reshape(-1)[0]))


def float32_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest difference, in float32 epsilons of the reference; NaN/inf anywhere gives inf."""
    ours, theirs = np.asarray(ours, "float64"), np.asarray(theirs, "float64")
    if len(theirs) == 0:
        return 0.0
    scale = np.maximum(np.abs(theirs), 1.0) * float(np.finfo("float32").eps)
    gap = np.abs(ours - theirs) / scale
    return float(gap.max()) if np.all(np.isfinite(gap)) else float("inf")


@dataclass(frozen=True)
class Predictor:
    """How a scoring process predicts: the fold's weight and bias, or the verified .keras bytes.

    Small and picklable, so the Dask engine sends it to each worker once; `load()` gives the
    prediction function, built once per process (the Keras path loads the model once).
    """

    sha256: str
    fold: LinearFold | None
    keras_bytes: bytes | None = None
    # Set when the fold was verified against Keras at publish time (batch.model.linear) and read
    # without TensorFlow: how, for the report. Such a run has no Keras model to check parity with.
    verified: str = ""

    @property
    def path(self) -> str:
        """How predictions are made, for the report."""
        if self.verified:
            return self.verified
        return "folded Dense(1)" if self.fold is not None else "Keras model"

    def load(self) -> Callable[[np.ndarray], np.ndarray]:
        if self.fold is not None:
            return self.fold
        model = _LOADED.get(self.sha256)
        if model is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # a fresh worker: keep TF quiet
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                path.write_bytes(self.keras_bytes or b"")
                model = keras().saving.load_model(path, safe_mode=True, compile=False)
            _LOADED[self.sha256] = model
        return lambda rooms: predict(model, rooms)


_LOADED: dict[str, Any] = {}  # per process: model sha256 -> Keras model


def predictor_for(model: Any, sha256: str, keras_bytes: Callable[[], bytes]) -> Predictor:
    """The Predictor of a loaded, verified model (its .keras bytes are read only when not
    foldable)."""
    fold = fold_linear(model)
    _LOADED[sha256] = model  # this process already has it
    return Predictor(sha256, fold, None if fold is not None else keras_bytes())


def check_parity(model: Any, rooms: np.ndarray, preds: np.ndarray, where: str) -> float:
    """The largest gap between `preds` and the Keras model's output on `rooms` (float32 epsilons).

    Raises ModelError beyond PARITY_LIMIT: predictions that disagree with the model are never
    published.
    """
    rooms, preds = np.asarray(rooms)[:PARITY_ROWS], np.asarray(preds)[:PARITY_ROWS]
    if not len(rooms):
        return 0.0
    gap = float32_gap(preds, predict(model, rooms))
    if not gap <= PARITY_LIMIT:
        raise ModelError(
            f"predictions {where} differ from the Keras model by {gap:.1f} float32 "
            "epsilons (or are NaN/inf); nothing was published — score with another "
            "--model-version and report it"
        )
    log.info(
        "parity with the Keras model on %d sampled rows: largest gap %.2f float32 epsilons",
        len(rooms),
        gap,
    )
    return gap


def progress_callback(epochs: int, every: int, stream: TextIO | None = None) -> Any:
    """Per-epoch progress on a terminal (stderr), else one log line per `every` epochs."""
    k = keras()
    out = stream or sys.stderr
    tty = hasattr(out, "isatty") and out.isatty()

    class Progress(k.callbacks.Callback):  # type: ignore[name-defined,misc]
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            n = epoch + 1
            text = f"epoch {n}/{epochs} loss {logs.get('loss', math.nan):.4f}"
            if "val_loss" in logs:
                text += f" val_loss {logs['val_loss']:.4f}"
            if tty:
                end = "\n" if n == epochs else ""
                out.write(f"\r{text} ({time.monotonic() - self.started:.1f}s)  {end}")
                out.flush()
            elif n % every == 0 or n == epochs or n == 1:
                log.info("%s", text)

    return Progress()
