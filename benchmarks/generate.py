"""What the cases run on: the generated Boston-schema inputs (cached), the model, the environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BOSTON, DATA, REPO, say

NAMES = [
    "Ashford",
    "Brookvale",
    "Cedar Hill",
    "Dunmore",
    "Elmstead",
    "Fairhaven",
    "Glenwood",
    "Harbourside",
    "Ivybridge",
    "Juniper Flats",
    "Kingsmere",
    "Larchmont",
    "Millbrook",
    "Northgate",
    "Oakridge",
    "Pinecrest",
    "Queensbury",
    "Riverbend",
    "Stonebridge",
    "Thornbury",
    "Upton",
    "Valewood",
    "Westcliff",
    "Yarrow",
    "Zephyr Park",
]
GEN_CHUNK = 500_000  # rows generated per chunk (generation memory stays flat)
GEN_SEED = 20261126


# -- input generation (streamed, cached in benchmarks/data/inputs) --------------------------------


def input_path(rows: int, fmt: str) -> Path:
    """Where the cached input of `rows` rows in `fmt` (parquet or csv) lives."""
    return DATA / "inputs" / f"boston-{rows}.{fmt}"


def make_chunk(start: int, n: int) -> Any:
    """Rows start..start+n-1 of the synthetic Boston-schema input (deterministic per chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    # seeded by the chunk's first row, so a file of N rows is the first N rows of any larger one
    rng = np.random.default_rng([GEN_SEED, start])
    idx = np.arange(start, start + n, dtype="int64")
    suburb_id = pc.binary_join_element_wise(
        "S", pc.utf8_lpad(pc.cast(pa.array(idx + 1), pa.string()), 8, "0"), ""
    )
    suburb = pc.binary_join_element_wise(
        pa.array(NAMES).take(pa.array(idx % len(NAMES))),
        pc.cast(pa.array(idx // len(NAMES) + 1), pa.string()),
        " ",
    )
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
                writer = (
                    pq.ParquetWriter(tmp, table.schema)
                    if fmt == "parquet"
                    else pacsv.CSVWriter(tmp, table.schema)
                )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    say(
        f"generated {path.name}: {path.stat().st_size / 1e6:,.0f} MB in "
        f"{time.monotonic() - t0:.1f}s"
    )
    return path


# -- the model the scorer and the baseline use -----------------------------------------------------


def find_boston_npz(explicit: str | None) -> Path | None:
    """boston_housing.npz for training offline: the given file, $KERAS_HOME, ../shared, ~/.keras."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("KERAS_HOME"):
        candidates.append(Path(os.environ["KERAS_HOME"]) / "datasets" / "boston_housing.npz")
    candidates += [
        REPO.parent / "shared" / "data" / "boston_housing.npz",
        Path.home() / ".keras" / "datasets" / "boston_housing.npz",
    ]
    return next((p for p in candidates if p.is_file()), None)


def production_version(models_dir: Path) -> str | None:
    """The registry's production version when its model file exists, else None."""
    try:
        aliases = json.loads((models_dir / "aliases.json").read_text())
    except (OSError, ValueError):
        return None
    version = aliases.get("production")
    if version and (models_dir / version / "model.keras").is_file():
        return version
    return None


def ensure_model(models_dir_arg: str | None, python: str, env: dict[str, str]) -> tuple[Path, str]:
    """A production model in --models-dir, else one trained (the tutorial's recipe) into benchmarks/data.

    The default recipe, not a shorter one: a few epochs at the default step fail the trainer's
    sanity check (exit 4), and the recipe takes only seconds.
    """
    models_dir = Path(models_dir_arg).resolve() if models_dir_arg else DATA / "models"
    version = production_version(models_dir)
    if version:
        return models_dir, version
    if models_dir_arg:
        sys.exit(
            f"bench: no production model in {models_dir}; train one with "
            f"python -m jobs.train --models-dir {models_dir}"
        )
    say(f"training a benchmark model into {models_dir.relative_to(REPO)}")
    cmd = [python, "-m", "jobs.train", "--models-dir", str(models_dir)]
    log = DATA / "logs" / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    version = production_version(models_dir)
    if rc != 0 or not version:
        sys.exit(f"bench: training the benchmark model failed (exit {rc}); see {log}")
    return models_dir, version


def keras_path_copy(models_dir: Path, version: str) -> Path:
    """A copy of the registry whose `version` has no fold record: the scorer takes the Keras path."""
    dest = DATA / "models-keras-path"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(models_dir, dest, ignore=shutil.ignore_patterns("*.lock"))
    meta_path = dest / version / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("fold", None)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return dest


def sample_rows(folder: Path) -> int:
    """Data rows in sample_inputs/ (CSV lines after the header, Parquet rows)."""
    import pyarrow.parquet as pq

    total = 0
    for path in sorted(folder.iterdir()):
        if path.suffix == ".csv":
            total += max(len(path.read_text().splitlines()) - 1, 0)
        elif path.suffix == ".parquet":
            total += pq.ParquetFile(path).metadata.num_rows
    return total


def prediction_path(run_dir: Path) -> str:
    """How the run predicted, from its report.json ('' when unreadable)."""
    try:
        return str(json.loads((run_dir / "report.json").read_text()).get("prediction_path", ""))
    except (OSError, ValueError):
        return ""


def child_env(boston_npz: str | None) -> dict[str, str]:
    """Every case's environment: no BATCH_* (flags say everything), TF quiet, offline Keras."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        TF_ENABLE_ONEDNN_OPTS="0",
        KERAS_BACKEND="tensorflow",
        PYTHONDONTWRITEBYTECODE="1",
    )
    npz = find_boston_npz(boston_npz)
    if npz is not None:
        home = DATA / "keras_home"
        (home / "datasets").mkdir(parents=True, exist_ok=True)
        target = home / "datasets" / "boston_housing.npz"
        if not target.is_file():
            shutil.copyfile(npz, target)
        env["KERAS_HOME"] = str(home)
    return env
