"""One scoring run: resolve the model, stream the inputs, validate, predict, write, report, publish."""
from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch import features, storage
from batch.datasets import find_column
from batch.errors import ConfigError, InputError, ModelError, RejectBudgetExceeded
from batch.settings import Settings

log = logging.getLogger(__name__)

PREDICTION = "predicted_median_price_k"
ADDED_COLUMNS = ("source_file", "source_row", PREDICTION, "out_of_range", "model_version",
                 "run_id")
REJECT_SCHEMA = pa.schema([("source_file", pa.string()), ("source_row", pa.int64()),
                           ("raw_value", pa.string()), ("reason", pa.string())])
SAMPLE_SIZE = 20_000  # rows kept (uniformly at random) for quantiles and the fit plot
PARITY_ROWS = 256  # rows of every batch checked against the Keras model when the fold is used
PARITY_LIMIT = 2.0  # allowed gap, in float32 epsilons of the prediction
FIRST_REJECTS = 20  # rejected rows listed in report.html (all of them are in rejects.csv)
DIAGNOSIS_FILES = ("report.json", "report.html", "rejects.csv")


# -- statistics gathered batch by batch (mergeable, so partitions can be combined) ---------------

@dataclass
class Sample:
    """A uniform random sample of at most k rows: the k smallest random keys (mergeable exactly)."""

    k: int = SAMPLE_SIZE
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, keys: np.ndarray, **cols: np.ndarray) -> None:
        if len(self.keys) >= self.k:
            keep = keys < self.keys.max()
            keys = keys[keep]
            cols = {n: c[keep] for n, c in cols.items()}
        if not len(keys):
            return
        self.keys = np.concatenate([self.keys, keys])
        self.cols = {n: np.concatenate([self.cols.get(n, np.empty(0)), c]) for n, c in cols.items()}
        if len(self.keys) > self.k:
            idx = np.argpartition(self.keys, self.k - 1)[: self.k]
            self.keys = self.keys[idx]
            self.cols = {n: c[idx] for n, c in self.cols.items()}

    def merge(self, other: "Sample") -> None:
        if len(other.keys):
            self.add(other.keys, **other.cols)


@dataclass
class FileStats:
    path: str
    sha256: str
    format: str
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    rooms_column: str | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, rows_read: int, stats: "RunStats") -> None:
        self.rows_read += rows_read
        self.rows_scored += stats.scored
        self.rows_rejected += stats.rejected


@dataclass
class RunStats:
    """Counts, sums and a sample: enough for the report without keeping rows in memory."""

    rejects: dict[str, int] = field(default_factory=lambda: {r: 0 for r in features.REASONS})
    scored: int = 0
    out_of_range: int = 0
    below_range: int = 0
    above_range: int = 0
    pred_sum: float = 0.0
    pred_min: float = math.inf
    pred_max: float = -math.inf
    rooms_sum: float = 0.0
    rooms_sq: float = 0.0
    rooms_min: float = math.inf
    rooms_max: float = -math.inf
    actual_n: int = 0
    sq_err: float = 0.0
    abs_err: float = 0.0
    sample: Sample = field(default_factory=Sample)
    first_rejects: list[dict] = field(default_factory=list)  # shown in report.html

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    def merge(self, o: "RunStats") -> None:
        for r, n in o.rejects.items():
            self.rejects[r] = self.rejects.get(r, 0) + n
        for name in ("scored", "out_of_range", "below_range", "above_range", "pred_sum",
                     "rooms_sum", "rooms_sq", "actual_n", "sq_err", "abs_err"):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.pred_min, self.pred_max = min(self.pred_min, o.pred_min), max(self.pred_max, o.pred_max)
        self.rooms_min = min(self.rooms_min, o.rooms_min)
        self.rooms_max = max(self.rooms_max, o.rooms_max)
        self.sample.merge(o.sample)
        self.first_rejects = (self.first_rejects + o.first_rejects)[:FIRST_REJECTS]


# -- the per-batch rules (pure; shared by every engine) ----------------------------------------------

@dataclass
class BatchContext:
    """What scoring one batch of one file needs to know."""

    source_file: str
    sha256: str
    rooms_column: str
    target_column: str | None
    decimal_comma: bool
    domain: tuple[float, float]
    feature_range: tuple[float, float]
    model_version: str
    run_id: str
    schema: pa.Schema  # the output schema (input columns unified across files + added columns)
    retype_candidates: frozenset[str] = frozenset()  # text columns that may become float64


def score_batch(batch: pa.RecordBatch, first_row: int, ctx: BatchContext,
                predict: Callable[[np.ndarray], np.ndarray]
                ) -> tuple[pa.RecordBatch, pa.RecordBatch, RunStats]:
    """Validate one batch, predict the valid rows; returns (predictions, rejects, statistics).

    first_row is the 1-based data row number of the batch's first row within its file.
    """
    n = batch.num_rows
    raw = batch.column(ctx.rooms_column)
    checked = features.validate(raw, *ctx.domain, decimal_comma=ctx.decimal_comma)
    valid = checked.valid
    rows = np.arange(first_row, first_row + n, dtype="int64")
    stats = RunStats()

    bad = np.flatnonzero(~valid)
    if len(bad):
        codes = checked.codes[bad]
        for code in np.unique(codes):
            stats.rejects[features.REASONS[code - 1]] += int((codes == code).sum())
        reasons = np.array(features.REASONS, dtype=object)[codes - 1]
        rejects = pa.record_batch([
            _repeat(ctx.source_file, len(bad)),
            pa.array(rows[bad]),
            features.raw_text(raw.take(pa.array(bad))),
            pa.array(reasons, pa.string()),
        ], schema=REJECT_SCHEMA)
        stats.first_rejects = rejects.slice(0, FIRST_REJECTS).to_pylist()
    else:
        rejects = pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)

    good = np.flatnonzero(valid)
    kept = batch.take(pa.array(good)) if len(good) < n else batch
    rooms = checked.values[good]
    pred = np.asarray(predict(rooms), dtype="float32").reshape(-1)
    lo, hi = ctx.feature_range
    below, above = rooms < lo, rooms > hi
    flag = below | above

    columns = []
    for f in ctx.schema:
        if f.name in ADDED_COLUMNS:
            continue
        if f.name in kept.schema.names:
            col = kept.column(f.name)
            columns.append(col if col.type == f.type else pc.cast(col, f.type))
        else:
            columns.append(pa.nulls(len(good), f.type))
    columns += [_repeat(ctx.source_file, len(good)), pa.array(rows[good]),
                pa.array(pred, pa.float32()), pa.array(flag, pa.bool_()),
                _repeat(ctx.model_version, len(good)), _repeat(ctx.run_id, len(good))]
    out = pa.record_batch(columns, schema=ctx.schema)

    if len(good):
        p64 = pred.astype("float64")
        stats.scored = len(good)
        stats.out_of_range = int(flag.sum())
        stats.below_range, stats.above_range = int(below.sum()), int(above.sum())
        stats.pred_sum, stats.pred_min, stats.pred_max = float(p64.sum()), float(p64.min()), \
            float(p64.max())
        stats.rooms_sum, stats.rooms_sq = float(rooms.sum()), float((rooms ** 2).sum())
        stats.rooms_min, stats.rooms_max = float(rooms.min()), float(rooms.max())
        actual = np.full(len(good), np.nan)
        if ctx.target_column and ctx.target_column in kept.schema.names:
            actual, _ = features.parse_numbers(kept.column(ctx.target_column), ctx.decimal_comma)
            has = np.isfinite(actual)
            err = p64[has] - actual[has]
            stats.actual_n, stats.sq_err, stats.abs_err = int(has.sum()), float((err ** 2).sum()), \
                float(np.abs(err).sum())
        stats.sample.add(sample_keys(ctx.sha256, rows[good]), rooms=rooms, pred=p64,
                         actual=actual)
    return out, rejects, stats


def sample_keys(sha256: str, rows: np.ndarray) -> np.ndarray:
    """A pseudo-random key in [0, 1) per (file, row): the same sample whatever the batching/engine."""
    x = rows.astype("uint64") + np.uint64(zlib.crc32(sha256.encode()) << 32)
    with np.errstate(over="ignore"):  # splitmix64 wraps around by design
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype("float64") / float(1 << 53)


def _repeat(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, pa.string()), n)


# -- planning a run --------------------------------------------------------------------------------

@dataclass
class Plan:
    files: list[storage.InputFile]
    contexts: dict[str, dict[str, Any]]  # per file: rooms_column, target_column, decimal_comma
    schema: pa.Schema
    skipped: list[dict[str, str]]
    retype_candidates: frozenset[str] = frozenset()


def plan_inputs(settings: Settings, scored_hashes: set[str] | None) -> Plan:
    """Find and inspect every input before anything is written; InputError names the bad file."""
    paths = storage.resolve_inputs(settings.input)
    if not paths:
        raise InputError(f"no input files found in {', '.join(settings.input)} (looked for .csv, "
                         ".csv.gz, .parquet, .pq); check --input / BATCH_INPUT")
    files, skipped = [], []
    for path in paths:
        src = storage.inspect(path)
        if scored_hashes is not None and src.sha256 in scored_hashes:
            log.info("skipping %s: its content (sha256 %s) was scored by an earlier run",
                     path, src.sha256[:12])
            skipped.append({"path": str(path), "sha256": src.sha256})
            continue
        files.append(src)
    contexts: dict[str, dict[str, Any]] = {}
    fields: dict[str, pa.DataType] = {}
    parquet_text: set[str] = set()  # Parquet string columns keep their type
    for src in files:
        if src.empty:
            contexts[src.name] = {"rooms_column": None, "target_column": None,
                                  "decimal_comma": False}
            continue
        rooms = features.rooms_column(src.columns, settings.feature_column)
        if rooms is None:
            wanted = repr(settings.feature_column) if settings.feature_column else \
                "rm, rooms or avg_rooms"
            raise InputError(
                f"no column for rooms ({wanted}) in {src.name!r} (columns: "
                f"{', '.join(repr(c) for c in src.columns) or 'none'}); set --feature-column")
        clash = [c for c in src.columns if c in ADDED_COLUMNS]
        if clash:
            raise InputError(f"input {src.name!r} has column(s) {', '.join(map(repr, clash))}, "
                             "which the scorer adds to its output; rename them in the input")
        contexts[src.name] = {
            "rooms_column": rooms,
            "target_column": find_column(src.columns, settings.target_column, ()),
            "decimal_comma": src.delimiter == ";",
        }
        for name in src.columns:
            fields[name] = _unify(fields.get(name), src.types[name])
            if src.format == "parquet" and not _is_number_type(src.types[name]):
                parquet_text.add(name)
    schema = pa.schema([pa.field(n, t) for n, t in fields.items()] + [
        pa.field("source_file", pa.string()), pa.field("source_row", pa.int64()),
        pa.field(PREDICTION, pa.float32()), pa.field("out_of_range", pa.bool_()),
        pa.field("model_version", pa.string()), pa.field("run_id", pa.string())])
    candidates = frozenset(n for n, t in fields.items()
                           if pa.types.is_string(t) and n not in parquet_text)
    return Plan(files, contexts, schema, skipped, candidates)


def _is_number_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _unify(a: pa.DataType | None, b: pa.DataType) -> pa.DataType:
    """One type for a column seen in several files: equal types stay, numbers widen, else text."""
    if pa.types.is_dictionary(b):
        b = b.value_type
    if a is None or a == b:
        return b
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
    if any(t(a) for t in numeric) and any(t(b) for t in numeric):
        return pa.float64()
    return pa.string()


# -- the run ----------------------------------------------------------------------------------------

class Progress:
    """A progress line on a terminal (rows, rows/s), else a log line every few seconds."""

    def __init__(self, every: float, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.started = self.last = time.monotonic()
        self.rows = 0

    def update(self, rows: int, where: str) -> None:
        self.rows += rows
        now = time.monotonic()
        rate = self.rows / max(now - self.started, 1e-9)
        if self.tty:
            if now - self.last >= 0.2:
                self.stream.write(f"\rscoring {where}: {self.rows:,} rows ({rate:,.0f} rows/s)   ")
                self.stream.flush()
                self.last = now
        elif now - self.last >= self.every:
            log.info("progress: %s rows (%s rows/s), now in %s", f"{self.rows:,}",
                     f"{rate:,.0f}", where)
            self.last = now

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Predictor:
    """The model's prediction for a batch: the folded linear neuron when possible, else Keras.

    The fold is checked against the Keras model on rows of every batch; a gap beyond float32
    precision stops the run.
    """

    def __init__(self, model) -> None:
        from batch import model as m

        self._m = m
        self.model = model
        self.fold = m.fold_linear(model)
        self.max_gap = 0.0
        self.path = "folded Dense(1)" if self.fold else "Keras model"

    def __call__(self, rooms: np.ndarray) -> np.ndarray:
        if self.fold is None:
            return self._m.predict(self.model, rooms)
        out = self.fold(rooms)
        if len(rooms):
            gap = self._m.parity_gap(self.fold, self.model, rooms[:PARITY_ROWS])
            self.max_gap = max(self.max_gap, gap)
            if not gap <= PARITY_LIMIT:
                raise ModelError(f"the folded Dense(1) disagrees with the Keras model by {gap:.1f} "
                                 "float32 epsilons (or gives NaN/inf); nothing was published — "
                                 "score with another --model-version and report it")
        return out


def score(settings: Settings) -> dict[str, Any]:
    """Run one scoring run end to end; returns the JSON summary (raises BatchError on failure)."""
    from batch.registry import Registry

    started = dt.datetime.now(dt.timezone.utc)
    run_id = storage.new_run_id(started)
    out = storage.OutputDir(settings.output_dir)
    out.lock(run_id)
    staged: Path | None = None
    try:
        out.clean_leftovers()
        plan = plan_inputs(settings, out.scored_hashes() if settings.new_only else None)
        if not plan.files:
            log.info("nothing new to score: all %d input file(s) were scored before (--new-only)",
                     len(plan.skipped))
            return {"status": "nothing_new", "run_id": None, "run_dir": None, "rows_scored": 0,
                    "rows_rejected": 0, "skipped_inputs": len(plan.skipped)}
        if settings.engine == "dask":
            try:
                from batch.dask_engine import score_with_dask
            except ImportError as exc:
                raise ConfigError(f"--engine dask needs Dask ({exc}); install the extra with "
                                  "pip install -e '.[dask]' or use --engine local") from None
        registry = Registry(settings.models_dir)
        version = registry.resolve(settings.model_version)
        model, meta = registry.load(version)
        log.info("run %s: scoring %d file(s) with model %s (%s)", run_id, len(plan.files),
                 version, settings.model_version)

        staged = out.staging(run_id)
        if settings.engine == "dask":
            stats, files, predictor_path = score_with_dask(settings, plan, staged, version, meta,
                                                           run_id, model)
        else:
            stats, files, predictor_path = _score_local(settings, plan, staged, model, version,
                                                        meta, run_id)
        finished = dt.datetime.now(dt.timezone.utc)
        total = stats.scored + stats.rejected
        fraction = stats.rejected / total if total else 0.0
        over_budget = fraction > settings.max_reject_fraction
        from batch import report

        rep = report.build(run_id=run_id, status="failed" if over_budget else "succeeded",
                           started=started, finished=finished, version=version, meta=meta,
                           stats=stats, files=files, skipped=plan.skipped, settings=settings,
                           predictor=predictor_path, reject_fraction=fraction)
        report.write(staged, rep, meta, stats, registry.root / version,
                     plots=not over_budget)
        summary = {"status": rep["status"], "run_id": run_id, "rows_scored": stats.scored,
                   "rows_rejected": stats.rejected, "model_version": version}
        if over_budget:
            final = out.publish_failed(staged, run_id, DIAGNOSIS_FILES)
            staged = None
            summary.update(run_dir=str(final), status="reject_budget_exceeded")
            raise RejectBudgetExceeded(
                f"{stats.rejected} of {total} rows ({fraction:.1%}) were rejected, over the "
                f"budget of {settings.max_reject_fraction:.1%}; nothing was published — see "
                f"{final / 'rejects.csv'} and {final / 'report.html'}, fix the input or raise "
                "--max-reject-fraction", summary)
        final = out.publish(staged, run_id)
        staged = None
        summary["run_dir"] = str(final)
        summary["report"] = str(final / "report.html")
        log.info("run %s succeeded: %d rows scored, %d rejected, %d out of the training range; "
                 "report: %s", run_id, stats.scored, stats.rejected, stats.out_of_range,
                 final / "report.html")
        return summary
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        out.unlock()


def _score_local(settings: Settings, plan: Plan, staged: Path, model, version: str,
                 meta: dict, run_id: str) -> tuple[RunStats, list[FileStats], str]:
    predictor = Predictor(model)
    writers = storage.TableWriters(staged, plan.schema, plan.schema, REJECT_SCHEMA)
    stats = RunStats()
    files: list[FileStats] = []
    numeric = NumericColumns(plan.retype_candidates)
    progress = Progress(settings.progress_seconds)
    try:
        for src in plan.files:
            c = plan.contexts[src.name]
            fstats = FileStats(src.name, src.sha256, src.format, rooms_column=c["rooms_column"],
                               notes=list(src.notes))
            files.append(fstats)
            if src.empty or c["rooms_column"] is None:
                continue
            ctx = make_context(src, c, settings, meta, version, run_id, plan)
            first = 1
            for batch in storage.iter_batches(src, settings.chunk_rows):
                out_batch, rejects, bstats = score_batch(batch, first, ctx, predictor)
                first += batch.num_rows
                numeric.observe(out_batch)
                writers.parquet.write_batch(out_batch)
                writers.csv.write_batch(neutralised(out_batch))
                if rejects.num_rows:
                    writers.rejects.write_batch(neutralised(rejects))
                stats.merge(bstats)
                fstats.add(batch.num_rows, bstats)
                progress.update(batch.num_rows, src.name)
            storage.check_unchanged(src)
    finally:
        writers.close()
        progress.done()
    numeric.retype(staged / "predictions.parquet")
    if predictor.fold is not None:
        log.info("predictions by the folded Dense(1) (weight %.6f, bias %.6f); largest gap to the "
                 "Keras model on checked rows: %.2f float32 epsilons", predictor.fold.weight,
                 predictor.fold.bias, predictor.max_gap)
    return stats, files, predictor.path


def make_context(src: storage.InputFile, c: dict, settings: Settings, meta: dict, version: str,
                 run_id: str, plan: Plan) -> BatchContext:
    fr = meta.get("feature_range") or {}
    return BatchContext(
        source_file=src.name, sha256=src.sha256, rooms_column=c["rooms_column"],
        target_column=c["target_column"], decimal_comma=c["decimal_comma"],
        domain=(settings.domain_min, settings.domain_max),
        feature_range=(float(fr.get("min", -math.inf)), float(fr.get("max", math.inf))),
        model_version=version, run_id=run_id, schema=plan.schema,
        retype_candidates=plan.retype_candidates)


SAFE_COLUMNS = {"model_version", "run_id"}  # written by us: vN and a run id, never formulas


def neutralised(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as it goes into a CSV file: formula-like text cells defused."""
    cols = []
    for name, col in zip(batch.schema.names, batch.columns):
        if name in SAFE_COLUMNS:
            cols.append(col)
        elif name == "source_file" and len(col):
            # One file name per batch: check it once rather than on every row.
            first = features.neutralise(col.slice(0, 1))[0]
            cols.append(col if first == col[0] else _repeat(first.as_py(), len(col)))
        else:
            cols.append(features.neutralise(col))
    return pa.record_batch(cols, schema=batch.schema)


class NumericColumns:
    """Tracks text input columns whose every written value is a plain number (typical of CSV).

    Such columns are re-typed to float64 in predictions.parquet at the end, so analysts get numbers;
    predictions.csv keeps the text exactly as it came.
    """

    def __init__(self, candidates: frozenset[str] | set[str]) -> None:
        self.candidates = set(candidates)  # text columns from CSV (Parquet text stays text)
        self.seen: set[str] = set()

    def observe(self, batch: pa.RecordBatch) -> None:
        for name in list(self.candidates):
            col = batch.column(name)
            if col.null_count == len(col):
                continue
            if features.looks_numeric(col):
                self.seen.add(name)
            else:
                self.candidates.discard(name)

    def merge(self, other: "NumericColumns") -> None:
        self.candidates &= other.candidates
        self.seen |= other.seen

    @property
    def columns(self) -> list[str]:
        return sorted(self.candidates & self.seen)

    def retype(self, path: Path) -> None:
        """Store the all-number text columns of the Parquet file at `path` as float64."""
        cols = self.columns
        if cols:
            storage.retype_parquet(path, cols)
            log.info("predictions.parquet: text column(s) %s hold only numbers; written as "
                     "float64", ", ".join(cols))
