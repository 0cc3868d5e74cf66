"""Scoring on a Dask cluster: partitions are validated and scored by the same rules as locally."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe  # noqa: F401  (fails early, with a clear message, without the dask extra)
import distributed  # noqa: F401
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch import scoring, storage
from batch.errors import BatchError, ConfigError, InputError, ModelError

log = logging.getLogger(__name__)

PARTITION_BYTES = 64 << 20  # CSV block size per partition (at least; see _frames)


@dataclass
class PartResult:
    """What one partition sends back: statistics, counts and the numeric-column observation."""

    file_index: int
    partition: int
    rows_read: int
    stats: scoring.RunStats
    numeric: scoring.NumericColumns


@dataclass
class ModelSpec:
    """The model as it travels to the workers once: weight and bias, or the .keras file's bytes."""

    fold: Any | None
    keras_bytes: bytes | None
    sha256: str


_MODELS: dict[str, Any] = {}  # per worker process: sha256 -> loaded Keras model


def _predictor(spec: ModelSpec):
    if spec.fold is not None:
        return spec.fold
    model = _MODELS.get(spec.sha256)
    if model is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from batch.model import keras

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            path.write_bytes(spec.keras_bytes)
            model = keras().saving.load_model(path, safe_mode=True, compile=False)
        _MODELS[spec.sha256] = model
    from batch.model import predict

    return lambda rooms: predict(model, rooms)


class PartitionFailed(RuntimeError):
    """Scoring or writing a partition failed for a reason that is not the input's content."""


def _process(pdf, ctx: scoring.BatchContext, first_row: int, file_index: int, partition: int,
             folder: str, spec: ModelSpec) -> PartResult:
    """Runs on a worker: score one partition and write its part files."""
    try:
        return _score_and_write(pdf, ctx, first_row, file_index, partition, folder, spec)
    except BatchError:
        raise
    except Exception as exc:
        raise PartitionFailed(f"partition {partition} of {ctx.source_file!r}: "
                              f"{type(exc).__name__}: {exc}") from exc


def _score_and_write(pdf, ctx: scoring.BatchContext, first_row: int, file_index: int,
                     partition: int, folder: str, spec: ModelSpec) -> PartResult:
    # Arrow-backed pandas columns may hold several chunks: make one contiguous batch.
    table = pa.Table.from_pandas(pdf, preserve_index=False).combine_chunks()
    batches = table.to_batches()
    batch = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
    out, rejects, stats = scoring.score_batch(batch, first_row, ctx, _predictor(spec))
    name = f"part-{file_index:05d}-{partition:05d}"
    base = Path(folder)
    pq.write_table(pa.Table.from_batches([out]), base / "predictions.parquet" / f"{name}.parquet")
    no_header = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    pacsv.write_csv(scoring.neutralised(out), base / "parts" / f"{name}.predictions.csv",
                    write_options=no_header)
    pacsv.write_csv(scoring.neutralised(rejects), base / "parts" / f"{name}.rejects.csv",
                    write_options=no_header)
    numeric = scoring.NumericColumns(ctx.retype_candidates)
    numeric.observe(out)
    return PartResult(file_index, partition, batch.num_rows, stats, numeric)


def _client(settings):
    from distributed import Client, LocalCluster

    # distributed installs its own INFO-level handler on import; keep its chatter out of our log.
    logging.getLogger("distributed").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    if settings.dask_address:
        log.info("connecting to the Dask cluster at %s", settings.dask_address)
        try:
            return Client(settings.dask_address, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {settings.dask_address} "
                              f"({exc}); check --dask-address / BATCH_DASK_ADDRESS") from None
    workers = settings.dask_workers or os.cpu_count() or 1
    log.info("starting a local Dask cluster with %d worker processes", workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.WARNING)
    return Client(cluster), cluster


def _frames(src: storage.InputFile):
    """The file as a Dask dataframe and the first data row of each partition."""
    import dask.dataframe as dd

    if src.format == "parquet":
        ddf = dd.read_parquet(str(src.path), split_row_groups=True, dtype_backend="pyarrow",
                              index=False)  # a stored pandas index stays an ordinary column
        meta = pq.ParquetFile(src.path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        if len(sizes) != ddf.npartitions:
            sizes = ddf.map_partitions(len).compute().tolist()
    else:
        compressed = src.path.name.lower().endswith(".gz")
        # engine="pyarrow": the local engine's parser, so both read a file alike (and both refuse
        # a row with the wrong number of fields, which pandas' own parser would pad silently).
        ddf = dd.read_csv(
            str(src.path), engine="pyarrow", sep=src.delimiter,
            header=0 if src.has_header else None, names=src.columns, dtype=str,
            dtype_backend="pyarrow", keep_default_na=False, na_values=[], encoding="utf-8-sig",
            blocksize=None if compressed else PARTITION_BYTES,
            compression="gzip" if compressed else None)
        # Row numbers need each block's length: one counting pass over the blocks, on the workers.
        sizes = ddf.map_partitions(len).compute().tolist()
    firsts = list(np.cumsum([1] + sizes[:-1]))
    return ddf, [int(f) for f in firsts]


def score_with_dask(settings, plan: scoring.Plan, staged: Path, version: str, meta: dict,
                    run_id: str, model):
    """The Dask engine: same outputs as the local one; predictions.parquet is a folder of parts."""
    import dask
    from distributed import as_completed

    from batch.registry import Registry

    registry = Registry(settings.models_dir)
    predictor = scoring.Predictor(model)
    (staged / "predictions.parquet").mkdir()
    (staged / "parts").mkdir()
    spec = ModelSpec(fold=predictor.fold,
                     keras_bytes=None if predictor.fold else
                     (registry.root / version / "model.keras").read_bytes(),
                     sha256=meta.get("model_sha256", ""))
    client, cluster = _client(settings)
    try:
        spec_future = client.scatter(spec, broadcast=True)  # the model goes to each worker once
        tasks, owners, files = [], [], []
        for index, src in enumerate(plan.files):
            c = plan.contexts[src.name]
            fstats = scoring.FileStats(src.name, src.sha256, src.format,
                                       rooms_column=c["rooms_column"], notes=list(src.notes))
            files.append(fstats)
            if src.empty or c["rooms_column"] is None:
                continue
            ctx = scoring.make_context(src, c, settings, meta, version, run_id, plan)
            try:
                ddf, firsts = _frames(src)
            except Exception as exc:
                raise InputError(f"input {src.name!r} is corrupt or unreadable "
                                 f"({storage.short_error(exc)}); fix or remove the file") from None
            for part, (chunk, first) in enumerate(zip(ddf.to_delayed(), firsts)):
                tasks.append(dask.delayed(_process)(chunk, ctx, first, index, part, str(staged),
                                                    spec_future))
                owners.append(src.name)
        futures = client.compute(tasks)
        by_key = {f.key: owner for f, owner in zip(futures, owners)}
        results: list[PartResult] = []
        last = time.monotonic()
        for future in as_completed(futures):
            if future.status == "error":
                exc = future.exception()
                for f in futures:
                    f.cancel()
                raise _partition_error(by_key[future.key], exc)
            results.append(future.result())
            if time.monotonic() - last >= settings.progress_seconds:
                log.info("progress: %d of %d partitions done", len(results), len(futures))
                last = time.monotonic()
        stats = scoring.RunStats()
        numeric = scoring.NumericColumns(plan.retype_candidates)
        for r in sorted(results, key=lambda r: (r.file_index, r.partition)):
            stats.merge(r.stats)
            numeric.merge(r.numeric)
            files[r.file_index].add(r.rows_read, r.stats)
        for src in plan.files:
            storage.check_unchanged(src)
        retype = numeric.columns
        if retype:
            parts = sorted((staged / "predictions.parquet").iterdir())
            client.gather(client.map(storage.retype_parquet, parts, columns=retype, pure=False))
            log.info("predictions.parquet: text column(s) %s hold only numbers; written as "
                     "float64", ", ".join(retype))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    _concatenate(staged, plan.schema)
    _check_parity(predictor, stats)
    return stats, files, predictor.path + " on Dask workers"


def _is_data_error(exc: BaseException) -> bool:
    """Errors that mean the file's content is bad (as opposed to a bug or a lost worker)."""
    import zlib

    import pandas as pd

    return isinstance(exc, (pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError,
                            EOFError, zlib.error, OSError))


def _partition_error(source: str, exc: BaseException) -> BaseException:
    name = type(exc).__name__
    if name in ("KilledWorker", "CommClosedError", "CancelledError"):
        return BatchError(f"a Dask worker failed while scoring {source!r} ({name}: {exc}); "
                          "nothing was published — check the workers' logs and run again")
    if isinstance(exc, BatchError):
        return exc
    if _is_data_error(exc):
        return InputError(f"input {source!r} is corrupt or unreadable ({name}: "
                          f"{storage.short_error(exc)}); fix or remove the file and run again")
    return exc  # a bug: surfaces as exit 1 with its traceback


def _concatenate(staged: Path, schema: pa.Schema) -> None:
    """One predictions.csv and one rejects.csv from the workers' parts, in input order."""
    parts = sorted((staged / "parts").iterdir())
    header = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    for kind, part_schema in (("predictions", schema), ("rejects", scoring.REJECT_SCHEMA)):
        target = staged / f"{kind}.csv"
        pacsv.write_csv(storage.csv_header_schema(part_schema).empty_table(), target,
                        write_options=header)
        with open(target, "ab") as out:
            for part in parts:
                if part.name.endswith(f".{kind}.csv"):
                    with open(part, "rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 20)
    shutil.rmtree(staged / "parts")


def _check_parity(predictor: scoring.Predictor, stats: scoring.RunStats) -> None:
    """The workers' predictions on the run's sample must equal the Keras model's own output."""
    rooms = stats.sample.cols.get("rooms")
    preds = stats.sample.cols.get("pred")
    if rooms is None or not len(rooms):
        return
    from batch.model import float32_gap, predict

    ours = preds[:10_000]
    gap = float32_gap(ours, predict(predictor.model, rooms[:10_000]))
    predictor.max_gap = gap
    if not gap <= scoring.PARITY_LIMIT:
        raise ModelError(f"predictions from the Dask workers differ from the Keras model by "
                         f"{gap:.1f} float32 epsilons; nothing was published (a bug: please "
                         "report it)")
    log.info("parity with the Keras model on %d sampled rows: largest gap %.2f float32 epsilons",
             len(ours), gap)
