"""The matplotlib figures (Agg backend, PNG bytes out): loss per epoch and the model's fit
(the history page's trend charts are SVG, drawn in batch.ops.trend_svg)."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

LINE_ROOMS = (3.0, 9.0)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _import_quietly() -> None:
    """_pyplot for the warm-up thread: a failed import is the report's to raise, not this
    thread's (a traceback on stderr in the middle of a run)."""
    try:
        _pyplot()
    except Exception:
        logging.getLogger(__name__).debug("importing matplotlib ahead failed", exc_info=True)


def warm_up() -> threading.Thread:
    """Import matplotlib on a background thread (half a second of a run's report otherwise):
    started while a run streams, its plots then find it loaded. The import lock makes a plot
    drawn before it finished wait for it."""
    thread = threading.Thread(target=_import_quietly, name="import-matplotlib", daemon=True)
    thread.start()
    return thread


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def loss_png(loss: Sequence[float], val_loss: Sequence[float] | None, title: str) -> bytes:
    """Training and validation loss per epoch, as in the tutorial."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = np.arange(1, len(loss) + 1)
    ax.plot(epochs, loss, label="Training loss")
    if val_loss is not None and len(val_loss) and not np.all(np.isnan(val_loss)):
        ax.plot(epochs, val_loss, label="Validation loss")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss (MSE)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def fit_png(
    weight: float,
    bias: float,
    train_x: Any,
    train_y: Any,
    title: str,
    test_x: Any = None,
    test_y: Any = None,
    scored_x: Any = None,
    scored_pred: Any = None,
    actual_x: Any = None,
    actual_y: Any = None,
    note: str | None = None,
    interval: dict[str, Any] | None = None,
    ols: dict[str, Any] | None = None,
    target: str | None = None,
) -> bytes:
    """Training data as ground truth, the model's line over 3-9 rooms, plus test or scored data.

    interval: the model's calibrated band parameters (metadata's `interval`), drawn around the
    line as a shaded band; None (a version without one) draws no band.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(train_x, train_y, s=12, alpha=0.5, color="tab:blue", label="Training data (actual)")
    if test_x is not None and len(test_x):
        ax.scatter(test_x, test_y, s=14, alpha=0.7, color="tab:green", label="Test data (actual)")
    _scored_points(ax, scored_x, scored_pred, actual_x, actual_y, target)
    _lines(ax, weight, bias, interval, ols)
    ax.set_xlabel("Average number of rooms (rm)")
    ax.set_ylabel("Median price ($K)")
    ax.set_title(title)
    if note:
        box = {"boxstyle": "round", "facecolor": "white", "alpha": 0.8}
        ax.text(0.02, 0.97, note, transform=ax.transAxes, va="top", fontsize=9, bbox=box)
    ax.grid(alpha=0.3)
    # Below the axes, so the legend never hides a point.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    return _png(fig)


def _scored_points(
    ax: Any, scored_x: Any, scored_pred: Any, actual_x: Any, actual_y: Any, target: str | None
) -> None:
    """A run's rows: their true prices (when the input had them) and their predictions."""
    if actual_x is not None and len(actual_x):
        label = f"Scored records (actual {target or 'price'})"
        ax.scatter(actual_x, actual_y, s=16, alpha=0.8, marker="^", color="tab:green", label=label)
    if scored_x is not None and len(scored_x):
        label = "Scored records (predicted)"
        ax.scatter(
            scored_x, scored_pred, s=16, alpha=0.8, marker="x", color="tab:orange", label=label
        )


def _lines(
    ax: Any,
    weight: float,
    bias: float,
    interval: dict[str, Any] | None,
    ols: dict[str, Any] | None,
) -> None:
    """The model's line (with its price band when calibrated) and the least-squares line."""
    xs = np.linspace(*LINE_ROOMS, 50)
    if interval is not None:
        from batch.core.intervals import band

        bounds = band(xs, weight * xs + bias, interval)
        assert bounds is not None
        label = f"{interval['level']:.0%} price band (calibrated)"
        ax.fill_between(xs, *bounds, color="tab:red", alpha=0.12, linewidth=0, label=label)
    label = f"Model: price = {weight:.3f} x rooms {bias:+.3f}"
    ax.plot(xs, weight * xs + bias, color="tab:red", linewidth=2, label=label)
    if ols and ols.get("slope") is not None:
        slope, intercept = float(ols["slope"]), float(ols["intercept"])
        label = f"Least squares: price = {slope:.3f} x rooms {intercept:+.3f}"
        ax.plot(
            xs, slope * xs + intercept, color="black", linewidth=1.2, linestyle="--", label=label
        )
