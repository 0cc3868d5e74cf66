"""CSV safety: every cell and header a spreadsheet opens from our CSV files goes through here."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from batch.core.columns import csv_ready
from batch.core.features import NUMBER_RE

# Spreadsheet formula triggers (OWASP CSV injection); a cell that is a plain number is left alone.
# Whitespace spelt out: Python's \s takes a vertical tab and Arrow's (RE2) does not, and a
# header (defuse_text, Python) and a cell (defuse, Arrow) must be defused alike.
FORMULA_RE = r"^[ \t\n\r\f\v]*[=+\-@]|^[\t\r]"
SAFE_COLUMNS = frozenset({"model_version", "run_id"})  # written by us: vN and a run id
# The bytes a cell FORMULA_RE matches can start with (its triggers, and whitespace before one).
_FIRST_BYTES = pa.array([c.encode() for c in "=+-@\t\n\x0b\f\r "], pa.binary())


def defuse(column: pa.Array) -> pa.Array:
    """Prefix "'" to text cells a spreadsheet would run as a formula; plain numbers stay as is."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    # The common case, nothing to defuse, told from each cell's first byte (a regex over every
    # cell cost four times as much); only a column with a candidate goes through the regex.
    if not _may_trigger(column):
        return column
    trigger = pc.fill_null(pc.match_substring_regex(column, FORMULA_RE), False)
    if not pc.any(trigger).as_py():
        return column
    risky = pc.and_(
        trigger, pc.invert(pc.fill_null(pc.match_substring_regex(column, NUMBER_RE), False))
    )
    quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
    return pc.if_else(risky, pc.binary_join_element_wise(quote, column, empty), column)


def _may_trigger(column: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a cell of the text column starts with a byte FORMULA_RE can start with."""
    binary = pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
    first = pc.binary_slice(column.cast(binary), 0, 1)  # a cast of text to bytes copies nothing
    return bool(pc.any(pc.is_in(first, value_set=_FIRST_BYTES.cast(binary))).as_py())


def defuse_text(text: str) -> str:
    """One text value (a column name, say) defused like a cell."""
    if re.match(FORMULA_RE, text) and not re.match(NUMBER_RE, text):
        return "'" + text
    return text


def csv_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as it goes into a CSV file: every column in a type the CSV writer takes (nested
    values as JSON text, bytes as text) and every text-like cell a formula could start defused."""
    cols, fields = [], []
    # The first-byte check of every plain text column at once (one kernel call each, not one per
    # column): in the common case nothing is defused and no column is looked at again.
    plain = [c for f, c in zip(batch.schema, batch.columns) if _plain_text(f)]
    clean = len(plain) > 1 and not _may_trigger(pa.chunked_array(plain, pa.string()))
    for f, col in zip(batch.schema, batch.columns):
        if f.name in SAFE_COLUMNS or (clean and _plain_text(f)):
            cols.append(col)
        elif f.name == "source_file" and len(col):
            # One file name per batch: check it once rather than on every row.
            first = defuse(col.slice(0, 1))[0]
            cols.append(
                col
                if first == col[0]
                else pa.repeat(pa.scalar(first.as_py(), pa.string()), len(col))
            )
        else:
            ready, text = csv_ready(col)
            cols.append(defuse(ready) if text else ready)
        fields.append(pa.field(f.name, cols[-1].type))
    return pa.record_batch(cols, schema=pa.schema(fields))


def _plain_text(f: pa.Field) -> bool:
    """A string column that csv_ready leaves as it is, other than source_file (checked once)."""
    return pa.types.is_string(f.type) and f.name not in SAFE_COLUMNS and f.name != "source_file"


def csv_schema(schema: pa.Schema) -> pa.Schema:
    """The types csv_safe gives each column of `schema`."""
    return csv_safe(pa.RecordBatch.from_pylist([], schema=schema)).schema


def csv_header_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as written to a CSV file: csv_safe's types, column names defused like cells."""
    return pa.schema([f.with_name(defuse_text(f.name)) for f in csv_schema(schema)])
