"""The two baselines, each run as its own child process: (b) the naive script and (c) the I/O floor.

bench.py starts them as `bench.py _naive ...` and `bench.py _floor ...`; each writes its own phase
timings to the --timings file, which the parent reads after the child exits.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import BOSTON, CSV_BLOCK, PREDICTION, REJECT_COLUMNS, SCORER_CHUNK


def child_floor(argv: list[str]) -> int:
    """(c): pyarrow streams the input, writes the same prediction files; no validation, no model."""
    p = argparse.ArgumentParser(prog="bench.py _floor")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timings", required=True)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    src, out = Path(a.input), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".parquet":
        pf = pq.ParquetFile(src, pre_buffer=False, buffer_size=1 << 20)
        batches = pf.iter_batches(batch_size=SCORER_CHUNK)
    else:
        types = {c: pa.float64() for c in BOSTON} | {
            "suburb_id": pa.string(),
            "suburb": pa.string(),
        }
        batches = pacsv.open_csv(
            src,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )
    run_id = "20260101T000000Z-floor0"  # same length as a real run id
    weight, bias, lo, hi = np.float32(9.1), np.float32(-34.7), 3.561, 8.78
    pq_writer = csv_writer = None
    first, rows = 1, 0
    t_io = time.monotonic()
    for batch in batches:
        n = batch.num_rows
        rm = batch.column("rm").to_numpy(zero_copy_only=False).astype("float32")
        pred = rm * weight + bias
        extra = [
            pa.repeat(pa.scalar(str(src), pa.string()), n),
            pa.array(np.arange(first, first + n, dtype="int64")),
            pa.array(pred, pa.float32()),
            # the price band's two columns, so the floor writes the scorer's very files
            pa.array(pred - np.float32(8), pa.float32()),
            pa.array(pred + np.float32(8), pa.float32()),
            pa.array((rm < lo) | (rm > hi), pa.bool_()),
            pa.repeat(pa.scalar("v1", pa.string()), n),
            pa.repeat(pa.scalar(run_id, pa.string()), n),
        ]
        names = batch.schema.names + [
            "source_file",
            "source_row",
            PREDICTION,
            "predicted_low_k",
            "predicted_high_k",
            "out_of_range",
            "model_version",
            "run_id",
        ]
        out_batch = pa.record_batch(list(batch.columns) + extra, names=names)
        if pq_writer is None:
            pq_writer = pq.ParquetWriter(out / "predictions.parquet", out_batch.schema)
            csv_writer = pacsv.CSVWriter(
                out / "predictions.csv",
                out_batch.schema,
                write_options=pacsv.WriteOptions(quoting_style="needed"),
            )
        pq_writer.write_batch(out_batch)
        csv_writer.write_batch(out_batch)
        first += n
        rows += n
    for w in (pq_writer, csv_writer):
        if w is not None:
            w.close()
    rejects = pa.schema(
        [
            ("source_file", pa.string()),
            ("source_row", pa.int64()),
            ("raw_value", pa.string()),
            ("reason", pa.string()),
        ]
    )
    pacsv.CSVWriter(
        out / "rejects.csv", rejects, write_options=pacsv.WriteOptions(quoting_style="needed")
    ).close()
    t_end = time.monotonic()
    Path(a.timings).write_text(
        json.dumps({"rows": rows, "import_s": t_io - t0, "stream_s": t_end - t_io})
    )
    return 0


def child_naive(argv: list[str]) -> int:
    """(b): what a tutorial reader writes: pandas in, model.predict(x) (batch 32), pandas out."""
    p = argparse.ArgumentParser(prog="bench.py _naive")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--timings", required=True)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    import numpy as np
    import pandas as pd
    from tensorflow import keras

    model = keras.models.load_model(a.model)
    meta = json.loads((Path(a.model).parent / "metadata.json").read_text())
    lo, hi = meta["feature_range"]["min"], meta["feature_range"]["max"]
    t_model = time.monotonic()
    src, out = Path(a.input), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.read_parquet(src) if src.suffix == ".parquet" else pd.read_csv(src)
    t_read = time.monotonic()
    x = df[["rm"]].to_numpy()
    pred = model.predict(x)  # default batch size (32), as in the tutorial
    t_pred = time.monotonic()
    df["source_file"] = str(src)
    df["source_row"] = np.arange(1, len(df) + 1, dtype="int64")
    df[PREDICTION] = pred.reshape(-1).astype("float32")
    df["out_of_range"] = (df["rm"] < lo) | (df["rm"] > hi)
    df["model_version"] = a.version
    df["run_id"] = "20260101T000000Z-naive0"
    df.to_parquet(out / "predictions.parquet", index=False)
    df.to_csv(out / "predictions.csv", index=False)
    pd.DataFrame(columns=REJECT_COLUMNS).to_csv(out / "rejects.csv", index=False)
    t_end = time.monotonic()
    Path(a.timings).write_text(
        json.dumps(
            {
                "rows": len(df),
                "import_and_load_model_s": t_model - t0,
                "read_s": t_read - t_model,
                "predict_s": t_pred - t_read,
                "write_s": t_end - t_pred,
            }
        )
    )
    return 0


# bench.py's first argument -> the child it runs (the leading underscore keeps them off --help)
CHILDREN = {"_floor": child_floor, "_naive": child_naive}
