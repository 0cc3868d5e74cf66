"""What every engine shares: the per-part task and the loop around it (merge, checks, parity).

An engine only decides how parts are cut and where `score_part` runs (`_run_parts`) and how a
function is mapped over output files (`map`). Everything else happens once, here, for all.
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from batch.core.rules import REJECT_SCHEMA, BatchContext, Predict, score_batch
from batch.core.shadow import ShadowStats
from batch.core.stats import FileStats, RunStats
from batch.engines.challenger import AddShadow, Shadow
from batch.io import inputs, outputs, settle, text_restore
from batch.io.pipeline import ReadAhead
from batch.io.plan import Plan
from batch.io.read_errors import READ_ERRORS, is_memory_error, memory_error
from batch.io.sink import PredictionSink, keep_formats
from batch.io.source import Part
from batch.model.network import Predictor, check_parity
from batch.storage import fs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Everything a part task needs, picklable (the Dask engine ships it to each worker once)."""

    staged: fs.Location  # the run's staging folder
    contexts: dict[int, BatchContext]  # by file index (scorable files only)
    predictor: Predictor
    chunk_rows: int
    output_formats: str = "both"  # the prediction files kept: both, parquet or csv
    shadow: Shadow | None = None  # the challenger scored beside the main version (--challenger)


@dataclass
class PartResult:
    """What scoring one part gives back: its statistics."""

    file_index: int
    part: int
    rows_read: int
    stats: RunStats
    shadow: ShadowStats | None = None  # the challenger's comparison (--challenger)


@dataclass
class EngineResult:
    stats: RunStats
    files: list[FileStats]
    prediction_path: str
    parity_gap: float
    phases: dict[str, float] = field(default_factory=dict)
    shadow: ShadowStats | None = None  # merged over the parts in input order (--challenger)


OnBatch = Callable[[int, Part], None]


def score_part(
    part: Part,
    ctx: BatchContext,
    predict: Predict,
    sink: PredictionSink,
    chunk_rows: int,
    on_batch: OnBatch | None = None,
    read_ahead: int = 0,
    shadow: AddShadow | None = None,
) -> PartResult:
    """The one per-part task: stream the part, apply the rules per batch, write to the sink.

    read_ahead > 0 reads up to that many batches ahead in a thread (batch.io.pipeline), so the
    next batch is read while this one is scored; the batches and results are the same.
    """
    assert part.first_row is not None, "number the parts (inputs.numbered) before scoring them"
    stats = RunStats()
    compared = ShadowStats() if shadow is not None else None
    first = part.first_row
    batches = inputs.iter_batches(part, chunk_rows)
    with (
        ReadAhead(batches, read_ahead) if read_ahead > 0 else contextlib.nullcontext(batches)
    ) as stream:
        for batch in stream:
            try:
                out, rejects, bstats = score_batch(batch, first, ctx, predict)
                if shadow is not None and compared is not None:
                    out, sstats = shadow(out)
                    compared.merge(sstats)
                sink.write(out, rejects)
            except READ_ERRORS as exc:
                # Memory (or an Arrow array's size) ran out on this file's batch: the file's
                # fault, and the sentence names the limit; anything else is a bug.
                if not is_memory_error(exc):
                    raise
                raise memory_error(part.src.name, exc, part.src.batch_bytes) from None
            first += batch.num_rows
            stats.merge(bstats)
            if on_batch is not None:
                on_batch(batch.num_rows, part)
    return PartResult(part.file_index, part.index, first - part.first_row, stats, compared)


def part_name(part: Part) -> str:
    """The part's file name stem: sorts in input order."""
    return f"part-{part.file_index:05d}-{part.index:05d}"


class Engine(ABC):
    """Runs the per-part task over a plan; subclasses say how (in process, on a cluster)."""

    name = "engine"

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the engine holds (a cluster connection, say)."""
        return None  # an engine that holds nothing has nothing to release

    @abstractmethod
    def _run_parts(self, plan: Plan, job: Job) -> list[PartResult]:
        """Score every scorable file of the plan; write into job.staged."""

    def map(self, fn: Callable[..., Any], items: list[Any], **kwargs: Any) -> list[Any]:
        """fn(item, **kwargs) for each item (engines may run them in parallel)."""
        return [fn(item, **kwargs) for item in items]

    def describe(self, predictor: Predictor) -> str:
        return predictor.path

    def _settle_numbers(self, plan: Plan, staged: fs.Location) -> None:
        """One type per column in predictions.parquet (batch.io.settle): text in every file
        where one writer met a value that is not a number (restored from the CSV text of the
        same rows), float64 in every file where one met a decimal in an int64 column and no
        value changes; else the plan's decision stands."""
        settled = settle.settle_types(staged, plan.numbers)
        sources = text_restore.text_sources(staged, set(settled.text)) if settled.text else []
        if sources:  # none when each writer met its first non-number before writing a row
            self.map(text_restore.restore_text, sources, columns=sorted(settled.text))
            log.info(
                "predictions.parquet: column(s) %s kept as text throughout (they held values "
                "that are not plain numbers); rewrote the Parquet files of %d writer(s) that "
                "had stored them as numbers",
                ", ".join(sorted(settled.text)),
                len(sources),
            )
        files = settle.files_with(staged, settled.wider) if settled.wider else []
        if files:
            self.map(settle.widen_file, files, columns=sorted(settled.wider))
            log.info(
                "predictions.parquet: column(s) %s are float64 throughout (they held decimals "
                "after whole numbers); rewrote %d Parquet file(s) that had stored them as int64",
                ", ".join(sorted(settled.wider)),
                len(files),
            )

    def _stream(self, plan: Plan, job: Job) -> list[PartResult]:
        """_run_parts, then the batches' memory handed back to the system before the report
        (its plots load matplotlib): under an address-space limit, memory kept is memory lost."""
        results = self._run_parts(plan, job)
        pa.default_memory_pool().release_unused()
        return results

    def _finish_files(self, plan: Plan, job: Job) -> None:
        """The staged prediction files as published: one type per column, the CSV parts
        joined, an (empty) Parquet part at least, only the formats asked for."""
        staged = job.staged
        self._settle_numbers(plan, staged)
        if (staged / outputs.PARTS).is_dir():
            outputs.join_parts(staged, plan.schema, REJECT_SCHEMA)
        if job.output_formats != "csv":
            outputs.ensure_parquet(staged, plan.parquet_schema)
        keep_formats(staged, job.output_formats)

    def run(self, plan: Plan, job: Job, model: Any) -> EngineResult:
        """Score the plan into job.staged; `model` is the Keras model the parity check uses.

        model is None only for a fold verified against Keras at publish time (the predictor
        says so): that verification stands in for the run-end check, so no TensorFlow loads.
        """
        t0 = time.monotonic()
        results = self._stream(plan, job)
        t1 = time.monotonic()
        stats = RunStats()
        files = [
            FileStats(
                fp.src.name,
                fp.src.sha256,
                fp.src.format,
                rooms_column=fp.rooms_column,
                target_column=fp.target_column,
                notes=list(fp.src.notes),
            )
            for fp in plan.files
        ]
        shadow = ShadowStats() if job.shadow is not None else None
        for r in sorted(results, key=lambda r: (r.file_index, r.part)):
            stats.merge(r.stats)
            if shadow is not None and r.shadow is not None:
                shadow.merge(r.shadow)
            files[r.file_index].add(r.rows_read, r.stats)
        for fp in plan.files:
            inputs.check_unchanged(fp.src)
        self._finish_files(plan, job)
        path = self.describe(job.predictor)
        if model is None:
            assert job.predictor.verified, "only a verified fold is scored without its model"
            gap = 0.0
            log.info(
                "parity with Keras was verified when the version was published; "
                "TensorFlow was not loaded"
            )
        else:
            gap = check_parity(
                model,
                stats.sample.cols.get("rooms", np.empty(0)),
                stats.sample.cols.get("pred", np.empty(0)),
                f"by the {path}",
            )
        if job.predictor.fold is not None:
            log.info(
                "predictions by the folded Dense(1) (weight %.6f, bias %.6f)",
                job.predictor.fold.weight,
                job.predictor.fold.bias,
            )
        return EngineResult(
            stats,
            files,
            path,
            gap,
            {"stream": round(t1 - t0, 3), "finalize": round(time.monotonic() - t1, 3)},
            shadow,
        )
