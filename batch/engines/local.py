"""The local engine: every file streamed whole, in this process, into one set of output files."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from batch.core.rules import REJECT_SCHEMA
from batch.engines.base import Engine, Job, PartResult, score_part
from batch.io import inputs
from batch.io.pipeline import DEPTH, PipelinedSink
from batch.io.plan import Plan
from batch.io.sink import PredictionSink
from batch.io.source import Part

log = logging.getLogger(__name__)


class Progress:
    """A progress line on a terminal (rows, rows/s), else a log line every few seconds."""

    def __init__(self, every: float, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.started = self.last = time.monotonic()
        self.rows = 0

    def update(self, rows: int, part: Part) -> None:
        self.rows += rows
        where = part.src.name
        now = time.monotonic()
        rate = self.rows / max(now - self.started, 1e-9)
        if self.tty:
            if now - self.last >= 0.2:
                self.stream.write(f"\rscoring {where}: {self.rows:,} rows ({rate:,.0f} rows/s)   ")
                self.stream.flush()
                self.last = now
        elif now - self.last >= self.every:
            log.info(
                "progress: %s rows (%s rows/s), now in %s", f"{self.rows:,}", f"{rate:,.0f}", where
            )
            self.last = now

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class LocalEngine(Engine):
    """One process, files one after another; memory stays flat (batches of chunk_rows).

    Pipelined by default (batch.io.pipeline): batch k+1 is read while batch k is validated and
    scored and batch k-1 is written, each stage in its own thread with bounded queues, so the
    run takes about as long as its slowest stage rather than the sum of all. pipeline=False runs
    the stages one after another in this thread (the same files, byte for byte).
    """

    name = "local"

    def __init__(self, progress_seconds: float, pipeline: bool = True) -> None:
        self.progress_seconds = progress_seconds
        self.pipeline = pipeline

    def _run_parts(self, plan: Plan, job: Job) -> list[PartResult]:
        predict = job.predictor.load()
        shadow = job.shadow.bind() if job.shadow is not None else None
        if self.pipeline:
            sink: PredictionSink = PipelinedSink(
                job.staged,
                plan.schema,
                REJECT_SCHEMA,
                numbers=plan.numbers,
                integers=plan.integers,
                formats=job.output_formats,
            )
        else:
            sink = PredictionSink(
                job.staged,
                plan.schema,
                REJECT_SCHEMA,
                numbers=plan.numbers,
                integers=plan.integers,
                formats=job.output_formats,
            )
        progress = Progress(self.progress_seconds)
        read_ahead = DEPTH if self.pipeline else 0
        results = []
        try:
            for index, fp in enumerate(plan.files):
                if fp.scorable:
                    results.append(
                        score_part(
                            inputs.whole(fp.src, index),
                            job.contexts[index],
                            predict,
                            sink,
                            job.chunk_rows,
                            progress.update,
                            read_ahead=read_ahead,
                            shadow=shadow,
                        )
                    )
        except BaseException:
            # Stop the writer threads first; the error that stopped the run is the one raised.
            if isinstance(sink, PipelinedSink):
                sink.abort()
            else:
                _close_quietly(sink)
            raise
        finally:
            progress.done()
        sink.close()
        return results


def _close_quietly(sink: PredictionSink) -> None:
    try:
        sink.close()
    except Exception as exc:  # the run fails anyway; its own error is the one to report
        log.debug("closing the prediction files after an error: %s", exc)
