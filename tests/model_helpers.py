"""Helpers for registry and scorer tests: a complete, valid ModelMetadata without a training."""

from __future__ import annotations

from typing import Any

from batch.core.documents import ModelMetadata


def fake_metadata(test_mse: float = 50.0, **changes: Any) -> ModelMetadata:
    """A version's metadata as the trainer writes it, with made-up numbers.

    `changes` replace top-level fields (baseline_mse=90.0, feature_range={...}); the registry
    sets version and model_sha256 when it publishes.
    """
    fields: dict[str, Any] = {
        "version": "v0",
        "created_at": "2026-01-01T00:00:00+00:00",
        "feature": "rm",
        "target": "medv",
        "weight": 1.0,
        "bias": 0.0,
        "hyperparameters": {
            "optimizer": "rmsprop",
            "learning_rate": 0.005,
            "epochs": 3,
            "batch_size": 16,
            "validation_split": 0.3,
            "seed": 42,
        },
        "data": {
            "source": "fake",
            "sha256": "",
            "rows_train": 282,
            "rows_val": 122,
            "rows_test": 102,
            "rows_dropped": 0,
            "test_split": 0.2,
            "split_seed": 113,
        },
        "metrics": {"loss": 1.0, "val_loss": 1.0, "test_mse": test_mse, "test_mae": 1.0},
        "ols_reference": {"slope": 9.1, "intercept": -34.6, "test_mse": 40.0},
        "feature_range": {"min": 3.5, "max": 8.8},
        "feature_stats": {
            "count": 404,
            "mean": 6.3,
            "std": 0.7,
            "p05": 5.3,
            "p25": 5.9,
            "p50": 6.2,
            "p75": 6.6,
            "p95": 7.6,
        },
        "versions": {"python": "3.11", "tensorflow": "2.16", "keras": "3.11"},
        "training_sample": {"rm": [6.0, 7.0], "medv": [20.0, 29.0]},
        "model_sha256": "0" * 64,
    }
    return ModelMetadata.model_validate({**fields, **changes})
