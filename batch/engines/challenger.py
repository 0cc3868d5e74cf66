"""Loading a version to score with: the main one, and the challenger scored in its shadow.

Both are verified the same way before any input is read (the registry's checksum, the fold's
record); the challenger travels in the Job as a `Shadow` and adds its columns part by part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from batch.core.documents import ModelMetadata
from batch.core.errors import InputError
from batch.core.shadow import CHALLENGER_FIELDS, ShadowStats, shadow_batch
from batch.io.plan import Plan
from batch.io.source import quote_names
from batch.model import linear
from batch.model.layout import MODEL_FILE
from batch.model.network import Predictor, predictor_for
from batch.model.registry import Registry

AddShadow = Callable[[pa.RecordBatch], tuple[pa.RecordBatch, ShadowStats]]


@dataclass(frozen=True)
class Shadow:
    """The challenger of a run (picklable: the Dask engine ships it with the Job)."""

    version: str
    predictor: Predictor
    interval: dict[str, Any] | None  # its band parameters (None: a version without them)

    def bind(self) -> AddShadow:
        """batch -> (the batch with the challenger's columns, the comparison), per process."""
        predict = self.predictor.load()
        return lambda out: shadow_batch(out, predict, self.interval, self.version)


def load_model(registry: Registry, version: str) -> tuple[Any, ModelMetadata, Predictor]:
    """(the Keras model or None, its metadata, the Predictor), verified before any input is read.

    A Dense(1) whose fold was verified at publish is scored without TensorFlow; any other
    version (or a fold that no longer matches its record) loads Keras.
    """
    fold, meta = registry.load_fold(version)
    if fold is not None and meta.fold is not None:
        verified = linear.describe(meta.fold)
        return None, meta, Predictor(meta.model_sha256, fold, verified=verified)
    model, meta = registry.load(version)
    predictor = predictor_for(
        model,
        meta.model_sha256,
        lambda: (registry.root / version / MODEL_FILE).read_bytes(),
    )
    return model, meta, predictor


def load_shadow(registry: Registry, version: str) -> tuple[Shadow, ModelMetadata]:
    """The challenger, loaded and checked like the main version, and its metadata."""
    _, meta, predictor = load_model(registry, version)
    interval = None if meta.interval is None else meta.interval.model_dump(mode="json")
    return Shadow(version, predictor, interval), meta


def widen(plan: Plan) -> Plan:
    """The plan whose output schema ends with the challenger's columns (InputError when an
    input column already has one of their names, in any case)."""
    added = {n.casefold() for n in CHALLENGER_FIELDS.names}
    clash = [n for n in plan.schema.names if n.casefold() in added]
    if clash:
        raise InputError(
            f"the input has column(s) {quote_names(clash)}, which --challenger adds to its "
            "output; rename them in the input or score without --challenger"
        )
    schema = pa.schema(list(plan.schema) + list(CHALLENGER_FIELDS))
    return dataclasses.replace(plan, schema=schema)


def widen_schema(schema: pa.Schema, shadow: Shadow | None) -> pa.Schema:
    """A part's output schema: the rules' schema, then the challenger's columns if any."""
    return schema if shadow is None else pa.schema(list(schema) + list(CHALLENGER_FIELDS))
