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

Wall time is time.monotonic() around the child; peak RSS is the child's ru_maxrss from os.wait4
(the largest single process) and, for multi-process runs, the sampled sum over the process tree.
Progress goes to stderr, the Markdown table to stdout and to benchmarks/results/ (with raw JSON).
See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"  # gitignored: generated inputs, the benchmark model, run outputs, logs
RESULTS = HERE / "results"

BOSTON = ["crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "b",
          "lstat"]
NAMES = ["Ashford", "Brookvale", "Cedar Hill", "Dunmore", "Elmstead", "Fairhaven", "Glenwood",
         "Harbourside", "Ivybridge", "Juniper Flats", "Kingsmere", "Larchmont", "Millbrook",
         "Northgate", "Oakridge", "Pinecrest", "Queensbury", "Riverbend", "Stonebridge",
         "Thornbury",
         "Upton", "Valewood", "Westcliff", "Yarrow", "Zephyr Park"]
GEN_CHUNK = 500_000  # rows generated per chunk (generation memory stays flat)
GEN_SEED = 20261126
SCORER_CHUNK = 262_144  # the scorer's default chunk_rows: the floor streams in the same batches
CSV_BLOCK = 1 << 20  # the scorer's CSV block size (batch.storage.CSV_BLOCK_BYTES)
PREDICTION = "predicted_median_price_k"
REJECT_COLUMNS = ["source_file", "source_row", "raw_value", "reason"]

DEFAULT_ROWS = [10_000_000, 40_000_000]
DEFAULT_CSV_ROWS = [10_000_000]
DEFAULT_NAIVE_ROWS = 1_000_000
QUICK_ROWS = 200_000

TARGET_ROWS, TARGET_BIG_ROWS = 10_000_000, 40_000_000
TARGET_FLOOR_RATIO = 1.5  # (a) <= 1.5 x (c)
TARGET_NAIVE_RATIO = 20.0  # (b) >= 20 x (a)
TARGET_RSS_MB = 1500.0  # (a) peak RSS < 1.5 GB (10^6-byte MB, the stricter reading)
TARGET_RSS_GROWTH = 0.10  # (a) peak RSS grows < 10 % from 10M to 40M rows
CASES = {"a": "scorer", "b": "naive", "c": "I/O floor", "d": "dask"}


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % (size // 10 or 1) == 0:
            text = f"{n / size:.1f}".rstrip("0").rstrip(".")
            return text + unit
    return str(n)


# -- input generation (streamed, cached in benchmarks/data/inputs) --------------------------------

def input_path(rows: int, fmt: str) -> Path:
    return DATA / "inputs" / f"boston-{rows}.{fmt}"


def make_chunk(start: int, n: int):
    """Rows start..start+n-1 of the synthetic Boston-schema input (deterministic per chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([GEN_SEED, start])
    idx = np.arange(start, start + n, dtype="int64")
    suburb_id = pc.binary_join_element_wise(
        "S", pc.utf8_lpad(pc.cast(pa.array(idx + 1), pa.string()), 8, "0"), "")
    suburb = pc.binary_join_element_wise(
        pa.array(NAMES).take(pa.array(idx % len(NAMES))),
        pc.cast(pa.array(idx // len(NAMES) + 1), pa.string()), " ")
    cols = {
        "crim": np.round(rng.gamma(0.6, 5.0, n), 5),
        "zn": rng.choice([0.0, 0.0, 12.5, 20.0, 25.0, 80.0], n),
        "indus": np.round(rng.uniform(0.5, 27.0, n), 2),
        "chas": rng.choice([0.0, 0.0, 0.0, 1.0], n),
        "nox": np.round(rng.uniform(0.39, 0.87, n), 3),
        "rm": np.round(rng.normal(6.3, 0.7, n).clip(3.5, 8.8), 3),
        "age": np.round(rng.uniform(3.0, 100.0, n), 1),
        "dis": np.round(rng.uniform(1.2, 12.0, n), 4),
        "rad": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 24.0], n),
        "tax": rng.integers(190, 711, n).astype("float64"),
        "ptratio": np.round(rng.uniform(12.6, 22.0, n), 1),
        "b": np.round(rng.uniform(0.3, 396.9, n), 2),
        "lstat": np.round(rng.uniform(1.7, 38.0, n), 2),
    }
    arrays = [suburb_id, suburb] + [pa.array(cols[c], pa.float64()) for c in BOSTON]
    return pa.table(arrays, names=["suburb_id", "suburb"] + BOSTON)


def ensure_input(rows: int, fmt: str) -> Path:
    """The cached input of `rows` rows; generated chunk by chunk (pyarrow writers) when missing."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = input_path(rows, fmt)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    say(f"generating {path.relative_to(REPO)} ({rows:,} rows)")
    t0 = time.monotonic()
    writer = None
    try:
        for start in range(0, rows, GEN_CHUNK):
            table = make_chunk(start, min(GEN_CHUNK, rows - start))
            if writer is None:
                writer = (pq.ParquetWriter(tmp, table.schema) if fmt == "parquet"
                          else pacsv.CSVWriter(tmp, table.schema))
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    say(f"generated {path.name}: {path.stat().st_size / 1e6:,.0f} MB in "
        f"{time.monotonic() - t0:.1f}s")
    return path


# -- the model the scorer and the baseline use -----------------------------------------------------

def find_boston_npz(explicit: str | None) -> Path | None:
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("KERAS_HOME"):
        candidates.append(Path(os.environ["KERAS_HOME"]) / "datasets" / "boston_housing.npz")
    candidates += [REPO.parent / "shared" / "data" / "boston_housing.npz",
                   Path("/work/shared/data/boston_housing.npz"),
                   Path.home() / ".keras" / "datasets" / "boston_housing.npz"]
    return next((p for p in candidates if p.is_file()), None)


def production_version(models_dir: Path) -> str | None:
    try:
        aliases = json.loads((models_dir / "aliases.json").read_text())
    except (OSError, ValueError):
        return None
    version = aliases.get("production")
    if version and (models_dir / version / "model.keras").is_file():
        return version
    return None


def ensure_model(args, env: dict[str, str]) -> tuple[Path, str]:
    """A production model in --models-dir, else one trained (5 epochs) into benchmarks/data."""
    models_dir = Path(args.models_dir).resolve() if args.models_dir else DATA / "models"
    version = production_version(models_dir)
    if version:
        return models_dir, version
    if args.models_dir:
        sys.exit(f"bench: no production model in {models_dir}; train one with "
                 f"python -m jobs.train --models-dir {models_dir}")
    say(f"training a benchmark model into {models_dir.relative_to(REPO)} (5 epochs)")
    cmd = [args.python, "-m", "jobs.train", "--models-dir", str(models_dir), "--epochs", "5"]
    log = DATA / "logs" / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    version = production_version(models_dir)
    if rc != 0 or not version:
        sys.exit(f"bench: training the benchmark model failed (exit {rc}); see {log}")
    return models_dir, version


# -- measuring one child process ------------------------------------------------------------------

class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants (Dask workers) from /proc."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_bytes = 0
        self.max_procs = 0
        self._halt = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as fh:
                        todo.extend(int(c) for c in fh.read().split())
            except OSError:
                continue
        return pids

    def _rss(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return 0

    def run(self) -> None:
        if not os.path.isdir("/proc"):
            return
        while not self._halt.is_set():
            pids = self._tree()
            self.peak_bytes = max(self.peak_bytes, sum(self._rss(p) for p in pids))
            self.max_procs = max(self.max_procs, len(pids))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def measure(cmd: list[str], env: dict[str, str], log_base: Path) -> dict[str, Any]:
    """Run `cmd` from the repo root: wall time, peak RSS (wait4, sampled tree), exit code, logs."""
    log_base.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_base.with_suffix(".stdout"), log_base.with_suffix(".stderr")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started_epoch = time.time()
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_group(proc.pid)
            raise
        finally:
            sampler.stop()
        wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(proc.pid)  # leftovers (e.g. Dask workers) must not disturb the next case
    maxrss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    return {"cmd": cmd, "exit_code": proc.returncode, "wall_s": wall,
            "started_epoch": started_epoch,
            "maxrss_mb": maxrss / 1e6, "tree_peak_rss_mb": sampler.peak_bytes / 1e6,
            "processes": sampler.max_procs,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "stdout_tail": stdout.strip().splitlines()[-1:] if stdout.strip() else [],
            "stderr_tail": stderr.strip().splitlines()[-20:], "log": str(err_path)}


def error_line(m: dict[str, Any]) -> str:
    """The child's one-sentence error (`jobs.score: error: ...`), else its last stderr line."""
    lines = [ln.strip() for ln in m["stderr_tail"] if ln.strip()]
    said = [ln for ln in lines if ": error:" in ln]
    return f"exit {m['exit_code']}: " + ((said or lines or ["no output"])[-1])[:400]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def warm(path: Path) -> None:
    """Read the input once so every case starts with it in the page cache."""
    with open(path, "rb") as fh:
        while fh.read(16 << 20):
            pass


def output_facts(folder: Path) -> dict[str, Any]:
    """Rows, schema and sizes of the prediction files in `folder` (checked against each other)."""
    import pyarrow.parquet as pq

    facts: dict[str, Any] = {}
    pq_path, csv_path = folder / "predictions.parquet", folder / "predictions.csv"
    # the Dask engine writes predictions.parquet as a folder of part files
    parts = sorted(pq_path.glob("*.parquet")) if pq_path.is_dir() else (
        [pq_path] if pq_path.is_file() else [])
    if parts:
        rows, codecs, size = 0, set(), 0
        for part in parts:
            pf = pq.ParquetFile(part)
            meta = pf.metadata
            rows += meta.num_rows
            size += part.stat().st_size
            for g in range(meta.num_row_groups):
                codecs |= {meta.row_group(g).column(i).compression
                           for i in range(meta.num_columns)}
        facts["rows"] = rows
        facts["schema"] = [f"{f.name}:{f.type}" for f in pq.ParquetFile(parts[0]).schema_arrow]
        facts["parquet_compression"] = sorted(codecs)
        facts["parquet_mb"] = size / 1e6
        facts["parquet_parts"] = len(parts) if pq_path.is_dir() else 0
    if csv_path.is_file():
        with open(csv_path) as fh:
            facts["csv_header"] = fh.readline().strip()
        facts["csv_mb"] = csv_path.stat().st_size / 1e6
    facts["rejects_csv"] = (folder / "rejects.csv").is_file()
    return facts


# -- the child processes of (b) and (c) (run as `bench.py _naive ...` / `bench.py _floor ...`) -----

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
        types = {c: pa.float64() for c in BOSTON} | {"suburb_id": pa.string(),
                                                     "suburb": pa.string()}
        batches = pacsv.open_csv(src, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
                                 convert_options=pacsv.ConvertOptions(column_types=types))
    run_id = "20260101T000000Z-floor0"  # same length as a real run id
    weight, bias, lo, hi = np.float32(9.1), np.float32(-34.7), 3.561, 8.78
    pq_writer = csv_writer = None
    first, rows = 1, 0
    t_io = time.monotonic()
    for batch in batches:
        n = batch.num_rows
        rm = batch.column("rm").to_numpy(zero_copy_only=False).astype("float32")
        extra = [pa.repeat(pa.scalar(str(src), pa.string()), n),
                 pa.array(np.arange(first, first + n, dtype="int64")),
                 pa.array(rm * weight + bias, pa.float32()),
                 pa.array((rm < lo) | (rm > hi), pa.bool_()),
                 pa.repeat(pa.scalar("v1", pa.string()), n),
                 pa.repeat(pa.scalar(run_id, pa.string()), n)]
        names = batch.schema.names + ["source_file", "source_row", PREDICTION, "out_of_range",
                                      "model_version", "run_id"]
        out_batch = pa.record_batch(list(batch.columns) + extra, names=names)
        if pq_writer is None:
            pq_writer = pq.ParquetWriter(out / "predictions.parquet", out_batch.schema)
            csv_writer = pacsv.CSVWriter(out / "predictions.csv", out_batch.schema,
                                         write_options=pacsv.WriteOptions(quoting_style="needed"))
        pq_writer.write_batch(out_batch)
        csv_writer.write_batch(out_batch)
        first += n
        rows += n
    for w in (pq_writer, csv_writer):
        if w is not None:
            w.close()
    rejects = pa.schema([("source_file", pa.string()), ("source_row", pa.int64()),
                         ("raw_value", pa.string()), ("reason", pa.string())])
    pacsv.CSVWriter(out / "rejects.csv", rejects,
                    write_options=pacsv.WriteOptions(quoting_style="needed")).close()
    t_end = time.monotonic()
    Path(a.timings).write_text(json.dumps({"rows": rows, "import_s": t_io - t0,
                                           "stream_s": t_end - t_io}))
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
    Path(a.timings).write_text(json.dumps({
        "rows": len(df), "import_and_load_model_s": t_model - t0, "read_s": t_read - t_model,
        "predict_s": t_pred - t_read, "write_s": t_end - t_pred}))
    return 0


# -- the cases -------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.env = child_env(args)
        self.models_dir, self.version = ensure_model(args, self.env)
        self.runs = DATA / "runs"
        self.logs = DATA / "logs"
        self.results: list[dict[str, Any]] = []
        self.dask_state, self.dask_note = self._dask_support()
        self.dask_failed: dict[str, str] = {}  # format -> why (d) stopped for that format

    def _dask_support(self) -> tuple[str, str]:
        if self.args.dask == "off":
            return "off", "(d) not run: --dask off"
        try:
            text = subprocess.run([self.args.python, "-m", "jobs.score", "--help"], cwd=REPO,
                                  env=self.env, capture_output=True, text=True,
                                  timeout=120).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            return "skip", f"(d) skipped: `python -m jobs.score --help` failed ({exc})"
        if "--engine" not in text or "--dask-workers" not in text or "dask" not in text.lower():
            return "skip", ("(d) skipped: `python -m jobs.score --help` lists no `--engine` "
                            "dask / `--dask-workers` support yet")
        return "try", ""

    def _case_dir(self, tag: str) -> Path:
        path = self.runs / tag
        shutil.rmtree(path, ignore_errors=True)
        return path

    def _finish(self, rec: dict[str, Any], out: Path, folder: Path | None = None
                ) -> dict[str, Any]:
        """Check and describe the outputs, delete them, log one progress line."""
        if rec.get("ok"):
            rec["output"] = output_facts(folder or out)
        if not self.args.keep_outputs:
            shutil.rmtree(out, ignore_errors=True)
        rec["rows_per_s"] = rec["rows"] / rec["wall_s"] if rec.get("ok") and rec["wall_s"] else None
        self.results.append(rec)
        status = "ok" if rec.get("ok") else "FAILED" + (
            f" ({rec.get('error', '')})" if rec["case"] != "d" else "")
        say(f"  ({rec['case']}) {CASES[rec['case']]:<9} {rec['wall_s']:8.1f}s  peak RSS "
            f"{rec['peak_rss_mb']:7.0f} MB  {status}")
        return rec

    def scorer(self, case: str, src: Path, fmt: str, rows: int, rep: int) -> dict[str, Any]:
        tag = f"{case}-{fmt}-{rows}-{rep}"
        out = self._case_dir(tag)
        cmd = [self.args.python, "-m", "jobs.score", "--input", str(src), "--output-dir",
               str(out), "--models-dir", str(self.models_dir), "--model-version", self.version,
               "--log-level", "INFO"]
        if case == "d":
            cmd += ["--engine", "dask", "--dask-workers", str(self.args.dask_workers)]
        warm(src)
        m = measure(cmd, self.env, self.logs / tag)
        rec = {"case": case, "format": fmt, "rows": rows, "rep": rep, **m}
        rec["peak_rss_mb"] = max(m["maxrss_mb"], m["tree_peak_rss_mb"])
        summary = parse_summary(m["stdout_tail"])
        rec["summary"] = summary
        rec["ok"] = (m["exit_code"] == 0 and summary.get("status") == "succeeded"
                     and summary.get("rows_scored") == rows)
        if not rec["ok"]:
            rec["error"] = error_line(m)
            if m["exit_code"] == 0:
                rec["error"] += (f" (summary status {summary.get('status')}, rows_scored "
                                 f"{summary.get('rows_scored')}, expected {rows})")
        run_dir = Path(summary["run_dir"]) if summary.get("run_dir") else out
        if rec["ok"]:
            rec["phases"] = scorer_phases(Path(m["log"]), m["started_epoch"], m["wall_s"])
        return self._finish(rec, out, run_dir)

    def helper(self, case: str, src: Path, fmt: str, rows: int, rep: int) -> dict[str, Any]:
        tag = f"{case}-{fmt}-{rows}-{rep}"
        out = self._case_dir(tag)
        timings = self.logs / f"{tag}.timings.json"
        timings.unlink(missing_ok=True)
        cmd = [self.args.python, str(Path(__file__).resolve()),
               "_floor" if case == "c" else "_naive", "--input", str(src), "--out", str(out),
               "--timings", str(timings)]
        if case == "b":
            cmd += ["--model", str(self.models_dir / self.version / "model.keras"),
                    "--version", self.version]
        warm(src)
        m = measure(cmd, self.env, self.logs / tag)
        rec = {"case": case, "format": fmt, "rows": rows, "rep": rep, **m,
               "peak_rss_mb": max(m["maxrss_mb"], m["tree_peak_rss_mb"])}
        try:
            rec["phases"] = json.loads(timings.read_text())
        except (OSError, ValueError):
            rec["phases"] = {}
        rec["ok"] = m["exit_code"] == 0 and rec["phases"].get("rows") == rows
        if not rec["ok"]:
            rec["error"] = error_line(m)
        return self._finish(rec, out)

    def run(self) -> None:
        plan = [(fmt, rows) for fmt in self.args.format for rows in self.sizes(fmt)]
        say(f"model {self.version} in {self.models_dir}; cases: "
            + ", ".join(f"{fmt} {human(r)}" for fmt, r in plan))
        for fmt, rows in plan:
            src = ensure_input(rows, fmt)
            say(f"{fmt} {rows:,} rows ({src.stat().st_size / 1e6:,.0f} MB input)")
            for rep in range(self.args.repeat):
                if "c" in self.args.cases:
                    self.helper("c", src, fmt, rows, rep)
                if "a" in self.args.cases:
                    self.scorer("a", src, fmt, rows, rep)
                if "d" in self.args.cases and self.dask_state == "try" \
                        and fmt not in self.dask_failed:
                    rec = self.scorer("d", src, fmt, rows, rep)
                    if not rec["ok"]:  # larger sizes of this format would fail the same way
                        self.dask_failed[fmt] = (
                            f"(d) skipped for {fmt} from {human(rows)} rows on: the Dask run "
                            f"failed ({rec['error']}); log: {rec['log']}")
                        say(self.dask_failed[fmt])
        if "b" in self.args.cases:
            for fmt in self.args.format:
                sizes = self.sizes(fmt)
                if not sizes:
                    continue
                n = min(self.args.naive_rows, max(sizes))
                src = ensure_input(n, fmt)
                say(f"naive baseline on {fmt} {n:,} rows")
                for rep in range(self.args.repeat):
                    self.helper("b", src, fmt, n, rep)

    def sizes(self, fmt: str) -> list[int]:
        return sorted(set(self.args.csv_rows if fmt == "csv" else self.args.rows))


def parse_summary(lines: list[str]) -> dict[str, Any]:
    try:
        value = json.loads(lines[-1])
        return value if isinstance(value, dict) else {}
    except (IndexError, ValueError):
        return {}


def scorer_phases(stderr_log: Path, started: float, wall: float) -> dict[str, Any]:
    """Coarse phases of a scorer run from its log timestamps (1 s resolution, local time).

    startup: interpreter, TensorFlow import, planning (sha256 of every input), model load;
    stream: read, validate, predict, write (and, for CSV inputs, the float64 re-typing pass);
    report: report.json/html and plots, publish; exit: interpreter shutdown.
    """
    marks: dict[str, float] = {}
    try:
        for line in stderr_log.read_text(errors="replace").splitlines():
            try:
                stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S"))
            except ValueError:
                continue
            if "file(s) with model" in line:
                marks.setdefault("model_loaded", stamp)
            elif "predictions by the folded" in line or "predictions by the Keras" in line:
                marks["stream_done"] = stamp
            elif "written as float64" in line:
                marks["stream_done"] = stamp
            elif " succeeded:" in line:
                marks["published"] = stamp
    except OSError:
        return {}
    if not {"model_loaded", "published"} <= marks.keys():
        return {}
    # log stamps are truncated to the second: add 0.5 s to each to halve the bias
    loaded = marks["model_loaded"] + 0.5 - started
    done = marks.get("stream_done", marks["published"]) + 0.5 - started
    published = marks["published"] + 0.5 - started
    return {"startup_s": round(loaded, 1), "stream_s": round(done - loaded, 1),
            "report_s": round(published - done, 1), "exit_s": round(wall - published, 1),
            "resolution_s": 1.0}


def child_env(args) -> dict[str, str]:
    """Every case's environment: no BATCH_* (flags say everything), TF quiet, offline Keras."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0", KERAS_BACKEND="tensorflow",
               PYTHONDONTWRITEBYTECODE="1")
    npz = find_boston_npz(args.boston_npz)
    if npz is not None:
        home = DATA / "keras_home"
        (home / "datasets").mkdir(parents=True, exist_ok=True)
        target = home / "datasets" / "boston_housing.npz"
        if not target.is_file():
            shutil.copyfile(npz, target)
        env["KERAS_HOME"] = str(home)
    return env


# -- the table -------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) * 1024 / 1e9, 1)
                break
    except OSError:
        info.setdefault("cpu", platform.processor())
    for dist in ("pyarrow", "numpy", "pandas", "tensorflow", "tensorflow-cpu", "keras", "dask",
                 "distributed"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        info["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO,
                                     capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def summarise(results: list[dict[str, Any]], args) -> dict[str, Any]:
    """Median wall time and max RSS per (case, format, rows); naive extrapolated to every size."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["case"], r["format"], r["rows"]), []).append(r)
    cells: dict[tuple, dict[str, Any]] = {}
    for key, recs in groups.items():
        ok = [r for r in recs if r["ok"]]
        if not ok:
            cells[key] = {"ok": False, "error": recs[-1].get("error")}
            continue
        cells[key] = {"ok": True, "wall_s": statistics.median(r["wall_s"] for r in ok),
                      "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), "runs": len(ok),
                      "rows": key[2], "measured_rows": key[2], "extrapolated": False}
    rows_out = []
    for fmt in args.format:
        sizes = sorted(set(args.csv_rows if fmt == "csv" else args.rows))
        naive = [(k, v) for k, v in cells.items() if k[0] == "b" and k[1] == fmt and v["ok"]]
        for n in sizes:
            line: dict[str, Any] = {"format": fmt, "rows": n}
            for case in "acd":
                line[case] = cells.get((case, fmt, n))
            if naive:
                (_, _, m), v = naive[0]
                if m == n:
                    line["b"] = v
                else:
                    line["b"] = extrapolate(v, m, n, [r for r in results if r["case"] == "b"
                                                        and r["format"] == fmt and r["ok"]])
            a, b, c, d = (line.get(x) for x in "abcd")
            line["a_over_c"] = a["wall_s"] / c["wall_s"] if _ok(a) and _ok(c) else None
            line["b_over_a"] = b["wall_s"] / a["wall_s"] if _ok(a) and _ok(b) else None
            line["d_over_a"] = d["wall_s"] / a["wall_s"] if _ok(a) and _ok(d) else None
            line["b_over_c"] = b["wall_s"] / c["wall_s"] if _ok(b) and _ok(c) else None
            rows_out.append(line)
    return {"rows": rows_out, "targets": targets(rows_out)}


def _ok(cell: dict | None) -> bool:
    return bool(cell and cell.get("ok"))


def extrapolate(cell: dict, measured: int, n: int, recs: list[dict]) -> dict[str, Any]:
    """Naive time at n rows: fixed start-up (imports, model load) + per-row phases x n/measured."""
    per_row = statistics.median(
        sum(r["phases"].get(k, 0.0) for k in ("read_s", "predict_s", "write_s")) for r in recs)
    fixed = max(cell["wall_s"] - per_row, 0.0)
    return {"ok": True, "wall_s": fixed + per_row * n / measured, "peak_rss_mb": None,
            "measured_rss_mb": cell["peak_rss_mb"], "rows": n, "measured_rows": measured,
            "extrapolated": True, "fixed_s": fixed, "per_row_s": per_row}


def targets(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, checked where the sizes they name were run (else indicative only)."""
    pq = {line["rows"]: line for line in lines if line["format"] == "parquet"}
    if not pq:
        return []
    at = TARGET_ROWS if TARGET_ROWS in pq else max(pq)
    note = "" if at == TARGET_ROWS else f" (indicative: measured at {human(at)}, target is at 10M)"
    line = pq[at]
    out = []

    def add(name: str, value: str, ok: bool | None, extra: str = "") -> None:
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        if ok is not None and "indicative" in extra:
            verdict = f"({verdict})"
        out.append({"target": name, "value": value, "verdict": verdict, "note": extra})

    r = line["a_over_c"]
    add("(a) <= 1.5 x (c) at 10M Parquet", f"{r:.2f}x" if r else "n/a",
        None if r is None else r <= TARGET_FLOOR_RATIO, note)
    r = line["b_over_a"]
    b = line.get("b") or {}
    how = (f"(b) extrapolated from {human(b['measured_rows'])} rows" if b.get("extrapolated")
           else "(b) measured" if b else "(b) not run")
    if r is not None and line["b_over_c"] is not None and line["b_over_c"] < TARGET_NAIVE_RATIO:
        how += (f"; note (b)/(c) = {line['b_over_c']:.1f}x: even a scorer as fast as the I/O "
                "floor could not reach 20x here")
    add("(b) >= 20 x (a) at 10M Parquet", f"{r:.1f}x" if r else "n/a",
        None if r is None else r >= TARGET_NAIVE_RATIO, how + note)
    rss = {n: line["a"]["peak_rss_mb"] for n, line in pq.items() if _ok(line["a"])}
    big = [n for n in rss if n >= TARGET_ROWS] or list(rss)
    if big:
        worst = max(rss[n] for n in big)
        add("(a) peak RSS < 1.5 GB", f"{worst:,.0f} MB", worst < TARGET_RSS_MB,
            "max over " + ", ".join(human(n) for n in sorted(big)))
    if TARGET_ROWS in rss and TARGET_BIG_ROWS in rss:
        lo_n, hi_n, extra = TARGET_ROWS, TARGET_BIG_ROWS, ""
    elif len(rss) >= 2:
        lo_n, hi_n = min(rss), max(rss)
        extra = f" (indicative: {human(lo_n)} -> {human(hi_n)}, target is 10M -> 40M)"
    else:
        lo_n = hi_n = None
        extra = ""
    if lo_n is not None:
        growth = rss[hi_n] / rss[lo_n] - 1
        add("(a) peak RSS grows < 10% from 10M to 40M", f"{growth:+.1%}",
            growth < TARGET_RSS_GROWTH, f"{rss[lo_n]:,.0f} -> {rss[hi_n]:,.0f} MB" + extra)
    else:
        add("(a) peak RSS grows < 10% from 10M to 40M", "n/a", None,
            "needs two Parquet sizes (default: 10M and 40M)")
    return out


def fmt_s(cell: dict | None) -> str:
    if not cell:
        return "—"
    if not cell.get("ok"):
        return "failed"
    text = f"{cell['wall_s']:,.1f}"
    return f"~{text}*" if cell.get("extrapolated") else text


def fmt_rss(cell: dict | None) -> str:
    if not _ok(cell):
        return "—"
    if cell.get("extrapolated"):
        return f"({cell['measured_rss_mb']:,.0f} @ {human(cell['measured_rows'])})"
    return f"{cell['peak_rss_mb']:,.0f}"


def fmt_ratio(r: float | None, extrapolated: bool = False) -> str:
    if r is None:
        return "—"
    return f"~{r:.1f}x*" if extrapolated else f"{r:.2f}x"


def markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["summary"]
    tf = m.get("tensorflow") or m.get("tensorflow-cpu", "?")
    out = [f"# Scorer benchmark — {report['started_at']}", "",
           f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('ram_gb', '?')} GB RAM; "
           f"{m['platform']}; Python {m['python']}, pyarrow {m.get('pyarrow', '?')}, "
           f"TensorFlow {tf}, Keras {m.get('keras', '?')}, pandas {m.get('pandas', '?')}, "
           f"dask {m.get('dask', 'not installed')}. Repo {m.get('git', '?')}. "
           f"Load average before/after: {report['loadavg_before']} / {report['loadavg_after']}.",
           "", f"Command: `{report['command']}`", "",
           "| input | rows | (a) scorer s | (a) rows/s | (a) peak RSS MB | (c) I/O floor s "
           "| (b) naive s | (d) dask s | (a)/(c) | (b)/(a) | (d)/(a) | (b)/(c) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for line in s["rows"]:
        a, b = line.get("a"), line.get("b")
        rate = f"{line['rows'] / a['wall_s']:,.0f}" if _ok(a) else "—"
        d = line.get("d")
        out.append(
            f"| {line['format']} | {line['rows']:,} | {fmt_s(a)} | {rate} | {fmt_rss(a)} | "
            f"{fmt_s(line.get('c'))} | {fmt_s(b)} | {fmt_s(d) if _ok(d) else 'skipped'} | "
            f"{fmt_ratio(line['a_over_c'])} | "
            f"{fmt_ratio(line['b_over_a'], bool(b and b.get('extrapolated')))} | "
            f"{fmt_ratio(line['d_over_a'])} | "
            f"{fmt_ratio(line['b_over_c'], bool(b and b.get('extrapolated')))} |")
    out += ["", "Every measured run (wall time from time.monotonic() around the child process; "
            "peak RSS = max of the child's ru_maxrss from os.wait4 and the sampled RSS sum of its "
            "process tree):", "",
            "| case | input | rows | rep | wall s | rows/s | peak RSS MB | user+sys s | exit |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        rate = f"{r['rows'] / r['wall_s']:,.0f}" if r["ok"] else "—"
        out.append(f"| ({r['case']}) {CASES[r['case']]} | {r['format']} | {r['rows']:,} | "
                   f"{r['rep']} | {r['wall_s']:,.1f} | {rate} | {r['peak_rss_mb']:,.0f} | "
                   f"{r['user_s'] + r['sys_s']:,.1f} | {r['exit_code']} |")
    if s["targets"]:
        out += ["", "Targets (2-core, 24 GB machine):", "", "| target | value | verdict | note |",
                "|---|---:|---|---|"]
        out += [f"| {t['target']} | {t['value']} | {t['verdict']} | {t['note']} |"
                for t in s["targets"]]
    out += ["", "Notes:", ""]
    if any((line.get("b") or {}).get("extrapolated") for line in s["rows"]):
        out.append("- \\* (b) is measured on fewer rows and extrapolated linearly: its start-up "
                   "(imports, model load) stays fixed, its read + predict + write time scales "
                   "with rows. Its RSS is shown at the measured size (it holds the whole table "
                   "in memory, so it grows with rows).")
    for r in report["runs"]:
        if r["case"] == "b" and r["ok"]:
            ph = r["phases"]
            per_row = sum(ph.get(k, 0.0) for k in ("read_s", "predict_s", "write_s"))
            out.append(f"- (b) {r['format']} {human(r['rows'])} measured: start-up "
                       f"{r['wall_s'] - per_row:.1f}s, read {ph.get('read_s', 0):.1f}s, "
                       f"predict {ph.get('predict_s', 0):.1f}s, write {ph.get('write_s', 0):.1f}s")
    for r in report["runs"]:
        ph = r.get("phases") or {}
        if r["case"] in "ad" and r["ok"] and "stream_s" in ph:
            out.append(f"- ({r['case']}) {r['format']} {human(r['rows'])} phases from the scorer's "
                       f"log (±1 s): start-up {ph['startup_s']}s (TensorFlow import, plan with "
                       f"sha256, model load), stream {ph['stream_s']}s (read, validate, predict, "
                       f"write{', re-type' if r['format'] == 'csv' else ''}), report+publish "
                       f"{ph['report_s']}s, exit {ph['exit_s']}s")
    if any(r["case"] == "d" and r["ok"] for r in report["runs"]):
        out.append("- (d) ran the scorer with `--engine dask --dask-workers "
                   f"{report['args']['dask_workers']}`; its peak RSS is the sum over the process "
                   "tree (scheduler + workers; pages they share are counted in each, so it is "
                   "an upper bound).")
    out += [f"- {note}" for note in report.get("dask_notes", [])]
    out.append("- Every case reads its input once before it starts (warm page cache); outputs "
               "are deleted after each case. Logs: benchmarks/data/logs/.")
    failed = [r for r in report["runs"] if not r["ok"] and not (r["case"] == "d")]
    for r in failed:
        out.append(f"- FAILED ({r['case']}) {r['format']} {r['rows']:,}: {r.get('error')}")
    checks = report.get("checks") or []
    out += [f"- {c}" for c in checks]
    return "\n".join(out) + "\n"


def consistency(results: list[dict[str, Any]]) -> list[str]:
    """The floor must write what the scorer writes: same rows, columns, types and compression."""
    notes = []
    by = {(r["case"], r["format"], r["rows"]): r for r in results if r["ok"] and r.get("output")}
    for (case, fmt, rows), r in by.items():
        if case not in "cd" or ("a", fmt, rows) not in by:
            continue
        a, o = by[("a", fmt, rows)]["output"], r["output"]
        what = f"({case}) vs (a) at {fmt} {human(rows)}"
        diffs = [k for k in ("rows", "schema", "parquet_compression", "csv_header")
                 if a.get(k) != o.get(k)]
        if diffs:
            notes.append(f"CHECK {what}: outputs differ in {', '.join(diffs)} "
                         f"(a: {[a.get(k) for k in diffs]}; {case}: {[o.get(k) for k in diffs]})")
        else:
            layout = (f"; predictions.parquet is a folder of {o['parquet_parts']} parts"
                      if o.get("parquet_parts") else "")
            notes.append(f"check {what}: same rows, columns, types, compression "
                         f"({', '.join(a.get('parquet_compression', []))}) and CSV header; "
                         f"output sizes parquet {a.get('parquet_mb', 0):,.0f}/"
                         f"{o.get('parquet_mb', 0):,.0f} MB, csv {a.get('csv_mb', 0):,.0f}/"
                         f"{o.get('csv_mb', 0):,.0f} MB{layout}")
    return notes


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# -- command line ----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description="Benchmark the streaming scorer (a) against the naive pandas/Keras baseline "
                    "(b), the pyarrow I/O floor (c) and, when available, the Dask engine (d).")
    p.add_argument("--rows", type=int, nargs="+", metavar="N",
                   help=f"Parquet input sizes (default: {' '.join(map(str, DEFAULT_ROWS))}); "
                        "also the CSV sizes unless --csv-rows is given")
    p.add_argument("--csv-rows", type=int, nargs="+", metavar="N",
                   help="CSV input sizes (default: 10000000, or --rows when that is given)")
    p.add_argument("--format", nargs="+", choices=["parquet", "csv"], default=["parquet", "csv"],
                   help="input formats (default: parquet csv)")
    p.add_argument("--naive-rows", type=int, default=None, metavar="N",
                   help=f"rows the naive baseline (b) is measured on, then extrapolated "
                        f"(default {DEFAULT_NAIVE_ROWS}; never more than the largest size)")
    p.add_argument("--cases", default="abcd",
                   help="which cases to run, e.g. 'ac' (default abcd; d only when available)")
    p.add_argument("--dask", choices=["auto", "off"], default="auto",
                   help="auto: run (d) when `jobs.score --help` offers --engine dask (default)")
    p.add_argument("--dask-workers", type=int, default=2, help="workers for (d) (default 2)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per case and size; the table shows the median time (default 1)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_ROWS:,} rows of each format, naive measured directly")
    p.add_argument("--out", default=str(RESULTS),
                   help="results folder (default benchmarks/results)")
    p.add_argument("--models-dir", default=None,
                   help="registry with a production model (default: one trained into "
                        "benchmarks/data/models)")
    p.add_argument("--boston-npz", default=None,
                   help="boston_housing.npz for training the model offline (default: "
                        "$KERAS_HOME, ../shared/data, ~/.keras)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter that runs the cases (default: this one)")
    p.add_argument("--keep-outputs", action="store_true",
                   help="keep every case's output files in benchmarks/data/runs/")
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
    if set(a.cases) - set("abcd"):
        p.error("--cases takes letters from 'abcd'")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_floor":
        return child_floor(argv[1:])
    if argv and argv[0] == "_naive":
        return child_naive(argv[1:])
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    before = loadavg()
    bench = Bench(args)
    try:
        bench.run()
    except KeyboardInterrupt:
        say("interrupted; writing what was measured so far")
    summary = summarise(bench.results, args)
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench.py " + " ".join(argv),
        "args": {k: v for k, v in vars(args).items()},
        "machine": machine(), "loadavg_before": before, "loadavg_after": loadavg(),
        "model": {"models_dir": str(bench.models_dir), "version": bench.version},
        "dask_notes": ([bench.dask_note] if bench.dask_state != "try" else [])
                      + list(bench.dask_failed.values()),
        "runs": bench.results, "summary": summary, "checks": consistency(bench.results),
    }
    text = markdown(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = "_".join(f"{fmt}-{'-'.join(human(n) for n in bench.sizes(fmt))}"
                     for fmt in args.format)
    stem = started.strftime("%Y%m%dT%H%M%SZ") + "_" + sizes
    write_atomic(out / f"{stem}.md", text)
    write_atomic(out / f"{stem}.json", json.dumps(report, indent=2, default=str) + "\n")
    sys.stdout.write(text)
    say(f"wrote {out / (stem + '.md')} and {stem}.json")
    failed = [r for r in bench.results if not r["ok"] and r["case"] != "d"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
