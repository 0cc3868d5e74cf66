#!/usr/bin/env python
"""Benchmark of the streaming scorer against a naive pandas/Keras baseline and a pyarrow I/O floor.

    python benchmarks/bench.py            # the full benchmark: Parquet 10M + 40M rows, CSV 10M rows
    python benchmarks/bench.py --quick    # a smoke run on 200k rows (about a minute)

Cases, each measured as a separate child process, one after another (never concurrently):
  (a) scorer   `python -m jobs.score` exactly as users run it
  (b) naive    pandas read, keras load_model, model.predict(x) (default batch size), pandas write
  (c) floor    pyarrow reads the input, writes the same two prediction files (+ empty rejects.csv)
  (d) dask     `python -m jobs.score --engine dask --dask-workers 2` (optional: skipped with a note
               when the scorer does not offer it or the run fails)
  (e) s3       (a) with the input read from and the run written to s3:// URLs on a local S3
               endpoint (moto in server mode) the benchmark starts (optional: --s3 off)
  (s) small    `python -m jobs.score` over sample_inputs/ (a nightly run of a few rows), local and
               Dask, with the verified fold (no TensorFlow) and through Keras

Wall time is time.monotonic() around the child; peak RSS is the child's ru_maxrss from os.wait4
(the largest single process) and, for multi-process runs, the sampled sum over the process tree.
Progress goes to stderr, the Markdown table to stdout and to benchmarks/results/ (with raw JSON).

This file is the command and runs the cases; the work is split by job: generate.py (inputs, model,
environment), baselines.py (the (b) and (c) children), s3.py (the local S3 endpoint of (e)), measure.py (running a child, RSS, the
scorer's summary and phases, output facts), report.py (summary, targets, Markdown).
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # run as `python benchmarks/bench.py`: import the benchmark as the package it is, from the
    # repository root, so that its modules (report, measure, ...) are not top-level names that
    # could shadow another library's
    _HERE = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
        del sys.path[0]
    sys.path.insert(0, str(_HERE.parent))

from benchmarks import baselines, generate
from benchmarks.common import CASES, DATA, REPO, RESULTS, human, say
from benchmarks.measure import (
    error_line,
    loadavg,
    machine,
    measure,
    output_facts,
    parse_summary,
    scorer_phases,
    warm,
)
from benchmarks.report import consistency, markdown, small_summary, summarise, write_atomic
from benchmarks.s3 import BUCKET, LocalS3, unavailable

DEFAULT_ROWS = [10_000_000, 40_000_000]
DEFAULT_CSV_ROWS = [10_000_000]
DEFAULT_NAIVE_ROWS = 1_000_000
DEFAULT_S3_MAX_ROWS = 10_000_000
QUICK_ROWS = 200_000


# -- the cases -------------------------------------------------------------------------------------


class Bench:
    """Runs the cases one after another and collects one record per run in `results`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = generate.child_env(args.boston_npz)
        self.models_dir, self.version = generate.ensure_model(
            args.models_dir, args.python, self.env
        )
        self.runs = DATA / "runs"
        self.logs = DATA / "logs"
        self.results: list[dict[str, Any]] = []
        self.dask_state, self.dask_note = self._dask_support()
        self.dask_failed: dict[str, str] = {}  # format -> why (d) stopped for that format
        self.s3_note = (
            "(e) not run: --s3 off"
            if args.s3 == "off"
            else unavailable(args.python, self.env)
            if "e" in args.cases
            else None
        )
        self.s3: LocalS3 | None = None  # started before the first (e) case

    def close(self) -> None:
        """Stop the S3 endpoint of (e), if it was started."""
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None

    def _dask_support(self) -> tuple[str, str]:
        if self.args.dask == "off":
            return "off", "(d) not run: --dask off"
        try:
            text = subprocess.run(
                [self.args.python, "-m", "jobs.score", "--help"],
                cwd=REPO,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=120,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            return "skip", f"(d) skipped: `python -m jobs.score --help` failed ({exc})"
        if "--engine" not in text or "--dask-workers" not in text or "dask" not in text.lower():
            return "skip", (
                "(d) skipped: `python -m jobs.score --help` lists no `--engine` "
                "dask / `--dask-workers` support yet"
            )
        return "try", ""

    def _case_dir(self, tag: str) -> Path:
        path = self.runs / tag
        shutil.rmtree(path, ignore_errors=True)
        return path

    def _finish(self, rec: dict[str, Any], out: Path, folder: Path | None = None) -> dict[str, Any]:
        """Check and describe the outputs, delete them, log one progress line."""
        if rec.get("ok"):
            rec["output"] = output_facts(folder or out)
        if not self.args.keep_outputs:
            shutil.rmtree(out, ignore_errors=True)
        rec["rows_per_s"] = rec["rows"] / rec["wall_s"] if rec.get("ok") and rec["wall_s"] else None
        self.results.append(rec)
        status = (
            "ok"
            if rec.get("ok")
            else "FAILED" + (f" ({rec.get('error', '')})" if rec["case"] != "d" else "")
        )
        say(
            f"  ({rec['case']}) {CASES[rec['case']]:<9} {rec['wall_s']:8.1f}s  peak RSS "
            f"{rec['peak_rss_mb']:7.0f} MB  {status}"
        )
        return rec

    def scorer(self, case: str, src: Path, fmt: str, rows: int, rep: int) -> dict[str, Any]:
        """Case (a), or (d) with the Dask engine: `python -m jobs.score` on one input."""
        tag = f"{case}-{fmt}-{rows}-{rep}"
        out = self._case_dir(tag)
        cmd = [
            self.args.python,
            "-m",
            "jobs.score",
            "--input",
            str(src),
            "--output-dir",
            str(out),
            "--models-dir",
            str(self.models_dir),
            "--model-version",
            self.version,
            "--log-level",
            "INFO",
        ]
        if case == "d":
            cmd += ["--engine", "dask", "--dask-workers", str(self.args.dask_workers)]
        warm(src)
        m = measure(cmd, self.env, self.logs / tag)
        rec = {"case": case, "format": fmt, "rows": rows, "rep": rep, **m}
        rec["peak_rss_mb"] = max(m["maxrss_mb"], m["tree_peak_rss_mb"])
        summary = parse_summary(m["stdout_tail"])
        rec["summary"] = summary
        rec["ok"] = (
            m["exit_code"] == 0
            and summary.get("status") == "succeeded"
            and summary.get("rows_scored") == rows
        )
        if not rec["ok"]:
            rec["error"] = error_line(m)
            if m["exit_code"] == 0:
                rec["error"] += (
                    f" (summary status {summary.get('status')}, rows_scored "
                    f"{summary.get('rows_scored')}, expected {rows})"
                )
        run_dir = Path(summary["run_dir"]) if summary.get("run_dir") else out
        if rec["ok"]:
            # before _finish, which deletes the run folder with its report.json
            rec["phases"] = scorer_phases(run_dir, summary)
        return self._finish(rec, out, run_dir)

    def s3_scorer(self, src: Path, fmt: str, rows: int, rep: int) -> dict[str, Any]:
        """Case (e): (a) with `--input` and `--output-dir` on the local S3 endpoint.

        The model stays local. The input is uploaded once, before the first run (not measured);
        after the run, its folder is downloaded (not measured) for the same output checks and
        phases as (a), then deleted from the bucket.
        """
        if self.s3 is None:
            self.s3 = LocalS3(self.args.python, self.env, self.logs / "s3-endpoint.log")
        tag = f"e-{fmt}-{rows}-{rep}"
        out = self._case_dir(tag)
        url = self.s3.input_url(src)
        cmd = [
            self.args.python,
            "-m",
            "jobs.score",
            "--input",
            url,
            "--output-dir",
            f"s3://{BUCKET}/runs/{tag}",
            "--models-dir",
            str(self.models_dir),
            "--model-version",
            self.version,
            "--log-level",
            "INFO",
        ]
        m = measure(cmd, self.s3.env(self.env), self.logs / tag)
        rec = {"case": "e", "format": fmt, "rows": rows, "rep": rep, **m}
        rec["peak_rss_mb"] = max(m["maxrss_mb"], m["tree_peak_rss_mb"])
        summary = parse_summary(m["stdout_tail"])
        rec["summary"] = summary
        run_id = summary.get("run_id")
        published = f"runs/{tag}/runs/{run_id}/"
        rec["ok"] = (
            m["exit_code"] == 0
            and summary.get("status") == "succeeded"
            and summary.get("rows_scored") == rows
            and bool(run_id)
            and f"{published}_SUCCESS" in self.s3.keys(published)
        )
        if not rec["ok"]:
            rec["error"] = error_line(m)
            if m["exit_code"] == 0:
                rec["error"] += (
                    f" (summary status {summary.get('status')}, rows_scored "
                    f"{summary.get('rows_scored')}, expected {rows}, or no "
                    "_SUCCESS object)"
                )
        run_dir = None
        if rec["ok"]:
            run_dir = self.s3.fetch(published, out / "run")
            rec["phases"] = scorer_phases(run_dir, summary)
        self.s3.delete(f"runs/{tag}/")
        return self._finish(rec, out, run_dir)

    def helper(self, case: str, src: Path, fmt: str, rows: int, rep: int) -> dict[str, Any]:
        """Case (b) or (c): a baseline child (`bench.py _naive|_floor`) on one input."""
        tag = f"{case}-{fmt}-{rows}-{rep}"
        out = self._case_dir(tag)
        timings = self.logs / f"{tag}.timings.json"
        timings.unlink(missing_ok=True)
        cmd = [
            self.args.python,
            str(Path(__file__).resolve()),
            "_floor" if case == "c" else "_naive",
            "--input",
            str(src),
            "--out",
            str(out),
            "--timings",
            str(timings),
        ]
        if case == "b":
            cmd += [
                "--model",
                str(self.models_dir / self.version / "model.keras"),
                "--version",
                self.version,
            ]
        warm(src)
        m = measure(cmd, self.env, self.logs / tag)
        rec = {
            "case": case,
            "format": fmt,
            "rows": rows,
            "rep": rep,
            **m,
            "peak_rss_mb": max(m["maxrss_mb"], m["tree_peak_rss_mb"]),
        }
        try:
            rec["phases"] = json.loads(timings.read_text())
        except (OSError, ValueError):
            rec["phases"] = {}
        rec["ok"] = m["exit_code"] == 0 and rec["phases"].get("rows") == rows
        if not rec["ok"]:
            rec["error"] = error_line(m)
        return self._finish(rec, out)

    def small(self) -> None:
        """Case (s): `python -m jobs.score` over sample_inputs/, as a nightly run of a few rows.

        Four variants, each --small-repeat times: the local and the Dask engine, each on the
        benchmark model as published (a verified fold: no TensorFlow) and on a copy whose
        metadata lacks the fold record (the Keras path, which imports TensorFlow).
        """
        keras_models = generate.keras_path_copy(self.models_dir, self.version)
        src = REPO / "sample_inputs"
        rows = generate.sample_rows(src)
        variants = [("local", "fold", self.models_dir), ("local", "keras", keras_models)]
        if self.dask_state == "try":
            variants += [("dask", "fold", self.models_dir), ("dask", "keras", keras_models)]
        say(
            f"small run: sample_inputs/ ({rows} rows), variants "
            + ", ".join(f"{e}/{p}" for e, p, _ in variants)
        )
        for rep in range(self.args.small_repeat):
            for engine, path, models in variants:
                tag = f"s-{engine}-{path}-{rep}"
                out = self._case_dir(tag)
                cmd = [
                    self.args.python,
                    "-m",
                    "jobs.score",
                    "--input",
                    str(src),
                    "--output-dir",
                    str(out),
                    "--models-dir",
                    str(models),
                    "--model-version",
                    self.version,
                ]
                if engine == "dask":
                    cmd += ["--engine", "dask", "--dask-workers", str(self.args.dask_workers)]
                m = measure(cmd, self.env, self.logs / tag)
                summary = parse_summary(m["stdout_tail"])
                rec = {
                    "case": "s",
                    "format": f"{engine}/{path}",
                    "rows": rows,
                    "rep": rep,
                    **m,
                    "peak_rss_mb": max(m["maxrss_mb"], m["tree_peak_rss_mb"]),
                    "summary": summary,
                    "engine": engine,
                    "path": path,
                }
                rec["ok"] = m["exit_code"] == 0 and summary.get("status") == "succeeded"
                if not rec["ok"]:
                    rec["error"] = error_line(m)
                run_dir = Path(summary["run_dir"]) if summary.get("run_dir") else out
                if rec["ok"]:
                    rec["phases"] = scorer_phases(run_dir, summary)
                    rec["prediction_path"] = generate.prediction_path(run_dir)
                self._finish(rec, out, run_dir)

    def run(self) -> None:
        """(s) first; every size of every format: (c), (a), (d) in turn; then (b)."""
        if "s" in self.args.cases:
            self.small()
        plan = [(fmt, rows) for fmt in self.args.format for rows in self.sizes(fmt)]
        if not plan:
            return
        say(
            f"model {self.version} in {self.models_dir}; cases: "
            + ", ".join(f"{fmt} {human(r)}" for fmt, r in plan)
        )
        for fmt, rows in plan:
            src = generate.ensure_input(rows, fmt)
            say(f"{fmt} {rows:,} rows ({src.stat().st_size / 1e6:,.0f} MB input)")
            for rep in range(self.args.repeat):
                if "c" in self.args.cases:
                    self.helper("c", src, fmt, rows, rep)
                if "a" in self.args.cases:
                    self.scorer("a", src, fmt, rows, rep)
                if (
                    "d" in self.args.cases
                    and self.dask_state == "try"
                    and fmt not in self.dask_failed
                ):
                    rec = self.scorer("d", src, fmt, rows, rep)
                    if not rec["ok"]:  # larger sizes of this format would fail the same way
                        self.dask_failed[fmt] = (
                            f"(d) skipped for {fmt} from {human(rows)} rows on: the Dask run "
                            f"failed ({rec['error']}); log: {rec['log']}"
                        )
                        say(self.dask_failed[fmt])
                if (
                    "e" in self.args.cases
                    and self.s3_note is None
                    and rows <= self.args.s3_max_rows
                ):
                    self.s3_scorer(src, fmt, rows, rep)
        if "b" in self.args.cases:
            for fmt in self.args.format:
                sizes = self.sizes(fmt)
                if not sizes:
                    continue
                n = min(self.args.naive_rows, max(sizes))
                src = generate.ensure_input(n, fmt)
                say(f"naive baseline on {fmt} {n:,} rows")
                for rep in range(self.args.repeat):
                    self.helper("b", src, fmt, n, rep)

    def sizes(self, fmt: str) -> list[int]:
        """The sizes asked for in `fmt`, ascending."""
        return sorted(set(self.args.csv_rows if fmt == "csv" else self.args.rows))


# -- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with --quick and the defaults resolved into concrete sizes."""
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description="Benchmark the streaming scorer (a) against the naive pandas/Keras baseline "
        "(b), the pyarrow I/O floor (c) and, when available, the Dask engine (d).",
    )
    p.add_argument(
        "--rows",
        type=int,
        nargs="+",
        metavar="N",
        help=f"Parquet input sizes (default: {' '.join(map(str, DEFAULT_ROWS))}); "
        "also the CSV sizes unless --csv-rows is given",
    )
    p.add_argument(
        "--csv-rows",
        type=int,
        nargs="+",
        metavar="N",
        help="CSV input sizes (default: 10000000, or --rows when that is given)",
    )
    p.add_argument(
        "--format",
        nargs="+",
        choices=["parquet", "csv"],
        default=["parquet", "csv"],
        help="input formats (default: parquet csv)",
    )
    p.add_argument(
        "--naive-rows",
        type=int,
        default=None,
        metavar="N",
        help=f"rows the naive baseline (b) is measured on, then extrapolated "
        f"(default {DEFAULT_NAIVE_ROWS}; never more than the largest size)",
    )
    p.add_argument(
        "--cases",
        default="sabcde",
        help="which cases to run, e.g. 'ac' (default sabcde: s is the small run over "
        "sample_inputs/; d and e only when available)",
    )
    p.add_argument(
        "--small-repeat",
        type=int,
        default=3,
        help="runs of each small-run variant; the table shows the median (default 3)",
    )
    p.add_argument(
        "--dask",
        choices=["auto", "off"],
        default="auto",
        help="auto: run (d) when `jobs.score --help` offers --engine dask (default)",
    )
    p.add_argument("--dask-workers", type=int, default=2, help="workers for (d) (default 2)")
    p.add_argument(
        "--s3",
        choices=["auto", "off"],
        default="auto",
        help="auto: run (e) against a local moto S3 endpoint when moto[server] is "
        "installed (default)",
    )
    p.add_argument(
        "--s3-max-rows",
        type=int,
        default=DEFAULT_S3_MAX_ROWS,
        metavar="N",
        help=f"run (e) on the sizes up to N rows (default {DEFAULT_S3_MAX_ROWS}: the "
        "endpoint holds the input and the outputs)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per case and size; the table shows the median time (default 1)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_ROWS:,} rows of each format, naive measured directly",
    )
    p.add_argument(
        "--out", default=str(RESULTS), help="results folder (default benchmarks/results)"
    )
    p.add_argument(
        "--models-dir",
        default=None,
        help="registry with a production model (default: one trained into benchmarks/data/models)",
    )
    p.add_argument(
        "--boston-npz",
        default=None,
        help="boston_housing.npz for training the model offline (default: "
        "$KERAS_HOME, ../shared/data, ~/.keras)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs the cases (default: this one)",
    )
    p.add_argument(
        "--keep-outputs",
        action="store_true",
        help="keep every case's output files in benchmarks/data/runs/",
    )
    a = p.parse_args(argv)
    if a.quick:
        a.rows = a.rows or [QUICK_ROWS]
        a.csv_rows = a.csv_rows or a.rows
        a.naive_rows = a.naive_rows or max(a.rows + a.csv_rows)
    if a.csv_rows is None:
        a.csv_rows = list(a.rows) if a.rows else DEFAULT_CSV_ROWS
    a.rows = a.rows or DEFAULT_ROWS
    a.naive_rows = a.naive_rows or DEFAULT_NAIVE_ROWS
    if a.repeat < 1 or min(a.rows + a.csv_rows + [a.naive_rows]) < 1:
        p.error("sizes and --repeat must be positive")
    if set(a.cases) - set("sabcde"):
        p.error("--cases takes letters from 'sabcde'")
    if a.small_repeat < 1:
        p.error("--small-repeat must be positive")
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with `_floor`/`_naive` first, one baseline child); the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in baselines.CHILDREN:
        return baselines.CHILDREN[argv[0]](argv[1:])
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    before = loadavg()
    bench = Bench(args)
    try:
        bench.run()
    except KeyboardInterrupt:
        say("interrupted; writing what was measured so far")
    finally:
        bench.close()
    summary = summarise(bench.results, {fmt: bench.sizes(fmt) for fmt in args.format})
    summary["small"] = small_summary(bench.results)
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench.py " + " ".join(argv),
        "args": {k: v for k, v in vars(args).items()},
        "machine": machine(),
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "model": {"models_dir": str(bench.models_dir), "version": bench.version},
        "dask_notes": ([bench.dask_note] if bench.dask_state != "try" else [])
        + list(bench.dask_failed.values())
        + ([bench.s3_note] if bench.s3_note and "e" in args.cases else []),
        "runs": bench.results,
        "summary": summary,
        "checks": consistency(bench.results),
    }
    text = markdown(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = "_".join(f"{fmt}-{'-'.join(human(n) for n in bench.sizes(fmt))}" for fmt in args.format)
    stem = started.strftime("%Y%m%dT%H%M%SZ") + "_" + sizes
    write_atomic(out / f"{stem}.md", text)
    write_atomic(out / f"{stem}.json", json.dumps(report, indent=2, default=str) + "\n")
    sys.stdout.write(text)
    say(f"wrote {out / (stem + '.md')} and {stem}.json")
    failed = [r for r in bench.results if not r["ok"] and r["case"] != "d"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
