"""Wide files: how long planning (and scoring) takes as the column count grows.

    python benchmarks/wide.py [--columns 1000 10000 50000] [--row-groups 5] [--score]

For each column count, writes a Parquet file (cached in benchmarks/data/wide/) of that many
columns in 5 row groups: a third float64, a third int64 (whose exactness as float64 the
planner checks from every row group's statistics), a third text, plus `rm`; the 10,000-column
file is about 12 MB. Times `plan_inputs` (find, inspect, hash, read the first block, decide the
number columns) on it with --max-columns raised to the count, and with --score also a whole
local-engine run with a folded model (no Keras). One line per case on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATA, SCORER_CHUNK, say

ROWS_PER_GROUP = 16


def wide_file(columns: int, groups: int) -> Path:
    """The cached wide Parquet file of `columns` columns (rm included) and `groups` row groups."""
    path = DATA / "wide" / f"wide-{columns}x{groups}.parquet"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    n = ROWS_PER_GROUP * groups
    arrays, names = [pa.array(rng.uniform(3.5, 8.8, n))], ["rm"]
    for i in range(columns - 1):
        kind = i % 3
        if kind == 0:
            arrays.append(pa.array(rng.normal(size=n)))
        elif kind == 1:
            arrays.append(pa.array(rng.integers(0, 1_000_000, n)))
        else:
            arrays.append(pa.array([f"t{v}" for v in rng.integers(0, 50, n)]))
        names.append(f"c{i:06d}")
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.table(arrays, names=names), tmp, row_group_size=ROWS_PER_GROUP)
    tmp.rename(path)
    return path


def time_plan(path: Path, columns: int) -> tuple[float, object]:
    from batch.io.plan import plan_inputs
    from batch.io.source import Limits

    t0 = time.perf_counter()
    plan = plan_inputs([str(path)], None, None, None, (0.0, 20.0), Limits(max_columns=columns))
    return time.perf_counter() - t0, plan


def time_score(path: Path, columns: int) -> float:
    """Seconds for a whole local-engine run (plan included) with a folded model (no Keras)."""
    from batch.engines.base import Job
    from batch.engines.local import LocalEngine
    from batch.io.plan import plan_inputs
    from batch.io.source import Limits
    from batch.model.network import LinearFold, Predictor
    from tests.model_helpers import fake_metadata

    with tempfile.TemporaryDirectory(prefix="wide-") as tmp:
        t0 = time.perf_counter()
        staged = Path(tmp) / "staged"
        staged.mkdir()
        domain = (0.0, 20.0)
        plan = plan_inputs([str(path)], None, None, None, domain, Limits(max_columns=columns))
        meta = fake_metadata(feature_range={"min": 3.5, "max": 8.8})
        contexts = {0: plan.context(0, domain=domain, meta=meta, version="v1", run_id="r")}
        fold = LinearFold(np.float32(9.1), np.float32(-34.6))
        predictor = Predictor("0" * 64, fold, verified="a fold, for the benchmark")
        LocalEngine(60.0).run(plan, Job(staged, contexts, predictor, SCORER_CHUNK), None)
        return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--row-groups", type=int, default=5)
    parser.add_argument("--score", action="store_true", help="also time a whole local run")
    args = parser.parse_args()
    print("| columns | row groups | file MB | plan s | score s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for columns in args.columns:
        say(f"{columns:,} columns: writing or reusing the file")
        path = wide_file(columns, args.row_groups)
        say(f"{columns:,} columns: planning")
        seconds, _ = time_plan(path, columns)
        scored = f"{time_score(path, columns):.2f}" if args.score else "-"
        mb = path.stat().st_size / 1e6
        print(
            f"| {columns:,} | {args.row_groups} | {mb:.1f} | {seconds:.2f} | {scored} |", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
