"""The single-neuron model: seeding, building, fitting and predicting in large batches; no I/O."""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PREDICT_BATCH = 1 << 16  # never predict()'s default of 32: that is ~24 s per million rows here


def keras():
    """Import Keras lazily (TensorFlow takes seconds and ~0.7 GB), with its loggers quieted."""
    import keras as _keras

    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass
    return _keras


def set_determinism(seed: int) -> None:
    """Same data + same seed gives bit-identical weights (np/tf seeds alone do not, with Keras 3)."""
    k = keras()
    import tensorflow as tf

    k.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build(learning_rate: float, optimizer: str = "rmsprop"):
    """Dense(1) on one input, MSE loss: the tutorial's model."""
    k = keras()
    optimizers = {"rmsprop": k.optimizers.RMSprop, "adam": k.optimizers.Adam,
                  "sgd": k.optimizers.SGD}
    model = k.Sequential([k.Input(shape=(1,), name="rooms"), k.layers.Dense(1, name="price")])
    model.compile(optimizer=optimizers[optimizer](learning_rate=learning_rate), loss="mse")
    return model


def as_column(x: Any) -> np.ndarray:
    """Always (-1, 1) float32: mixing shapes on one model breaks Keras ("unknown rank")."""
    return np.asarray(x, dtype="float32").reshape(-1, 1)


def predict(model, x: Any, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """The Keras model's own output, called on large slices, as a flat float32 array."""
    col = as_column(x)
    if len(col) == 0:
        return np.empty(0, dtype="float32")
    parts = [np.asarray(model(col[i:i + batch_size], training=False)).reshape(-1)
             for i in range(0, len(col), batch_size)]
    return np.concatenate(parts).astype("float32", copy=False)


def weight_and_bias(model) -> tuple[float, float]:
    kernel, bias = model.layers[-1].get_weights()
    return float(np.asarray(kernel).reshape(-1)[0]), float(np.asarray(bias).reshape(-1)[0])


def ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Closed-form least-squares slope and intercept (float64), the optimum gradient descent aims at."""
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


def fold_linear(model) -> LinearFold | None:
    """The fold when the model is exactly one linear Dense(1) on one input; else None (Keras path)."""
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


def parity_gap(fold: LinearFold, model, x: np.ndarray) -> float:
    """Largest difference between the fold and the Keras model, in units of float32 precision."""
    x = np.asarray(x, dtype="float32").reshape(-1)
    return float32_gap(fold(x), predict(model, x))


def progress_callback(epochs: int, every: int, stream=None):
    """Per-epoch progress on a terminal (stderr), else one log line per `every` epochs."""
    k = keras()
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()

    class Progress(k.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            n = epoch + 1
            text = f"epoch {n}/{epochs} loss {logs.get('loss', math.nan):.4f}"
            if "val_loss" in logs:
                text += f" val_loss {logs['val_loss']:.4f}"
            if tty:
                end = "\n" if n == epochs else ""
                stream.write(f"\r{text} ({time.monotonic() - self.started:.1f}s)  {end}")
                stream.flush()
            elif n % every == 0 or n == epochs or n == 1:
                log.info("%s", text)

    return Progress()
