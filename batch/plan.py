"""Planning a run before anything is written: which files, their rooms/target columns, one schema.

Every input is inspected (and hashed) here, so a bad file stops the run before any output
exists. The output schema is the input columns unified across files, then rules.ADDED_FIELDS.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from batch import features, inputs
from batch.datasets import find_column
from batch.errors import InputError
from batch.rules import ADDED_COLUMNS, ADDED_FIELDS, BatchContext, feature_range

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilePlan:
    """One input file and how to read it: its rooms and target columns and decimal separator."""

    src: inputs.InputFile
    rooms_column: str | None  # None only for an empty file (nothing to score)
    target_column: str | None
    decimal_comma: bool

    @property
    def scorable(self) -> bool:
        return not self.src.empty and self.rooms_column is not None


@dataclass(frozen=True)
class Plan:
    """The files to score (in order), the ones skipped by --new-only, and the output schema."""

    files: list[FilePlan]
    schema: pa.Schema
    skipped: list[dict[str, str]]
    retype_candidates: frozenset[str] = frozenset()

    def context(self, index: int, *, domain: tuple[float, float], meta: dict, version: str,
                run_id: str) -> BatchContext:
        """The BatchContext for file `index` (scorable files only)."""
        fp = self.files[index]
        assert fp.rooms_column is not None
        return BatchContext(
            source_file=fp.src.name, sha256=fp.src.sha256, rooms_column=fp.rooms_column,
            target_column=fp.target_column, decimal_comma=fp.decimal_comma, domain=domain,
            feature_range=feature_range(meta), model_version=version, run_id=run_id,
            schema=self.schema, retype_candidates=self.retype_candidates)


def plan_inputs(entries: list[str], feature_column: str | None, target_column: str | None,
                scored_hashes: set[str] | None) -> Plan:
    """Find and inspect every input before anything is written; InputError names the bad file."""
    paths = inputs.resolve_inputs(entries)
    if not paths:
        raise InputError(f"no input files found in {', '.join(entries)} (looked for .csv, "
                         ".csv.gz, .parquet, .pq); check --input / BATCH_INPUT")
    found, skipped = [], []
    for path in paths:
        src = inputs.inspect(path)
        if scored_hashes is not None and src.sha256 in scored_hashes:
            log.info("skipping %s: its content (sha256 %s) was scored by an earlier run",
                     path, src.sha256[:12])
            skipped.append({"path": str(path), "sha256": src.sha256})
            continue
        found.append(src)
    files: list[FilePlan] = []
    fields: dict[str, pa.DataType] = {}
    parquet_text: set[str] = set()  # Parquet string columns keep their type
    for src in found:
        if src.empty:
            files.append(FilePlan(src, None, None, False))
            continue
        rooms = features.rooms_column(src.columns, feature_column)
        if rooms is None:
            wanted = repr(feature_column) if feature_column else "rm, rooms or avg_rooms"
            raise InputError(
                f"no column for rooms ({wanted}) in {src.name!r} (columns: "
                f"{', '.join(repr(c) for c in src.columns) or 'none'}); set --feature-column")
        clash = [c for c in src.columns if c in ADDED_COLUMNS]
        if clash:
            raise InputError(f"input {src.name!r} has column(s) {', '.join(map(repr, clash))}, "
                             "which the scorer adds to its output; rename them in the input")
        files.append(FilePlan(src, rooms, find_column(src.columns, target_column, ()),
                              decimal_comma=src.delimiter == ";"))
        for name in src.columns:
            fields[name] = unify(fields.get(name), src.types[name])
            if src.format == "parquet" and not is_number_type(src.types[name]):
                parquet_text.add(name)
    schema = pa.schema([pa.field(n, t) for n, t in fields.items()] + list(ADDED_FIELDS))
    candidates = frozenset(n for n, t in fields.items()
                           if pa.types.is_string(t) and n not in parquet_text)
    return Plan(files, schema, skipped, candidates)


def is_number_type(t: pa.DataType) -> bool:
    """Integer, floating or decimal (also as dictionary values)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def unify(a: pa.DataType | None, b: pa.DataType) -> pa.DataType:
    """One type for a column seen in several files: equal types stay, numbers widen, else text."""
    if pa.types.is_dictionary(b):
        b = b.value_type
    if a is None or a == b:
        return b
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
    if any(t(a) for t in numeric) and any(t(b) for t in numeric):
        return pa.float64()
    return pa.string()
