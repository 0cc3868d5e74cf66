"""Peer benchmark: the scorer against DuckDB and Polars doing the same arithmetic and writing the same
files (predictions.parquet, predictions.csv, an empty rejects.csv), side by side.

    python benchmarks/peers.py [--rows 2000000 8000000] [--format parquet csv] [--repeat 2]
                               [--outputs both parquet]

Each case is its own child process; the cases of one size, input format and output set run one
after another, alternating (scorer, DuckDB, Polars, scorer, ...), each --repeat times; the table
shows each tool's best wall time and its largest peak RSS (the child's ru_maxrss from os.wait4,
or the sampled RSS of its process tree when larger), and the scorer's ratio to the fastest peer.
The peers compute what the scorer computes for a verified linear fold: price = rm * weight + bias
as float32, a band around it, the out-of-range flag, the source file, row, version and run id,
and the two audit columns (rooms_used, target_used). They write the same files as the scorer:
the same columns in the same order with the same values (the input's absolute path, rows
numbered from 1, a run id of the scorer's form), text and flags quoted in the CSV as the scorer
quotes them. They validate nothing and write no report: they are what a data engineer would
write in ten lines. DuckDB and Polars write the two files with their own writers (DuckDB: two
COPY statements; Polars: one lazy query into sink_parquet and sink_csv, collected together).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATA, human, say
from benchmarks.generate import child_env, ensure_input, ensure_model
from benchmarks.measure import loadavg, machine, measure, warm

TOOLS = ("scorer", "duckdb", "polars")
RUN_ID = "20261206T120000Z-0a1b2c"  # the scorer's form: the CSV cells are as long as its own
TEXT = ("suburb_id", "suburb", "source_file", "out_of_range", "model_version", "run_id")


def _fold(models_dir: Path, version: str) -> tuple[float, float, str, float, float]:
    """(weight, bias, band, training rooms min, max) of the benchmark model; the band is the
    model's calibrated interval (JSON: quantile, scale line, floor, lower bound), computed by the
    peers as the scorer computes it (batch.core.intervals.band, one quantile for every row)."""
    meta = json.loads((models_dir / version / "metadata.json").read_text())
    rng, interval = meta["feature_range"], meta["interval"]
    if interval.get("groups") not in (None, "none"):
        raise SystemExit("peers.py: the benchmark model must have one interval for every row")
    scale = interval["scale"]
    band = {
        "q": interval["quantile"],
        "center": scale["center"],
        "intercept": scale["intercept"],
        "below": scale["slope_below"],
        "above": scale["slope_above"],
        "floor": scale["floor"],
        "lower": interval["lower_bound"],
        "version": version,
    }
    return float(meta["weight"]), float(meta["bias"]), json.dumps(band), rng["min"], rng["max"]


def child_duckdb(a: argparse.Namespace) -> None:
    import duckdb

    src = (
        f"read_parquet('{a.input}')"
        if a.input.endswith(".parquet")
        else f"read_csv('{a.input}', header=true)"
    )
    w, b, lo, hi, k = a.weight, a.bias, a.lo, a.hi, json.loads(a.band)
    scale = (
        f"greatest({k['intercept']} + {k['below']} * greatest({k['center']} - rm, 0) "
        f"+ {k['above']} * greatest(rm - {k['center']}, 0), {k['floor']})"
    )
    pred = f"(CAST(rm AS FLOAT) * CAST({w} AS FLOAT) + CAST({b} AS FLOAT))"  # float32, as Keras
    half = f"CAST({k['q']} * {scale} AS FLOAT)"
    low = f"{pred} - {half}"
    if k["lower"] is not None:  # a price is never negative: low lifted at most up to the price
        low = f"least(greatest({low}, CAST({k['lower']} AS FLOAT)), {pred})"
    query = f"""
        SELECT *, '{a.input}' AS source_file, row_number() OVER () AS source_row,
               {pred} AS predicted_median_price_k,
               {low}
                   AS predicted_low_k,
               {pred} + {half} AS predicted_high_k,
               (rm < {lo} OR rm > {hi}) AS out_of_range,
               '{k["version"]}' AS model_version, '{RUN_ID}' AS run_id,
               rm AS rooms_used, CAST(NULL AS DOUBLE) AS target_used
        FROM {src}"""
    con = duckdb.connect()
    out = Path(a.out)
    if a.outputs in ("both", "parquet"):
        con.execute(f"COPY ({query}) TO '{out / 'predictions.parquet'}' (FORMAT parquet)")
    if a.outputs in ("both", "csv"):
        quoted = ", ".join(TEXT)
        con.execute(
            f"COPY ({query}) TO '{out / 'predictions.csv'}' "
            f"(FORMAT csv, HEADER, FORCE_QUOTE ({quoted}))"
        )
    (out / "rejects.csv").write_text("source_file,source_row,raw_value,reason\n")


def child_polars(a: argparse.Namespace) -> None:
    import polars as pl

    scan = pl.scan_parquet(a.input) if a.input.endswith(".parquet") else pl.scan_csv(a.input)
    k = json.loads(a.band)
    f32 = pl.Float32  # x * w + b in float32, as Keras computes it
    price = pl.col("rm").cast(f32) * pl.lit(a.weight, f32) + pl.lit(a.bias, f32)
    rm, center = pl.col("rm"), k["center"]
    scale = pl.max_horizontal(
        k["intercept"]
        + k["below"] * (center - rm).clip(lower_bound=0)
        + k["above"] * (rm - center).clip(lower_bound=0),
        k["floor"],
    )
    half = (k["q"] * scale).cast(pl.Float32)
    low = price - half
    if k["lower"] is not None:  # a price is never negative: low lifted at most up to the price
        low = pl.min_horizontal(pl.max_horizontal(low, pl.lit(k["lower"], pl.Float32)), price)
    lf = scan.with_columns(
        pl.lit(a.input).alias("source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_row"),
        price.alias("predicted_median_price_k"),
        low.alias("predicted_low_k"),
        (price + half).alias("predicted_high_k"),
        ((pl.col("rm") < a.lo) | (pl.col("rm") > a.hi)).alias("out_of_range"),
        pl.lit(k["version"]).alias("model_version"),
        pl.lit(RUN_ID).alias("run_id"),
        pl.col("rm").alias("rooms_used"),
        pl.lit(None, dtype=pl.Float64).alias("target_used"),
    )
    out = Path(a.out)
    sinks = []
    if a.outputs in ("both", "parquet"):
        sinks.append(lf.sink_parquet(out / "predictions.parquet", lazy=True))
    if a.outputs in ("both", "csv"):
        sinks.append(lf.sink_csv(out / "predictions.csv", quote_style="non_numeric", lazy=True))
    pl.collect_all(sinks)
    (out / "rejects.csv").write_text("source_file,source_row,raw_value,reason\n")


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="peers.py _child")
    p.add_argument("tool", choices=("duckdb", "polars"))
    for name in ("input", "out", "outputs", "band"):
        p.add_argument(f"--{name}", required=True)
    for name in ("weight", "bias", "lo", "hi"):
        p.add_argument(f"--{name}", type=float, required=True)
    a = p.parse_args(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (child_duckdb if a.tool == "duckdb" else child_polars)(a)
    return 0


def _command(tool: str, src: Path, out: Path, outputs: str, model: dict[str, Any]) -> list[str]:
    if tool == "scorer":
        return [
            sys.executable,
            "-m",
            "jobs.score",
            "--input",
            str(src),
            "--output-dir",
            str(out),
            "--models-dir",
            str(model["dir"]),
            "--model-version",
            model["version"],
            "--output-formats",
            outputs,
        ]
    w, b, band, lo, hi = model["fold"]
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "_child",
        tool,
        *("--input", str(src), "--out", str(out), "--outputs", outputs),
        *("--weight", repr(w), "--bias", repr(b), "--band", band),
        *("--lo", repr(lo), "--hi", repr(hi)),
    ]


def run_case(
    rows: int, fmt: str, outputs: str, repeat: int, model: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    """Every tool on one input, alternating, `repeat` rounds: best wall and largest RSS each."""
    src = ensure_input(rows, fmt).resolve()  # the scorer records the absolute path
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TOOLS}
    for r in range(repeat):
        for tool in TOOLS:
            out = DATA / "peers" / tool
            shutil.rmtree(out, ignore_errors=True)
            warm(src)
            m = measure(
                _command(tool, src, out, outputs, model),
                env,
                DATA / "logs" / f"peers-{tool}-{human(rows)}-{fmt}-{outputs}-{r}",
            )
            m["load_before"] = loadavg()
            runs[tool].append(m)
            ok = "" if m["exit_code"] == 0 else f" FAILED (exit {m['exit_code']}: {m['log']})"
            rss = max(m["maxrss_mb"], m["tree_peak_rss_mb"])
            say(f"{tool} {human(rows)} {fmt} -> {outputs}: {m['wall_s']:.2f}s, {rss:.0f} MB{ok}")
            shutil.rmtree(out, ignore_errors=True)
    best = {}
    for tool, ms in runs.items():
        good = [m for m in ms if m["exit_code"] == 0]
        best[tool] = {
            "wall_s": min((m["wall_s"] for m in good), default=float("nan")),
            "rss_mb": max((max(m["maxrss_mb"], m["tree_peak_rss_mb"]) for m in ms), default=0),
            "runs": [m["wall_s"] for m in ms],
        }
    return {"rows": rows, "format": fmt, "outputs": outputs, "best": best}


def table(cases: list[dict[str, Any]]) -> str:
    head = "| rows | input | outputs | scorer s | DuckDB s | Polars s | scorer / fastest peer "
    head += "| scorer / DuckDB | RSS MB scorer / DuckDB / Polars |\n"
    lines = [head + "| --- " * 9 + "|"]
    for c in cases:
        b = c["best"]
        s, d, p = (b[t]["wall_s"] for t in TOOLS)
        rss = " / ".join(f"{b[t]['rss_mb']:.0f}" for t in TOOLS)
        lines.append(
            f"| {human(c['rows'])} | {c['format']} | {c['outputs']} | {s:.2f} | {d:.2f} | "
            f"{p:.2f} | {s / min(d, p):.2f}x | {s / d:.2f}x | {rss} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_child"]:
        return _child(argv[1:])
    p = argparse.ArgumentParser(prog="peers.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[8_000_000])
    p.add_argument("--format", nargs="+", default=["parquet", "csv"], choices=["parquet", "csv"])
    p.add_argument("--outputs", nargs="+", default=["both", "parquet"])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--models-dir")
    p.add_argument("--boston-npz")
    a = p.parse_args(argv)
    env = child_env(a.boston_npz)
    models_dir, version = ensure_model(a.models_dir, sys.executable, env)
    model = {"dir": models_dir, "version": version, "fold": _fold(models_dir, version)}
    say(f"load average before: {loadavg()}")
    t0 = time.monotonic()
    cases = [
        run_case(rows, fmt, outputs, a.repeat, model, env)
        for rows in a.rows
        for fmt in a.format
        for outputs in a.outputs
        if fmt == "parquet" or outputs == "both"  # CSV input: the both-files case only
    ]
    print(table(cases))
    print(f"\nload average after: {loadavg()}; {time.monotonic() - t0:.0f} s in all")
    print(json.dumps({"machine": machine(), "cases": cases}, default=str), file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main(sys.argv[1:]))
