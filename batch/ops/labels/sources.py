"""Reading what a labels join needs: the label files, and one run's predictions.

A label file's location is parsed here, at the edge where the user's text comes in; both kinds
of file are read through the storage layer, so a local path and s3:// work alike.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from batch.core.documents import RunReport
from batch.core.documents.labels import LabelFile
from batch.core.errors import InputError
from batch.core.names import find_column
from batch.core.rules import HIGH, LOW, PREDICTION
from batch.core.shadow import PREFIX as SHADOW_PREFIX
from batch.storage import fs
from batch.storage.location import Location

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PREDICTIONS_PARQUET = "predictions.parquet"
PREDICTIONS_CSV = "predictions.csv"
KEY_SEPARATOR = "\x1f"  # between the parts of a key of several columns (never in a cell's text)


@dataclass
class Labels:
    """Every label file's rows: key text -> true price, and what was read."""

    frame: pd.DataFrame  # columns: key (text), label (float64)
    files: list[LabelFile]
    column: str  # the label column (as spelt in the first file)


def label_location(entry: str) -> Location:
    """A label file named on the command line, as a location; InputError when it is not one."""
    try:
        return fs.path(entry)
    except ValueError as exc:
        raise InputError(f"label file {entry!r}: {exc}") from None


def read_labels(entries: list[str], keys: list[str], wanted: str) -> Labels:
    """The label files' keys and true prices; InputError naming the file that cannot be used."""
    import pandas as pd

    frames, files, column = [], [], None
    for entry in entries:
        path = label_location(entry)
        data = _read_bytes(path)
        frame = _frame(data, path)
        found = find_column([str(c) for c in frame.columns], wanted, ())
        missing = [k for k in keys if k not in frame.columns]
        if found is None or missing:
            what = f"key column(s) {missing}" if missing else f"label column {wanted!r}"
            raise InputError(
                f"label file {str(path)!r} has no {what} (columns: "
                f"{', '.join(repr(str(c)) for c in frame.columns)}); set --key / --label-column"
            )
        column = column or found
        label = pd.to_numeric(frame[found], errors="coerce").astype("float64")
        keyed = pd.DataFrame({"key": key_text(frame, keys), "label": label})
        usable = keyed["key"].notna() & np.isfinite(keyed["label"])
        if not usable.all():
            log.warning(
                "label file %s: %d of %d rows have an empty key or a %s that is not a number; "
                "they are left out",
                path,
                int((~usable).sum()),
                len(keyed),
                found,
            )
        frames.append(keyed[usable])
        digest = hashlib.sha256(data).hexdigest()
        files.append(LabelFile(path=str(path), sha256=digest, rows=len(frame)))
    assert column is not None  # at least one file: argparse asks for one
    return Labels(pd.concat(frames, ignore_index=True), files, column)


def _read_bytes(path: Location) -> bytes:
    try:
        with fs.storage(path):
            if not path.is_file():
                fs.check(path)
                what = (
                    "is a folder, not a file" if fs.is_folder_not_file(path) else "does not exist"
                )
                raise InputError(f"label file {str(path)!r} {what}; pass a CSV or Parquet file")
            with fs.open_binary(path) as fh:
                data: bytes = fh.read()
                return data
    except OSError as exc:
        raise InputError(f"cannot read label file {str(path)!r}: {exc}") from None


def _frame(data: bytes, path: Location) -> pd.DataFrame:
    """A label file's bytes as a DataFrame: Parquet by its magic bytes, else CSV (',' or ';')."""
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if data[:4] == b"PAR1":
            return pq.read_table(io.BytesIO(data)).to_pandas()
        head = data.split(b"\n", 1)[0]
        sep = ";" if b";" in head and b"," not in head else ","
        table = pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=sep))
        frame: pd.DataFrame = table.to_pandas()
        return frame
    except Exception as exc:
        raise InputError(f"cannot read label file {str(path)!r} as CSV or Parquet: {exc}") from None


def key_text(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """One text per row for the key columns, the same whichever way a file typed them: whole
    numbers as integers (7, 7.0 and "7" match), other numbers as their shortest decimals, text
    stripped. A row with an empty key part gets None (it cannot be joined)."""
    parts = [_column_text(frame[k]) for k in keys]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.str.cat(part, sep=KEY_SEPARATOR)
    return joined.where(~joined.isna(), None)


def _column_text(column: pd.Series) -> pd.Series:
    """One key part as text (None where empty); numbers vectorised, text cell by cell."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column.dtype):
        return column.map({True: "true", False: "false"}).astype("object")
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.astype("Int64").astype("string").astype("object").where(column.notna(), None)
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.to_numpy("float64")
        whole = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**63)
        text = [
            str(int(v)) if w else (repr(float(v)) if not np.isnan(v) else None)
            for v, w in zip(values.tolist(), whole.tolist())
        ]
        return pd.Series(text, index=column.index, dtype="object")
    return pd.Series([_cell_text(v) for v in column.tolist()], index=column.index, dtype="object")


def _cell_text(value: object) -> str | None:
    """A text (or mixed) cell as key text: numbers as _column_text writes them, text stripped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text or None
    return _cell_text(number) if math.isfinite(number) else text


# -- a run's predictions ---------------------------------------------------------------------


def prediction_columns(run_dir: Location) -> list[str]:
    """The column names of a run's predictions (empty when it has none to read)."""
    import pyarrow.parquet as pq

    parts = _parquet_parts(run_dir)
    if parts:
        with fs.open_input_file(parts[0]) as fh:
            return list(pq.read_schema(fh).names)
    csv = run_dir / PREDICTIONS_CSV
    if csv.is_file():
        with fs.open_binary(csv) as fh:
            head = fh.readline().decode("utf-8-sig").strip()
        return [c.strip().strip('"') for c in head.split(",")]
    return []


def read_predictions(run_dir: Location, report: RunReport, keys: list[str]) -> pd.DataFrame:
    """A run's prediction rows: key (text), predicted, low, high, rooms and the challenger's
    prediction (float64; NaN in a run without --challenger)."""
    import pandas as pd

    rooms_by_file = {i.path: i.rooms_column for i in report.inputs if i.rooms_column}
    rooms_columns = sorted(set(rooms_by_file.values()))
    shadow = SHADOW_PREFIX + PREDICTION  # the challenger's, in a run scored with --challenger
    wanted = [*keys, "source_file", PREDICTION, LOW, HIGH, shadow, *rooms_columns]
    wanted = list(dict.fromkeys(wanted))
    raw = _read_columns(run_dir, wanted)
    rooms = pd.Series(np.nan, index=raw.index, dtype="float64")
    for source, column in rooms_by_file.items():
        if column in raw.columns:
            here = raw["source_file"] == source
            rooms[here] = _numbers(raw.loc[here, column])
    return pd.DataFrame(
        {
            "key": key_text(raw, keys),
            "pred": _numbers(raw[PREDICTION]),
            "low": _numbers(raw[LOW]),
            "high": _numbers(raw[HIGH]),
            "rooms": rooms,
            "challenger": _numbers(raw[shadow]) if shadow in raw else np.nan,
        }
    )


def _numbers(column: pd.Series) -> pd.Series:
    """A column as float64; text numbers with a decimal comma read as the scorer read them."""
    import pandas as pd

    if column.dtype == object:
        column = column.astype("string").str.strip().str.replace(",", ".", regex=False)
    return pd.to_numeric(column, errors="coerce").astype("float64")


def _parquet_parts(run_dir: Location) -> list[Location]:
    folder = run_dir / PREDICTIONS_PARQUET
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(".parquet"))


def _read_columns(run_dir: Location, wanted: list[str]) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parts = _parquet_parts(run_dir)
    if parts:
        frames = []
        for part in parts:
            with fs.open_input_file(part) as fh:
                names = pq.read_schema(fh).names
                frames.append(pq.read_table(fh, columns=[c for c in wanted if c in names]))
        return pd.concat([t.to_pandas() for t in frames], ignore_index=True)
    with fs.open_input_stream(run_dir / PREDICTIONS_CSV) as fh:
        options = pacsv.ConvertOptions(include_columns=wanted, include_missing_columns=True)
        frame: pd.DataFrame = pacsv.read_csv(fh, convert_options=options).to_pandas()
        return frame
