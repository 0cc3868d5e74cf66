"""What every part of the benchmark shares: its folders, the input schema, the cases, progress output."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from batch.core.names import BOSTON_COLUMNS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"  # gitignored: generated inputs, the benchmark model, run outputs, logs
RESULTS = HERE / "results"

BOSTON = BOSTON_COLUMNS  # the 13 features, as the scorer knows them
SCORER_CHUNK = 65_536  # the scorer's default chunk_rows: the floor streams in the same batches
CSV_BLOCK = 1 << 20  # the scorer's CSV block size (batch.io.csv_reader.CSV_BLOCK_BYTES)
PREDICTION = "predicted_median_price_k"
REJECT_COLUMNS = ["source_file", "source_row", "raw_value", "reason"]
CASES = {"a": "scorer", "b": "naive", "c": "I/O floor", "d": "dask", "e": "s3", "s": "small run"}


def say(msg: str) -> None:
    """One progress line on stderr (stdout is kept for the results table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human(n: int) -> str:
    """A row count as people say it: 200000 -> 200k, 10000000 -> 10M (exact counts stay digits)."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % (size // 10 or 1) == 0:
            text = f"{n / size:.1f}".rstrip("0").rstrip(".")
            return text + unit
    return str(n)
