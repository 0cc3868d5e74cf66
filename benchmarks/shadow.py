"""Shadow scoring's cost: the same run with and without --challenger, side by side.

    python benchmarks/shadow.py [--rows 10000000] [--repeat 2] [--models-dir DIR]

Scores the cached Parquet input of --rows rows (benchmarks/generate.py) with the benchmark
model (trained into benchmarks/data/models when there is none), as users run it:
`python -m jobs.score --input FILE --output-dir … --models-dir … --model-version vN`, once as
it is and once with `--challenger vN` (the same version: a challenger costs the same whichever
version it is, a second folded Dense(1) and its band). Each run is its own child process; the
two alternate (plain, shadow, plain, shadow, …) --repeat times, and the table shows each one's
wall times, the best, and the ratio of the bests (the target: at most 1.25). Outputs are checked
(the row count, the challenger columns) and deleted after each run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATA, REPO, human, say
from benchmarks.generate import child_env, ensure_input, ensure_model

TARGET = 1.25


def one_run(cmd: list[str], env: dict[str, str], out: Path, rows: int, shadow: bool) -> float:
    """Seconds for one scoring run, start to exit; its outputs checked, then deleted."""
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    run = next((out / "runs").iterdir())
    schema = pq.read_schema(next((run / "predictions.parquet").glob("*.parquet")))
    scored = sum(
        pq.ParquetFile(p).metadata.num_rows for p in (run / "predictions.parquet").glob("*.parquet")
    )
    if scored != rows or ("challenger_predicted_median_price_k" in schema.names) != shadow:
        sys.exit(f"bench: {run} holds {scored:,} rows, schema {schema.names[-4:]}")
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--models-dir", default=None)
    args = parser.parse_args()
    env = child_env(None)
    models, version = ensure_model(args.models_dir, sys.executable, env)
    path = ensure_input(args.rows, "parquet")
    out = DATA / "shadow-run"
    base = [sys.executable, "-m", "jobs.score", "--input", str(path), "--output-dir", str(out)]
    base += ["--models-dir", str(models), "--model-version", version]
    times: dict[str, list[float]] = {"plain": [], "shadow": []}
    for i in range(args.repeat):
        for case, extra in (("plain", []), ("shadow", ["--challenger", version])):
            say(f"{case} run {i + 1} of {args.repeat} on {human(args.rows)} rows")
            seconds = one_run(base + extra, env, out, args.rows, case == "shadow")
            times[case].append(seconds)
            say(f"{case}: {seconds:.2f} s")
    best = {case: min(t) for case, t in times.items()}
    ratio = best["shadow"] / best["plain"]
    print(f"| run | without --challenger | with --challenger ({human(args.rows)} Parquet rows) |")
    print("| --- | ---: | ---: |")
    for i in range(args.repeat):
        print(f"| {i + 1} | {times['plain'][i]:.2f} s | {times['shadow'][i]:.2f} s |")
    print(f"| best of {args.repeat} | {best['plain']:.2f} s | {best['shadow']:.2f} s |")
    verdict = "within" if ratio <= TARGET else "OVER"
    print(
        f"\nratio (best with / best without): {ratio:.2f} ({verdict} the {TARGET} target); "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
