"""Planning a run before anything is written: which files, their rooms/target columns, one schema.

Every input is inspected (and hashed) here, so a bad file stops the run before any output
exists. The output schema is the input columns unified across files, then rules.ADDED_FIELDS.
Which CSV text columns are written as numbers in predictions.parquet (int64, or float64) is
decided here too, once, from the first block of each file (see decide_numbers); integer columns
of any width are int64 in the output (a uint64 whose values may not fit stays uint64).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pyarrow as pa

from batch.core import features
from batch.core.columns import (
    as_int64_type,
    can_hold_rooms,
    conform,
    is_number_type,
    unify,
    value_type,
    with_numbers,
)
from batch.core.documents import ModelMetadata
from batch.core.errors import InputError
from batch.core.names import ROOMS_NAMES
from batch.core.rules import ADDED_COLUMNS, ADDED_FIELDS, BatchContext, feature_range
from batch.core.stats import NumericColumns
from batch.io import inputs
from batch.io.discovery import resolve_inputs
from batch.io.source import DEFAULT_LIMITS, InputFile, Limits, quote_names
from batch.storage import fs

log = logging.getLogger(__name__)

# Rows of each file observed to decide which text columns are numbers: the first batch, of at
# most this many rows and the file's batch_bytes (the max_batch_bytes setting).
FIRST_BLOCK_ROWS = 1 << 16


@dataclass(frozen=True)
class FilePlan:
    """One input file and how to read it: its rooms and target columns and decimal separator."""

    src: InputFile
    rooms_column: str | None  # None only for an empty file (nothing to score)
    target_column: str | None
    decimal_comma: bool

    @property
    def scorable(self) -> bool:
        return not self.src.empty and self.rooms_column is not None


@dataclass(frozen=True)
class Plan:
    """The files to score (in order), the ones skipped by --new-only, and the output schema.

    schema holds the rows as scored and as written to predictions.csv (CSV columns as text);
    `numbers` are the text columns predictions.parquet holds as numbers (see decide_numbers):
    int64 for those in `integers`, float64 for the others.
    """

    files: list[FilePlan]
    schema: pa.Schema
    skipped: list[dict[str, str]]
    retype_candidates: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    integers: frozenset[str] = frozenset()

    @property
    def parquet_schema(self) -> pa.Schema:
        """The schema predictions.parquet is written with (until a value contradicts `numbers`)."""
        return with_numbers(self.schema, self.numbers, self.integers)

    def context(
        self,
        index: int,
        *,
        domain: tuple[float, float],
        meta: ModelMetadata,
        version: str,
        run_id: str,
    ) -> BatchContext:
        """The BatchContext for file `index` (scorable files only)."""
        fp = self.files[index]
        assert fp.rooms_column is not None
        return BatchContext(
            source_file=fp.src.name,
            sha256=fp.src.sha256,
            rooms_column=fp.rooms_column,
            target_column=fp.target_column,
            decimal_comma=fp.decimal_comma,
            domain=domain,
            feature_range=feature_range(meta),
            model_version=version,
            run_id=run_id,
            schema=self.schema,
            retype_candidates=self.retype_candidates,
            numbers=self.numbers,
            integers=self.integers,
            interval=None if meta.interval is None else meta.interval.model_dump(mode="json"),
        )


def plan_inputs(
    entries: list[str],
    feature_column: str | None,
    target_column: str | None,
    scored_hashes: set[str] | None,
    domain: tuple[float, float] = (-math.inf, math.inf),
    limits: Limits = DEFAULT_LIMITS,
) -> Plan:
    """Find and inspect every input before anything is written; InputError names the bad file.

    domain is the rooms domain of the run: rows it would reject do not count when deciding which
    text columns are numbers, as they are not written to predictions.parquet. limits bound what
    one file may cost (bytes per batch, columns); every step is linear in the column count.
    """
    paths = resolve_inputs(entries)
    if not paths:
        raise InputError(
            f"no input files found in {', '.join(entries)} (looked for .csv, "
            ".csv.gz, .parquet, .pq); check --input / BATCH_INPUT"
        )
    found, skipped = _inspect_new(paths, scored_hashes, limits)
    files = [_file_plan(src, feature_column, target_column) for src in found]
    fields, parquet_text, parquet_fractions = _unify_columns(
        [fp.src for fp in files if not fp.src.empty]
    )
    fields = {n: one_text_type(t) for n, t in fields.items()}
    schema = pa.schema([pa.field(n, t) for n, t in fields.items()] + list(ADDED_FIELDS))
    candidates = frozenset(
        n for n, t in fields.items() if pa.types.is_string(t) and n not in parquet_text
    )
    numbers, integers = decide_numbers(files, candidates, domain, parquet_fractions)
    return Plan(files, schema, skipped, candidates, numbers, integers)


def _inspect_new(
    paths: list[fs.Location], scored_hashes: set[str] | None, limits: Limits
) -> tuple[list[InputFile], list[dict[str, str]]]:
    """(the inspected inputs to score, the ones --new-only skips as scored by an earlier run)."""
    found, skipped = [], []
    for path in paths:
        src = inputs.inspect(path, limits)
        if scored_hashes is not None and src.sha256 in scored_hashes:
            log.info(
                "skipping %s: its content (sha256 %s) was scored by an earlier run",
                path,
                src.sha256[:12],
            )
            skipped.append({"path": str(path), "sha256": src.sha256})
            continue
        found.append(src)
    return found, skipped


def _file_plan(src: InputFile, feature_column: str | None, target_column: str | None) -> FilePlan:
    """How to read one file: its rooms and target columns; InputError when it cannot be scored."""
    if src.empty:
        return FilePlan(src, None, None, False)
    refuse_case_twins(src)
    rooms = pick_column(src, feature_column, ROOMS_NAMES, "rooms", "--feature-column")
    if rooms is None:
        wanted = repr(feature_column) if feature_column else "rm, rooms or avg_rooms"
        raise InputError(
            f"no column for rooms ({wanted}) in {src.name!r} (columns: "
            f"{quote_names(src.columns) or 'none'}); set --feature-column"
        )
    if not can_hold_rooms(src.types[rooms]):
        raise InputError(
            f"the rooms column {rooms!r} in {src.name!r} has type {src.types[rooms]}, which "
            "cannot hold a number; send rooms as numbers or text, or point --feature-column "
            "at another column"
        )
    added = {c.casefold() for c in ADDED_COLUMNS}
    clash = [c for c in src.columns if str(c).casefold() in added]
    if clash:
        raise InputError(
            f"input {src.name!r} has column(s) {quote_names(clash)}, "
            "which the scorer adds to its output; rename them in the input"
        )
    target = (
        pick_column(src, target_column, (), "true-price", "--target-column")
        if target_column
        else None
    )
    return FilePlan(src, rooms, target, decimal_comma=src.delimiter == ";")


def one_text_type(t: pa.DataType) -> pa.DataType:
    """Text is one type in the output, whatever the reader made of it: large and view strings
    are `string`, so a CSV and a Parquet feed of the same rows give the same schema."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return t


def refuse_case_twins(src: InputFile) -> None:
    """InputError (exit 3) when two columns of one file differ only in case: they would be one
    output column."""
    seen: dict[str, str] = {}
    for name in src.columns:
        twin = seen.setdefault(str(name).casefold(), name)
        if twin != name:
            raise InputError(
                f"input {src.name!r} has columns {twin!r} and {name!r}, whose names differ "
                "only in case; the output has one column for both: rename or drop one of them"
            )


def output_names(sources: list[InputFile]) -> dict[str, str]:
    """The output column of every input column name, case-insensitively: the spelling of its
    first appearance, in input order (`RM` in one file and `rm` in a later one are one column
    `RM`)."""
    first: dict[str, str] = {}
    names: dict[str, str] = {}
    for src in sources:
        for name in src.columns:
            names[name] = first.setdefault(str(name).casefold(), name)
    return names


def _unify_columns(
    sources: list[InputFile],
) -> tuple[dict[str, pa.DataType], set[str], set[str]]:
    """(one type per output column across files, the Parquet text columns that keep their
    type, the Parquet float and decimal columns); column names that differ only in case are one
    column (see output_names). Integers of any width are int64 (columns.as_int64_type)."""
    fields: dict[str, pa.DataType] = {}
    exact: dict[str, bool] = {}  # integer columns so far exact as float64 (see columns.unify)
    parquet_text: set[str] = set()  # Parquet string columns keep their type
    fractions: set[str] = set()  # Parquet floats: never int64, even where their text is whole
    canonical = output_names(sources)
    for src in sources:
        for column in src.columns:
            name = canonical[column]
            t = as_int64_type(src.types[column], column in src.small_uint64)
            if (
                src.format == "parquet"
                and is_number_type(t)
                and not pa.types.is_integer(value_type(t))
            ):
                fractions.add(name)
            this_exact = src.format == "csv" or column in src.exact_ints
            fields[name] = unify(
                fields.get(name), t, a_exact=exact.get(name, True), b_exact=this_exact
            )
            exact[name] = exact.get(name, True) and this_exact
            if src.format == "parquet" and not is_number_type(t):
                parquet_text.add(name)
    return fields, parquet_text, fractions


def decide_numbers(
    files: list[FilePlan],
    candidates: frozenset[str],
    domain: tuple[float, float],
    fractions: frozenset[str] | set[str] = frozenset(),
) -> tuple[frozenset[str], frozenset[str]]:
    """(the candidate text columns to write as numbers, those of them to write as int64),
    decided once from each file's first block.

    A column qualifies when, in the first FIRST_BLOCK_ROWS rows of every file that has it, every
    cell of the rows the run would score is a plain number a float64 keeps exactly
    (number_text.looks_numeric, after a ';' file's decimal commas become points) or a whole
    number an int64 holds (number_text.as_int64), and at least one such cell is there at all; it
    is int64 when every such cell is a whole number and no Parquet input holds it as floats or
    decimals (`fractions`). Later batches are checked as they are written
    (sink.PredictionSink); a decimal in an int64 column widens it to float64 where no value
    changes, and a value that is not a number turns the column back to text, exactly as it
    came, so the decision can cost time but never a value.
    """
    observed = NumericColumns(set(candidates), fractional=set(fractions))
    canonical = output_names([fp.src for fp in files if not fp.src.empty])
    for index, fp in enumerate(files):
        if not fp.scorable:
            continue
        pairs = [(n, canonical[n]) for n in fp.src.columns if canonical[n] in candidates]
        if not pairs:
            continue
        assert fp.rooms_column is not None
        batch = first_block(fp, index)
        if batch is None:
            continue
        valid = features.validate(
            batch.column(fp.rooms_column), *domain, decimal_comma=fp.decimal_comma
        ).valid
        kept = batch.filter(pa.array(valid))
        cols = []
        for name, _ in pairs:  # as rules.score_batch makes them: text, decimal points
            col = conform(kept.column(name), pa.string())
            cols.append(features.decimal_points(col) if fp.decimal_comma else col)
        observed.observe(pa.record_batch(cols, names=[out for _, out in pairs]))
    numbers, integers = frozenset(observed.columns), frozenset(observed.integers)
    if numbers:
        log.info(
            "text column(s) %s hold plain numbers in the first %s rows of every file: "
            "predictions.parquet stores them as numbers (int64: %s)",
            ", ".join(sorted(numbers)),
            f"{FIRST_BLOCK_ROWS:,}",
            ", ".join(sorted(integers)) or "none",
        )
    return numbers, integers


def first_block(fp: FilePlan, index: int) -> pa.RecordBatch | None:
    """The first FIRST_BLOCK_ROWS rows of a file (None when empty), read as the run reads it."""
    batches = inputs.iter_batches(inputs.whole(fp.src, index), FIRST_BLOCK_ROWS)
    try:
        batch = next(batches, None)
    finally:
        batches.close()
    if batch is not None and batch.num_rows > FIRST_BLOCK_ROWS:
        batch = batch.slice(0, FIRST_BLOCK_ROWS)
    return batch


def pick_column(
    src: InputFile, wanted: str | None, candidates: tuple[str, ...], what: str, flag: str
) -> str | None:
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
    raise InputError(
        f"input {src.name!r} has {len(matches)} columns that could be the {what} "
        f"column ({quote_names(matches)}); it is ambiguous — set "
        f"{flag} to one of them, spelt exactly, or rename the other"
    )
