"""Training data: Boston Housing through Keras's own loader, or a CSV/Parquet file of rooms and
price."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from batch.core.errors import InputError
from batch.core.names import BOSTON_COLUMNS, ROOMS_NAMES, find_column
from batch.storage import fs
from batch.storage.location import Location

if TYPE_CHECKING:  # pandas is imported when a file is read, not for Boston
    import pandas as pd

log = logging.getLogger(__name__)

ROOMS_INDEX = BOSTON_COLUMNS.index("rm")  # column 5, as in the tutorial
TEST_SPLIT = 0.2
SPLIT_SEED = 113  # Keras's boston_housing.load_data default


@dataclass
class TrainingData:
    """Rooms (x) and median price in $K (y), split into train and test as Keras does."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str
    rows_dropped: int = 0


def sha256_file(location: Location, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with fs.open_binary(location) as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def keras_cache_file() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "boston_housing.npz"


def load(data: str, feature_column: str | None = None, target_column: str = "medv") -> TrainingData:
    """The training data named by the `data` setting."""
    if data.strip().lower() == "boston":
        return load_boston()
    try:
        path = fs.path(data)
    except ValueError as exc:
        raise InputError(f"training data {data!r}: {exc}") from None
    return load_file(path, feature_column, target_column)


def load_boston() -> TrainingData:
    """Keras's Boston Housing with its standard 80/20 split (seed 113); downloads only when not
    cached."""
    from keras.datasets import boston_housing

    cached = keras_cache_file()
    try:
        (x_train, y_train), (x_test, y_test) = boston_housing.load_data(
            test_split=TEST_SPLIT, seed=SPLIT_SEED
        )
    except Exception as exc:  # Keras raises a bare Exception on a failed download
        raise InputError(
            f"Boston Housing is not cached at {cached} and could not be downloaded ({exc}); "
            "put boston_housing.npz there (KERAS_HOME sets the folder) or pass --data PATH "
            "with a CSV/Parquet file of rm and medv"
        ) from None
    return TrainingData(
        x_train=x_train[:, ROOMS_INDEX].astype("float32"),
        y_train=y_train.astype("float32"),
        x_test=x_test[:, ROOMS_INDEX].astype("float32"),
        y_test=y_test.astype("float32"),
        source="keras:boston_housing",
        sha256=sha256_file(cached) if cached.exists() else "",
    )


def split_like_keras(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Shuffle with RandomState(113) and cut at 80%, exactly as keras.datasets.boston_housing
    does."""
    rng = np.random.RandomState(SPLIT_SEED)
    indices = np.arange(len(x))
    rng.shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - TEST_SPLIT))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def load_file(path: Location, feature_column: str | None, target_column: str) -> TrainingData:
    """A CSV or Parquet training file with rooms and price columns; bad rows are dropped and
    counted."""
    frame = _read_frame(path)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    x_col = find_column(columns, feature_column, ROOMS_NAMES)
    y_col = find_column(columns, target_column, ())
    if x_col is None or y_col is None:
        missing = "rooms" if x_col is None else f"price ({target_column})"
        raise InputError(
            f"no {missing} column in training data {str(path)!r} (columns: "
            f"{', '.join(repr(c) for c in columns)}); set --feature-column / --target-column"
        )
    x, y, dropped = _usable_rows(frame, x_col, y_col, path)
    x_train, y_train, x_test, y_test = split_like_keras(x, y)
    return TrainingData(
        x_train,
        y_train,
        x_test,
        y_test,
        source=str(path),
        sha256=sha256_file(path),
        rows_dropped=dropped,
    )


def _read_frame(path: Location) -> pd.DataFrame:
    """The file as a DataFrame; InputError when it is missing, a folder or unreadable."""
    import pandas as pd

    try:
        with fs.storage(path):
            exists = path.is_file()
            if not exists:
                fs.check(path)  # a missing bucket or a wrong key says so, not "does not exist"
    except OSError as exc:
        raise InputError(f"cannot read training data {str(path)!r}: {exc}") from None
    if not exists:
        what = "is a folder, not a file" if fs.is_folder_not_file(path) else "does not exist"
        raise InputError(
            f"training data file {str(path)!r} {what}; pass --data boston "
            "or the path of a CSV/Parquet file with rm and medv columns"
        )
    try:
        with fs.storage(path), fs.open_binary(path) as fh:
            if path.name.lower().endswith((".parquet", ".pq")):
                return pd.read_parquet(fh)
            return pd.read_csv(fh, sep=None, engine="python", encoding="utf-8-sig")
    except Exception as exc:
        raise InputError(f"cannot read training data {str(path)!r}: {exc}") from None


def _usable_rows(
    frame: pd.DataFrame, x_col: str, y_col: str, path: Location
) -> tuple[np.ndarray, np.ndarray, int]:
    """(rooms, prices, rows dropped): rows where both are finite numbers, as float32."""
    import pandas as pd

    x = pd.to_numeric(frame[x_col], errors="coerce").to_numpy(dtype="float64")
    y = pd.to_numeric(frame[y_col], errors="coerce").to_numpy(dtype="float64")
    good = np.isfinite(x) & np.isfinite(y)
    dropped = int((~good).sum())
    if dropped:
        log.warning(
            "training data %s: dropped %d of %d rows with a missing or non-numeric %s/%s",
            path,
            dropped,
            len(good),
            x_col,
            y_col,
        )
    x, y = x[good].astype("float32"), y[good].astype("float32")
    if len(x) < 10:
        raise InputError(
            f"training data {str(path)!r} has only {len(x)} usable rows; at least 10 are needed"
        )
    return x, y, dropped
