"""Arrow column types, for any column a file may carry: classify, unify losslessly, render as text.

Pure. The scorer carries every input column through whatever its type: as-is in Parquet, as
text in CSV (nested values as JSON). Types are only widened where no value can change.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

FLOAT64_EXACT_INT = 2**53  # every integer of at most this magnitude is exact in a float64
INT64_MAX = 2**63 - 1
FLOAT64_EXACT_DIGITS = 15  # every decimal of at most this many digits survives a float64


def value_type(t: pa.DataType) -> pa.DataType:
    """The type of the values (a dictionary's value type; else the type itself)."""
    return t.value_type if pa.types.is_dictionary(t) else t


def is_number_type(t: pa.DataType) -> bool:
    """Integer, floating (float16 included) or decimal, also dictionary-encoded."""
    t = value_type(t)
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def is_string_type(t: pa.DataType) -> bool:
    t = value_type(t)
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t))
    )


def is_binary_type(t: pa.DataType) -> bool:
    t = value_type(t)
    return (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or (hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(t))
    )


def is_text_like(t: pa.DataType) -> bool:
    """Values a reader sees as text: strings and bytes (old Parquet writers store text as bytes)."""
    return is_string_type(t) or is_binary_type(t)


def can_hold_rooms(t: pa.DataType) -> bool:
    """A type whose values can be a number of rooms: numbers, text, or all-null."""
    return is_number_type(t) or is_text_like(t) or pa.types.is_null(value_type(t))


def _writes_as_is(t: pa.DataType) -> bool:
    """Types the CSV writer writes as plain values that can never start a formula."""
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_null(t)
        or pa.types.is_temporal(t)
    )


def to_text(col: pa.Array) -> pa.Array:
    """Any column as a string column, without loss: nested values as JSON, bytes as UTF-8 text
    (or 'base64:...' where they are not valid UTF-8)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_dictionary(t):
        return to_text(col.dictionary_decode())
    if pa.types.is_string(t):
        return col
    if is_string_type(t) or _writes_as_is(t) and not pa.types.is_null(t):
        return pc.cast(col, pa.string())
    if is_binary_type(t):
        try:
            return pc.cast(pc.cast(col, pa.binary()), pa.string())
        except pa.ArrowInvalid:  # not UTF-8: keep every byte, as base64
            return pa.array(
                [None if v is None else _bytes_text(v) for v in col.to_pylist()], pa.string()
            )
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    try:
        if pa.types.is_duration(t):
            return pc.cast(col, pa.string())
    except pa.ArrowNotImplementedError:
        pass
    return pa.array(
        [
            None if v is None else json.dumps(v, default=_json_default, ensure_ascii=False)
            for v in col.to_pylist()
        ],
        pa.string(),
    )


def _bytes_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return _bytes_text(value)
    return str(value)  # datetimes, decimals, durations, intervals: their usual text


def csv_ready(col: pa.Array) -> tuple[pa.Array, bool]:
    """(a column the CSV writer can write, whether it is text that needs formula defusing)."""
    t = col.type
    if _writes_as_is(t):
        return col, False
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col, True
    return to_text(col), True


def conform(col: pa.Array, target: pa.DataType) -> pa.Array:
    """`col` as the unified type `target` (see unify): a lossless cast, or text."""
    if col.type == target:
        return col
    if pa.types.is_string(target) and not is_string_type(col.type):
        return to_text(col)
    return pc.cast(col, target)  # safe: unify only widens where no value changes


def unify(
    a: pa.DataType | None, b: pa.DataType, *, a_exact: bool = True, b_exact: bool = True
) -> pa.DataType:
    """One type for a column seen in several files, chosen so that no value changes.

    Equal types stay; integers widen to the wider integer; a float or a small decimal with an
    integer becomes float64 only when the integers are known to be exact in a float64
    (`*_exact`: their magnitude is at most 2**53); anything else becomes text.
    """
    b = value_type(b)
    if a is None or a == b:
        return b
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        if pa.types.is_signed_integer(a) == pa.types.is_signed_integer(b):
            return a if a.bit_width >= b.bit_width else b
        unsigned, signed = (a, b) if pa.types.is_unsigned_integer(a) else (b, a)
        if unsigned.bit_width < 64:
            return pa.int64()
        return pa.string()

    def float_safe(t: pa.DataType, exact: bool) -> bool:
        if pa.types.is_floating(t):
            return True
        if pa.types.is_decimal(t):
            return bool(t.precision <= FLOAT64_EXACT_DIGITS)
        if pa.types.is_integer(t):
            return t.bit_width <= 32 or exact
        return False

    if (
        is_number_type(a)
        and is_number_type(b)
        and float_safe(a, a_exact)
        and float_safe(b, b_exact)
    ):
        return pa.float64()
    return pa.string()


def as_int64_type(t: pa.DataType, fits_int64: bool = False) -> pa.DataType:
    """An integer column's output type: int64 for every width, so a Parquet feed and a CSV feed
    of the same integers give the same type. A uint64 stays uint64 unless its values are known
    to fit an int64 (`fits_int64`); any other type stays as it is."""
    v = value_type(t)
    if pa.types.is_integer(v) and (v != pa.uint64() or fits_int64):
        return pa.int64()
    return t


def with_numbers(
    schema: pa.Schema,
    numbers: frozenset[str] | set[str],
    integers: frozenset[str] | set[str] = frozenset(),
) -> pa.Schema:
    """`schema` with the text columns in `numbers` as numbers: int64 for those in `integers`,
    float64 for the others."""
    return pa.schema(
        [
            f.with_type(pa.int64() if f.name in integers else pa.float64())
            if f.name in numbers
            else f
            for f in schema
        ]
    )
