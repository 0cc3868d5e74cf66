"""The datasets a run read or wrote, and what the run knows of them, without importing OpenLineage.

An input file's schema is its own columns with the types the run writes them with (the types
predictions.parquet carries), so a CSV and a Parquet copy of the same data read alike; its
data quality (rows, nulls, rejects by reason, the reject budget and the drift verdict) comes from
the run's per-file counts and its report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from batch.core.features import MISSING, REASONS
from batch.core.redact import redact
from batch.core.rules import REJECT_SCHEMA
from batch.storage.location import Location

if TYPE_CHECKING:
    from batch.core.documents import RunReport
    from batch.core.stats import FileStats

Schema = list[tuple[str, str]]  # (column, type) in order


def file_dataset(path: str | Location) -> tuple[str, str]:
    """(namespace, name) of a file or folder after OpenLineage's naming: file + absolute path,
    or s3://bucket + key."""
    text = redact(str(path))
    if "://" in text:
        scheme, rest = text.split("://", 1)
        bucket, _, key = rest.partition("/")
        return f"{scheme}://{bucket}", key
    return "file", str(Path(text).resolve())


@dataclass
class Quality:
    """An input file's data quality as the run measured it (OpenLineage's dataQualityMetrics and
    dataQualityAssertions input facets)."""

    rows: int
    size_bytes: int | None  # set from the file's record (score_inputs)
    columns: dict[str, dict[str, int]]  # column -> {"nullCount": n, "count": n}
    assertions: list[dict[str, Any]]
    rejects: dict[str, int]  # rows rejected, by reason


@dataclass
class DatasetRef:
    """A dataset a run read or wrote, described without importing OpenLineage."""

    namespace: str
    name: str
    schema: Schema | None = None
    rows: int | None = None  # outputs: the row count
    size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # shown in a custom dataset facet
    quality: Quality | None = None  # inputs: after the run measured them

    @classmethod
    def file(cls, path: str | Location, **kwargs: Any) -> DatasetRef:
        """A file (or folder) dataset named after OpenLineage's naming conventions."""
        namespace, name = file_dataset(path)
        return cls(namespace, name, **kwargs)


def type_name(t: pa.DataType) -> str:
    """A column type as the schema facet names it: Arrow's name, without the storage detail
    (large_string is string, a dictionary of strings is string), so formats read alike."""
    if pa.types.is_dictionary(t):
        return type_name(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    return str(t)


def arrow_schema(schema: Any) -> Schema:
    """(column, type) pairs of a pyarrow schema (or any fields with .name and .type)."""
    return [(f.name, type_name(f.type)) for f in schema]


def file_schema(columns: Iterable[str], types: Schema) -> Schema:
    """One file's own columns (in its order) with the types the run gave them in `types`."""
    by_name = dict(types)
    return [(c, by_name[c]) for c in columns if c in by_name]


def input_quality(files: list[FileStats], report: RunReport) -> dict[str, Quality]:
    """Each scored input's quality, by path: rows read; the rooms column's nulls (rows rejected
    as missing) and values; the true-price column's nulls and values among the scored rows; the
    reject budget and the drift verdict as assertions."""
    budget = report.max_reject_fraction
    drift = report.drift
    on_drift = report.settings.on_drift or "warn"
    out: dict[str, Quality] = {}
    for f in files:
        columns: dict[str, dict[str, int]] = {}
        if f.rooms_column:
            missing = f.rejects.get(REASONS[MISSING - 1], 0)
            columns[f.rooms_column] = {"nullCount": missing, "count": f.rows_read - missing}
        if f.target_column:
            columns[f.target_column] = {
                "nullCount": f.rows_scored - f.with_target,
                "count": f.with_target,
            }
        fraction = f.rows_rejected / f.rows_read if f.rows_read else 0.0
        assertions: list[dict[str, Any]] = [
            {
                "assertion": "reject_budget",
                "success": fraction <= budget,
                "severity": "error",
                "description": "share of rows rejected (rejects.csv) within --max-reject-fraction",
                "expected": f"<= {budget:g}",
                "actual": f"{fraction:.6g}",
            },
            {
                "assertion": "drift",
                "success": not drift.differs_markedly,
                "severity": "error" if on_drift == "fail" else "warn",
                "description": "the run's rooms do not differ markedly from the training data",
                "expected": "no_marked_difference",
                "actual": drift.verdict
                or ("differs_markedly" if drift.differs_markedly else "no_marked_difference"),
            },
        ]
        if f.rooms_column:
            for a in assertions:
                a["column"] = f.rooms_column
        out[f.path] = Quality(f.rows_read, None, columns, assertions, dict(f.rejects))
    return out


def score_inputs(
    files: list[Any],
    types: Schema | None,
    model_dir: Location | None = None,
    version: str | None = None,
    quality: Mapping[str, Quality] | None = None,
) -> list[DatasetRef]:
    """A scoring run's input datasets: each input file and the model version folder.

    `files` are the scorer's per-file records (`path`, `sha256`, `columns`); each file's schema
    facet is its own columns with their `types` (the run's output types); `quality` (by path)
    is what the run measured, with the file's rejects by reason in the custom facet.
    """
    refs = []
    for f in files:
        q = (quality or {}).get(str(f.path))
        extra: dict[str, Any] = {"sha256": getattr(f, "sha256", None)}
        if q is not None:
            extra["rejects_by_reason"] = dict(q.rejects)
            q.size_bytes = getattr(f, "size", None)
        columns = getattr(f, "columns", None)
        schema = file_schema(columns, types) if types and columns is not None else types
        refs.append(DatasetRef.file(f.path, schema=schema, extra=extra, quality=q))
    if model_dir is not None and version:
        refs.append(DatasetRef.file(model_dir / version, extra={"model_version": version}))
    return refs


def score_outputs(
    run_dir: Location,
    rows_scored: int,
    rows_rejected: int,
    schema: Schema | None = None,
) -> list[DatasetRef]:
    """A scoring run's output datasets: predictions (Parquet) and rejects.csv, with row counts."""
    return [
        DatasetRef.file(run_dir / "predictions.parquet", schema=schema, rows=rows_scored),
        DatasetRef.file(
            run_dir / "rejects.csv", rows=rows_rejected, schema=arrow_schema(REJECT_SCHEMA)
        ),
    ]
