"""One training run: data -> fit -> evaluate -> plots -> registry.publish(vN) -> quality gate."""
from __future__ import annotations

import datetime as dt
import logging
import platform
from typing import Any

import numpy as np

from batch import datasets, plots
from batch.errors import ModelError
from batch.registry import MODEL_FILE, PRODUCTION, Registry
from batch.settings import Settings

log = logging.getLogger(__name__)

TRAINING_SAMPLE_MAX = 2000  # points of the training data kept in metadata for the scorer's fit plot


def train(settings: Settings, promote: str = "auto", if_missing: bool = False) -> dict[str, Any]:
    """Train, publish and gate one model version; returns the JSON summary.

    With lineage set up (openlineage_url / openlineage_file) the run emits START, then COMPLETE
    or FAIL; `run_id` in the summary is the id those events carry.
    """
    from batch.lineage import DatasetRef, Lineage
    from batch.storage import new_run_id

    registry = Registry(settings.models_dir)
    if if_missing:
        current = registry.aliases().get(PRODUCTION)
        if current and current in registry.versions():
            log.info("production model %s exists; nothing to train (--if-missing)", current)
            return {"status": "skipped", "version": current, "promoted": False,
                    "reason": "a production model exists (--if-missing)"}
    run_id = new_run_id()
    lineage = Lineage.from_settings(settings, "train", run_id)
    source = datasets.keras_cache_file() if settings.data == "boston" else settings.data
    columns = [(settings.feature_column or "rm", "float64"), (settings.target_column, "float64")]
    lineage.start([DatasetRef.file(source, schema=columns)])
    try:
        summary = _train(settings, registry, promote)
    except BaseException as exc:  # interrupted runs fail too (the event says how)
        lineage.fail(str(exc) or type(exc).__name__)
        raise
    version = summary["version"]
    lineage.complete([DatasetRef.file(
        registry.root / version,
        extra={"model_version": version, "promoted": summary["promoted"],
               "test_mse": summary["test_mse"]})])
    summary["run_id"] = run_id
    return summary


def _train(settings: Settings, registry: Registry, promote: str) -> dict[str, Any]:
    data = datasets.load(settings.data, settings.feature_column, settings.target_column)
    log.info("training data %s: %d train rows, %d test rows", data.source, len(data.x_train),
             len(data.x_test))

    from batch import model as m

    m.set_determinism(settings.seed)
    net = m.build(settings.learning_rate, settings.optimizer)
    history = net.fit(
        m.as_column(data.x_train), data.y_train.reshape(-1, 1),
        batch_size=settings.batch_size, epochs=settings.epochs,
        validation_split=settings.validation_split, shuffle=True, verbose=0,
        callbacks=[m.progress_callback(settings.epochs, settings.log_every_epochs)],
    )
    loss = [float(v) for v in history.history["loss"]]
    val_loss = [float(v) for v in history.history.get("val_loss", [np.nan] * len(loss))]

    pred_test = m.predict(net, data.x_test).astype("float64")
    err = pred_test - data.y_test.astype("float64")
    test_mse, test_mae = float(np.mean(err ** 2)), float(np.mean(np.abs(err)))
    weight, bias = m.weight_and_bias(net)
    if not all(np.isfinite(v) for v in (weight, bias, test_mse, loss[-1])):
        raise ModelError(
            f"training diverged (final loss {loss[-1]}, weight {weight}, bias {bias}); nothing was "
            f"published — lower --learning-rate (now {settings.learning_rate}) or check the data")
    slope, intercept = m.ols(data.x_train, data.y_train)
    ols_mse = float(np.mean((slope * data.x_test + intercept - data.y_test) ** 2))
    # Keras 3 holds out the last rows: floor(n * (1 - split)) are fitted, the rest validate.
    rows_fit = int(np.floor(len(data.x_train) * (1 - settings.validation_split)))
    rows_val = len(data.x_train) - rows_fit
    metadata = {
        "version": None,  # set by the registry when it numbers the version
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "feature": "rm",
        "target": "medv",
        "weight": weight,
        "bias": bias,
        "hyperparameters": {
            "optimizer": settings.optimizer, "learning_rate": settings.learning_rate,
            "epochs": settings.epochs, "batch_size": settings.batch_size,
            "validation_split": settings.validation_split, "seed": settings.seed,
        },
        "data": {
            "source": data.source, "sha256": data.sha256,
            "rows_train": rows_fit, "rows_val": rows_val,
            "rows_test": len(data.x_test), "rows_dropped": data.rows_dropped,
            "test_split": datasets.TEST_SPLIT, "split_seed": datasets.SPLIT_SEED,
        },
        "metrics": {"loss": loss[-1], "val_loss": val_loss[-1], "test_mse": test_mse,
                    "test_mae": test_mae},
        "ols_reference": {"slope": slope, "intercept": intercept, "test_mse": ols_mse},
        # The float32 values' shortest decimals (3.561, not 3.561000108718872), so a row with
        # exactly the training minimum is not flagged as outside the range.
        "feature_range": {"min": _decimal(data.x_train.min()), "max": _decimal(data.x_train.max())},
        "feature_stats": _stats(data.x_train),
        "versions": _versions(),
        "training_sample": _sample(data.x_train, data.y_train),
    }
    log.info("trained: weight %.4f bias %.4f loss %.2f val_loss %.2f test MSE %.2f "
             "(OLS reference %.2f)", weight, bias, loss[-1], val_loss[-1], test_mse, ols_mse)

    with registry.staging() as staged:
        net.save(staged / MODEL_FILE)
        rows = ["epoch,loss,val_loss"] + [f"{i},{a!r},{b!r}" for i, (a, b)
                                          in enumerate(zip(loss, val_loss), start=1)]
        (staged / "history.csv").write_text("\n".join(rows) + "\n")
        title = f"single neuron, {settings.epochs} epochs"
        (staged / "loss.png").write_bytes(plots.loss_png(loss, val_loss, f"Loss per epoch ({title})"))
        (staged / "fit.png").write_bytes(plots.fit_png(
            weight, bias, data.x_train, data.y_train, f"Model fit ({title})",
            test_x=data.x_test, test_y=data.y_test))
        decision = registry.publish(staged, metadata, promote, settings.promote_tolerance)
    return {
        "status": "succeeded", "version": decision["version"], "promoted": decision["promoted"],
        "reason": decision["reason"], "production": decision["production"],
        "test_mse": test_mse, "production_test_mse": decision["production_test_mse"],
        "metrics": metadata["metrics"], "weight": weight, "bias": bias,
        "models_dir": str(settings.models_dir),
    }


def _decimal(value: np.floating) -> float:
    return float(str(np.float32(value)))


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, "float64")
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"count": int(len(x)), "mean": float(x.mean()), "std": float(x.std()),
            "p05": float(q[0]), "p25": float(q[1]), "p50": float(q[2]), "p75": float(q[3]),
            "p95": float(q[4])}


def _sample(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    idx = np.arange(len(x))
    if len(idx) > TRAINING_SAMPLE_MAX:
        idx = np.sort(np.random.default_rng(0).choice(idx, TRAINING_SAMPLE_MAX, replace=False))
    return {"rm": [float(v) for v in x[idx]], "medv": [float(v) for v in y[idx]]}


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__}
