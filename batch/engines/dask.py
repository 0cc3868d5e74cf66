"""The Dask engine: the same per-part task, run on a cluster's workers, each writing its own parts.

Files are cut into parts (Parquet row groups, plain-CSV byte ranges of PART_BYTES cut at line
ends); CSV parts are numbered by a counting pass with the same reader. Each worker loads the
Predictor once, scores its parts and writes part files; the shared loop joins them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import dask  # noqa: F401  (fails early, with a clear message, without the dask extra)
from distributed import Client, Future, LocalCluster, as_completed
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker

from batch.core.errors import BatchError, ClusterLost, ConfigError
from batch.core.rules import REJECT_SCHEMA
from batch.engines.base import Engine, Job, PartResult, part_name, score_part
from batch.engines.challenger import widen_schema
from batch.io import inputs, outputs
from batch.io.plan import Plan
from batch.io.read_errors import short_error
from batch.io.sink import PredictionSink
from batch.io.source import Part
from batch.model.network import Predictor

log = logging.getLogger(__name__)

PART_BYTES = 64 << 20  # plain-CSV bytes per part


def _score_on_worker(part: Part, job: Job) -> PartResult:
    """Runs on a worker: score one part into its own part files."""
    ctx = job.contexts[part.file_index]
    sink = PredictionSink(
        job.staged,
        widen_schema(ctx.schema, job.shadow),
        REJECT_SCHEMA,
        part=part_name(part),
        numbers=ctx.numbers,
        integers=ctx.integers,
        formats=job.output_formats,
    )
    try:
        shadow = job.shadow.bind() if job.shadow is not None else None
        return score_part(part, ctx, job.predictor.load(), sink, job.chunk_rows, shadow=shadow)
    finally:
        sink.close()


# What distributed raises when a worker dies or the connection to the cluster breaks.
LOST = (
    KilledWorker,
    CommClosedError,
    concurrent.futures.CancelledError,
    asyncio.CancelledError,
    OSError,
    TimeoutError,
)


class DaskEngine(Engine):
    """Parts run as tasks on a Dask cluster (the one at dask_address, or a local one)."""

    name = "dask"

    def __init__(
        self,
        address: str | None,
        workers: int | None,
        progress_seconds: float,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.progress_seconds = progress_seconds
        self.part_bytes = part_bytes
        self.address = address or "a local cluster"
        # distributed installs its own INFO-level handler on import; keep its chatter out of our
        # log.
        logging.getLogger("distributed").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
        self.cluster: LocalCluster | None = None
        if address:
            log.info("connecting to the Dask cluster at %s", address)
            try:
                self.client = Client(address, timeout="30s")  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {address} ({exc}); check "
                    "--dask-address / BATCH_DASK_ADDRESS"
                ) from None
        else:
            n = workers or os.cpu_count() or 1
            log.info("starting a local Dask cluster with %d worker processes", n)
            self.cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
            self.client = Client(self.cluster)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]
        if self.cluster is not None:
            self.cluster.close()

    def describe(self, predictor: Predictor) -> str:
        return predictor.path + " on Dask workers"

    def map(self, fn: Callable[..., Any], items: list[Any], **kwargs: Any) -> list[Any]:
        futures = self.client.map(fn, items, pure=False, **kwargs)
        return self._gather(futures, [getattr(i, "label", str(i)) for i in items])

    def _run_parts(self, plan: Plan, job: Job) -> list[PartResult]:
        outputs.start_parts(job.staged)
        parts: list[Part] = []
        for index, fp in enumerate(plan.files):
            if not fp.scorable:
                continue
            pieces = inputs.split(fp.src, index, self.part_bytes)
            if len(pieces) > 1 and any(p.first_row is None for p in pieces):
                # Row numbers need each byte range's row count: one counting pass, on the workers.
                counts = self.map(inputs.count_rows, pieces)
                pieces = inputs.numbered(pieces, counts)
            parts.extend(pieces)
        # The model goes to each worker once.
        job_future = self.client.scatter(job, broadcast=True)  # type: ignore[no-untyped-call]
        futures = [self.client.submit(_score_on_worker, p, job_future, pure=False) for p in parts]
        return self._gather(futures, [p.label for p in parts])

    def _gather(self, futures: list[Future[Any]], labels: list[str]) -> list[Any]:
        """Results in submission order; the first failure cancels the rest and is raised."""
        where = {f.key: label for f, label in zip(futures, labels)}
        results: dict[Any, Any] = {}
        last = time.monotonic()
        try:
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                if future.status == "error":
                    exc = future.exception()
                    for f in futures:
                        f.cancel()  # type: ignore[no-untyped-call]
                    raise self._failure(exc, where[future.key])
                results[future.key] = future.result()
                if time.monotonic() - last >= self.progress_seconds:
                    log.info("progress: %d of %d tasks done", len(results), len(futures))
                    last = time.monotonic()
        except BatchError:
            raise
        except LOST as exc:
            raise self._failure(exc, "the run") from None
        return [results[f.key] for f in futures]

    def _failure(self, exc: BaseException, where: str) -> BaseException:
        if isinstance(exc, BatchError):
            return exc  # an input, model or other known error, raised on a worker
        if isinstance(exc, LOST):
            return ClusterLost(
                f"the Dask cluster ({self.address}) failed while scoring {where} "
                f"({type(exc).__name__}: {short_error(exc)}); nothing was "
                "published — check the workers' logs and run again"
            )
        return exc  # a bug: surfaces as exit 1 with its traceback
