"""Running one case: a child process timed and RSS-sampled, its summary, phases and outputs read."""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.common import REPO


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
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True
        )
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
    return {
        "cmd": cmd,
        "exit_code": proc.returncode,
        "wall_s": wall,
        "started_epoch": started_epoch,
        "maxrss_mb": maxrss / 1e6,
        "tree_peak_rss_mb": sampler.peak_bytes / 1e6,
        "processes": sampler.max_procs,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "stdout_tail": stdout.strip().splitlines()[-1:] if stdout.strip() else [],
        "stderr_tail": stderr.strip().splitlines()[-20:],
        "log": str(err_path),
    }


def error_line(m: dict[str, Any]) -> str:
    """The child's one-sentence error (`jobs.score: error: ...`), else its last stderr line."""
    lines = [ln.strip() for ln in m["stderr_tail"] if ln.strip()]
    said = [ln for ln in lines if ": error:" in ln]
    return f"exit {m['exit_code']}: " + ((said or lines or ["no output"])[-1])[:400]


def _kill_group(pid: int) -> None:
    """End what is left of a child's process group (its session was started for this)."""
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
    parts = (
        sorted(pq_path.glob("*.parquet"))
        if pq_path.is_dir()
        else ([pq_path] if pq_path.is_file() else [])
    )
    if parts:
        rows, codecs, size = 0, set(), 0
        for part in parts:
            pf = pq.ParquetFile(part)
            meta = pf.metadata
            rows += meta.num_rows
            size += part.stat().st_size
            for g in range(meta.num_row_groups):
                codecs |= {meta.row_group(g).column(i).compression for i in range(meta.num_columns)}
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


def parse_summary(lines: list[str]) -> dict[str, Any]:
    """The scorer's JSON summary: the last line of its stdout ({} when there is none)."""
    try:
        value = json.loads(lines[-1])
        return value if isinstance(value, dict) else {}
    except (IndexError, ValueError):
        return {}


def _durations(value: Any) -> dict[str, float]:
    """A phases_seconds mapping, kept in its order, without entries that are not durations."""
    if not isinstance(value, dict):
        return {}
    return {
        str(name): float(s)
        for name, s in value.items()
        if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s >= 0
    }


def scorer_phases(run_dir: Path | None, summary: dict[str, Any]) -> dict[str, float]:
    """Phase name -> seconds of one scorer run, in the order the scorer ran them.

    The phases are `phases_seconds` of the run's report.json (read while the run folder still
    exists), followed by the ones only the JSON summary can know (publishing happens after
    report.json is written). Empty when the scorer records no phases (an older scorer).
    """
    phases: dict[str, float] = {}
    if run_dir is not None:
        try:
            report = json.loads((run_dir / "report.json").read_text())
        except (OSError, ValueError):
            report = None
        if isinstance(report, dict):
            phases.update(_durations(report.get("phases_seconds")))
    for name, seconds in _durations(summary.get("phases_seconds")).items():
        phases.setdefault(name, seconds)
    return phases


def machine() -> dict[str, Any]:
    """The machine and library versions the results were measured with."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
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
    for dist in (
        "pyarrow",
        "numpy",
        "pandas",
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "dask",
        "distributed",
    ):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        info["git"] = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (a busy machine shows here), or "n/a"."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
