"""The only place that reads input files and writes run outputs (temp names, then rename)."""
from __future__ import annotations

import csv
import datetime as dt
import glob
import gzip
import json
import logging
import os
import secrets
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.datasets import BOSTON_COLUMNS, sha256_file
from batch.errors import InputError, LockHeld
from batch.locks import FileLock
from batch.atomic import fsync_dir, write_atomic

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUCCESS = "_SUCCESS"
LATEST = "LATEST"
STAGING = ".staging"  # runs in progress: output/.staging/<run_id>/
SNIFF_BYTES = 1 << 16
CSV_BLOCK_BYTES = 1 << 20


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


# -- finding inputs --------------------------------------------------------------------------------

def resolve_inputs(entries: list[str]) -> list[Path]:
    """Files named by --input entries: a file, a directory (supported files inside, sorted) or a glob."""
    found: list[Path] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file() and file_format(child) and not child.name.startswith("."):
                    found.append(child)
                elif child.is_file() or child.is_dir():
                    log.info("ignoring %s (not a .csv, .csv.gz, .parquet or .pq file)", child)
        elif path.is_file():
            if file_format(path) is None:
                raise InputError(f"input {entry!r} is not a .csv, .csv.gz, .parquet or .pq file; "
                                 "rename it or point --input at a supported file")
            found.append(path)
        elif glob.has_magic(entry):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(entry)))
            files = [p for p in matches if p.is_file() and file_format(p)]
            for p in matches:
                if p not in files:
                    log.info("ignoring %s (not a .csv, .csv.gz, .parquet or .pq file)", p)
            if not files:
                log.warning("input pattern %r matches no supported files", entry)
            found.extend(files)
        else:
            raise InputError(f"input {entry!r} does not exist; check --input / BATCH_INPUT")
    unique, seen = [], set()
    for p in found:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


# -- reading inputs ----------------------------------------------------------------------------------

@dataclass
class InputFile:
    """One input file, opened far enough to know its columns (nothing is read twice)."""

    path: Path
    format: str
    columns: list[str]
    types: dict[str, pa.DataType]
    sha256: str
    size: int = 0
    mtime_ns: int = 0
    delimiter: str = ","
    has_header: bool = True
    empty: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path)


def inspect(path: Path) -> InputFile:
    """Columns and types of `path`, its sha256, and (CSV) its delimiter and header; InputError if bad."""
    fmt = file_format(path)
    try:
        before = path.stat()
        digest = sha256_file(path)
    except OSError as exc:
        raise InputError(f"cannot read input {str(path)!r}: {exc.strerror or exc}") from None
    if fmt == "parquet":
        try:
            schema = pq.ParquetFile(path).schema_arrow
        except Exception as exc:
            raise InputError(f"input {str(path)!r} is not a readable Parquet file ({exc})") from None
        columns = [str(n) for n in schema.names]
        src = InputFile(path, "parquet", columns, dict(zip(columns, schema.types)), digest)
    else:
        src = _inspect_csv(path, digest)
    src.size, src.mtime_ns = before.st_size, before.st_mtime_ns
    return src


def check_unchanged(src: InputFile) -> None:
    """InputError when a file changed since it was hashed (it was still being written)."""
    try:
        now = src.path.stat()
    except OSError:
        now = None
    if now is None or (now.st_size, now.st_mtime_ns) != (src.size, src.mtime_ns):
        raise InputError(f"input {src.name!r} changed while it was being scored (still being "
                         "written?); nothing was published — write files under a temporary name "
                         "and rename them into the input folder when complete")


def _head_text(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read input {str(path)!r} ({exc})") from None
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the sniff window
            raise InputError(f"input {str(path)!r} is not UTF-8 text (byte {exc.start}); "
                             "save it as UTF-8 CSV") from None
        return head[:exc.start].decode("utf-8-sig")


def _is_number(text: str) -> bool:
    try:
        float(text.strip().replace(",", ".") if text.count(",") == 1 else text)
        return True
    except ValueError:
        return False


def _inspect_csv(path: Path, digest: str) -> InputFile:
    text = _head_text(path)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return InputFile(path, "csv", [], {}, digest, empty=True)
    first = lines[0]
    delimiter = max([",", ";", "\t"], key=lambda d: _count_outside_quotes(first, d))
    if _count_outside_quotes(first, delimiter) == 0:
        delimiter = ","
    fields = next(csv.reader([first], delimiter=delimiter))
    fields = [f.strip().strip('"').strip() for f in fields]
    filled = [f for f in fields if f]
    if filled and all(_is_number(f) for f in filled):  # a data row (cells may be empty)
        if len(fields) not in (len(BOSTON_COLUMNS), len(BOSTON_COLUMNS) + 1):
            raise InputError(
                f"input {str(path)!r} has no header row and {len(fields)} columns; add a header "
                f"row, or send the 13-column Boston layout (rooms in column 6: "
                f"{', '.join(BOSTON_COLUMNS)}) with an optional 14th medv column")
        names = BOSTON_COLUMNS + (["medv"] if len(fields) > len(BOSTON_COLUMNS) else [])
        has_header = False
        note = "no header row: read as the Boston layout (rooms = column 6, 'rm')"
    else:
        names = [f if f else f"column_{i + 1}" for i, f in enumerate(fields)]
        has_header, note = True, ""
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"input {str(path)!r} repeats the column name(s) "
                             f"{', '.join(repr(d) for d in dupes)}; make the header names unique")
    return InputFile(path, "csv", names, {n: pa.string() for n in names}, digest,
                     delimiter=delimiter, has_header=has_header, notes=[note] if note else [])


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def iter_batches(src: InputFile, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream `src` in record batches of about `chunk_rows` rows; corrupt content raises InputError."""
    if src.empty:
        return
    try:
        if src.format == "parquet":
            # pre_buffer=False keeps peak memory flat as files grow (DESIGN.md).
            pf = pq.ParquetFile(src.path, pre_buffer=False, buffer_size=1 << 20)
            yield from pf.iter_batches(batch_size=chunk_rows)
            return
        # 1 MB blocks: with larger ones Arrow's streaming CSV reader's peak memory grew with the
        # file's length here (32 MB blocks: 0.4 GB at 1M rows, 1.1 GB at 10M); at 1 MB it stays
        # flat (~0.2 GB) and reads as fast. Small blocks are joined up to chunk_rows below.
        reader = pacsv.open_csv(
            src.path,
            read_options=pacsv.ReadOptions(
                column_names=src.columns, skip_rows=1 if src.has_header else 0,
                block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=src.delimiter,
                                             ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types=src.types, strings_can_be_null=False,
                quoted_strings_can_be_null=False),
        )
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            if batch.num_rows:
                pending.append(batch)
                rows += batch.num_rows
                if rows >= chunk_rows:
                    yield _join(pending)
                    pending, rows = [], 0
        if pending:
            yield _join(pending)
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise InputError(f"input {src.name!r} is corrupt or unreadable ({short_error(exc)}); "
                         "fix or remove the file and run again") from None


def _join(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def short_error(exc: BaseException) -> str:
    """An exception's message on one line, cut to a readable length."""
    text = " ".join(str(exc).split())
    return text[:300]


# -- the run directory ---------------------------------------------------------------------------------

def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class OutputDir:
    """BATCH_OUTPUT_DIR: runs/, failed/, LATEST, the run lock and temp folders of runs in progress."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.failed = self.root / "failed"
        self._lock = FileLock(self.root / ".lock")

    def lock(self, run_id: str) -> None:
        """Take the output lock or raise LockHeld naming the holder."""
        self.root.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
              "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        if not self._lock.acquire(blocking=False, holder=me):
            who = self._lock.holder()
            desc = (f"pid {who.get('pid', '?')} on {who.get('host', '?')}, started "
                    f"{who.get('started_at', '?')}" if who else "another process")
            raise LockHeld(f"another scoring run ({desc}) holds {self.root}; it was left alone — "
                           "wait for it to finish, then run again")

    def unlock(self) -> None:
        self._lock.release()

    def clean_leftovers(self) -> None:
        """Remove the folders of runs that were killed (safe: we hold the lock)."""
        staging = self.root / STAGING
        if staging.is_dir():
            for tmp in staging.iterdir():
                log.info("removing %s left by a run that did not finish", tmp)
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)

    def staging(self, run_id: str) -> Path:
        path = self.root / STAGING / run_id
        path.mkdir(parents=True)
        return path

    def publish(self, staged: Path, run_id: str) -> Path:
        """_SUCCESS last inside the temp folder, then one rename: runs/<id> appears complete."""
        write_atomic(staged / SUCCESS, json.dumps({"run_id": run_id}) + "\n")
        fsync_dir(staged)
        self.runs.mkdir(parents=True, exist_ok=True)
        final = self.runs / run_id
        os.rename(staged, final)
        fsync_dir(self.runs)
        write_atomic(self.root / LATEST, run_id + "\n")
        return final

    def publish_failed(self, staged: Path, run_id: str, keep: tuple[str, ...]) -> Path:
        """A run over its reject budget: keep only the diagnosis files, under failed/<id>."""
        for child in staged.iterdir():
            if child.name not in keep:
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        self.failed.mkdir(parents=True, exist_ok=True)
        final = self.failed / run_id
        os.rename(staged, final)
        return final

    def successful_runs(self) -> list[Path]:
        if not self.runs.is_dir():
            return []
        return sorted(p for p in self.runs.iterdir() if (p / SUCCESS).is_file())

    def scored_hashes(self) -> set[str]:
        """sha256 of every input file a successful run has scored (for --new-only)."""
        hashes: set[str] = set()
        for run in self.successful_runs():
            try:
                report = json.loads((run / "report.json").read_text())
            except (OSError, ValueError):
                log.warning("cannot read %s/report.json; its inputs count as not scored", run)
                continue
            hashes.update(i["sha256"] for i in report.get("inputs", []) if i.get("sha256"))
        return hashes

    def latest(self) -> str | None:
        try:
            return (self.root / LATEST).read_text().strip() or None
        except OSError:
            return None



# -- writers --------------------------------------------------------------------------------------------

def retype_parquet(path: Path, columns: list[str]) -> None:
    """Rewrite the Parquet file at `path` with the given text columns as float64 ('' -> null).

    Streams with flat memory (pre_buffer off) and replaces the file only when complete.
    """
    import pyarrow.compute as pc

    pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    schema = pa.schema([pa.field(f.name, pa.float64()) if f.name in columns else f
                        for f in pf.schema_arrow])
    tmp = path.with_name(path.name + ".retype")
    with pq.ParquetWriter(tmp, schema) as writer:
        for batch in pf.iter_batches(batch_size=1 << 18):
            arrays = []
            for f, col in zip(schema, batch.columns):
                if f.name in columns:
                    text = pc.utf8_trim_whitespace(col)
                    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
                    col = pc.cast(text, pa.float64())
                arrays.append(col)
            writer.write_batch(pa.record_batch(arrays, schema=schema))
    tmp.replace(path)


def csv_header_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as written to a CSV header: column names defused like cells."""
    from batch.features import neutralise_text

    return pa.schema([f.with_name(neutralise_text(f.name)) for f in schema])


class TableWriters:
    """predictions.parquet, predictions.csv and rejects.csv, written batch by batch."""

    def __init__(self, folder: Path, schema: pa.Schema, csv_schema: pa.Schema,
                 rejects_schema: pa.Schema) -> None:
        self.folder = folder
        self.parquet = pq.ParquetWriter(folder / "predictions.parquet", schema)
        opts = pacsv.WriteOptions(quoting_style="needed")
        self.csv = pacsv.CSVWriter(folder / "predictions.csv", csv_header_schema(csv_schema),
                                   write_options=opts)
        self.rejects = pacsv.CSVWriter(folder / "rejects.csv", rejects_schema, write_options=opts)

    def close(self) -> None:
        for w in (self.parquet, self.csv, self.rejects):
            w.close()
