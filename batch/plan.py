"""Planning a run before anything is written: which files, their rooms/target columns, one schema.

Every input is inspected (and hashed) here, so a bad file stops the run before any output
exists. The output schema is the input columns unified across files, then rules.ADDED_FIELDS.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from batch import inputs
from batch.columns import can_hold_rooms, is_number_type, unify
from batch.datasets import ROOMS_NAMES
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
            schema=self.schema, retype_candidates=self.retype_candidates,
            interval=meta.get("interval"))


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
    exact: dict[str, bool] = {}  # integer columns so far exact as float64 (see columns.unify)
    parquet_text: set[str] = set()  # Parquet string columns keep their type
    for src in found:
        if src.empty:
            files.append(FilePlan(src, None, None, False))
            continue
        rooms = pick_column(src, feature_column, ROOMS_NAMES, "rooms", "--feature-column")
        if rooms is None:
            wanted = repr(feature_column) if feature_column else "rm, rooms or avg_rooms"
            raise InputError(
                f"no column for rooms ({wanted}) in {src.name!r} (columns: "
                f"{', '.join(repr(c) for c in src.columns) or 'none'}); set --feature-column")
        if not can_hold_rooms(src.types[rooms]):
            raise InputError(
                f"the rooms column {rooms!r} in {src.name!r} has type {src.types[rooms]}, which "
                "cannot hold a number; send rooms as numbers or text, or point --feature-column "
                "at another column")
        clash = [c for c in src.columns if c in ADDED_COLUMNS]
        if clash:
            raise InputError(f"input {src.name!r} has column(s) {', '.join(map(repr, clash))}, "
                             "which the scorer adds to its output; rename them in the input")
        target = pick_column(src, target_column, (), "true-price", "--target-column") \
            if target_column else None
        files.append(FilePlan(src, rooms, target, decimal_comma=src.delimiter == ";"))
        for name in src.columns:
            t = src.types[name]
            this_exact = src.format == "csv" or name in src.exact_ints
            fields[name] = unify(fields.get(name), t, a_exact=exact.get(name, True),
                                 b_exact=this_exact)
            exact[name] = exact.get(name, True) and this_exact
            if src.format == "parquet" and not is_number_type(t):
                parquet_text.add(name)
    schema = pa.schema([pa.field(n, t) for n, t in fields.items()] + list(ADDED_FIELDS))
    candidates = frozenset(n for n, t in fields.items()
                           if pa.types.is_string(t) and n not in parquet_text)
    return Plan(files, schema, skipped, candidates)


def pick_column(src: inputs.InputFile, wanted: str | None, candidates: tuple[str, ...],
                what: str, flag: str) -> str | None:
    """The column named `wanted` (else one of `candidates`), compared case- and space-insensitively.

    Two matching columns are ambiguous (InputError naming them) unless exactly one of them is
    spelt exactly as `wanted`.
    """
    names = {n.strip().lower() for n in ([wanted] if wanted else list(candidates))}
    matches = [c for c in src.columns if str(c).strip().lower() in names]
    if len(matches) <= 1:
        return matches[0] if matches else None
    exact = [c for c in matches if wanted is not None and str(c).strip() == wanted.strip()]
    if len(exact) == 1:
        return exact[0]
    raise InputError(f"input {src.name!r} has {len(matches)} columns that could be the {what} "
                     f"column ({', '.join(repr(c) for c in matches)}); it is ambiguous — set "
                     f"{flag} to one of them, spelt exactly, or rename the other")
