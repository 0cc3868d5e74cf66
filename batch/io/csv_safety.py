"""CSV safety: every cell and header a spreadsheet opens from our CSV files goes through here."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from batch.core.columns import csv_ready
from batch.core.features import NUMBER_RE

# Spreadsheet formula triggers (OWASP CSV injection); a cell that is a plain number is left alone.
FORMULA_RE = r"^\s*[=+\-@]|^[\t\r]"
SAFE_COLUMNS = frozenset({"model_version", "run_id"})  # written by us: vN and a run id


def defuse(column: pa.Array) -> pa.Array:
    """Prefix "'" to text cells a spreadsheet would run as a formula; plain numbers stay as is."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    trigger = pc.fill_null(pc.match_substring_regex(column, FORMULA_RE), False)
    if not pc.any(trigger).as_py():
        return column  # the common case: one cheap pass, nothing to defuse
    risky = pc.and_(
        trigger, pc.invert(pc.fill_null(pc.match_substring_regex(column, NUMBER_RE), False))
    )
    quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
    return pc.if_else(risky, pc.binary_join_element_wise(quote, column, empty), column)


def defuse_text(text: str) -> str:
    """One text value (a column name, say) defused like a cell."""
    if re.match(FORMULA_RE, text) and not re.match(NUMBER_RE, text):
        return "'" + text
    return text


def csv_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as it goes into a CSV file: every column in a type the CSV writer takes (nested
    values as JSON text, bytes as text) and every text-like cell a formula could start defused."""
    cols, fields = [], []
    for f, col in zip(batch.schema, batch.columns):
        if f.name in SAFE_COLUMNS:
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


def csv_schema(schema: pa.Schema) -> pa.Schema:
    """The types csv_safe gives each column of `schema`."""
    return csv_safe(pa.RecordBatch.from_pylist([], schema=schema)).schema


def csv_header_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as written to a CSV file: csv_safe's types, column names defused like cells."""
    return pa.schema([f.with_name(defuse_text(f.name)) for f in csv_schema(schema)])
