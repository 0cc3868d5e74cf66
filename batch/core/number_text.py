"""Text cells as numbers: which text columns hold plain numbers, and those numbers as float64 or
int64 exactly as written (pure; Arrow arrays in and out).

A CSV file's columns arrive as text; the plan decides from each file's first block which hold
numbers (stats.NumericColumns), and predictions.parquet stores those as float64 or int64 when
no value changes. The rules are regexes (PLAIN_NUMBER_RE, PLAIN_INTEGER_RE); the code applies
them without running one over every cell, and tests/test_stats.py holds the two to each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A plain number (features.NUMBER_RE, on trimmed text) that is not a code: no leading zero
# before another digit ('02134' stays text, '0.5' and '0' are numbers). The rule as a regex;
# as_float64 applies it without one (a regex over every cell was the slowest step of a CSV run).
PLAIN_NUMBER_RE = r"^[+-]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
FLOAT64_SAFE = (1e-300, 1e300)  # normal magnitudes: 15 significant digits always survive here


def looks_numeric(column: pa.Array) -> bool:
    """True when every non-empty cell is a plain number that a float64 keeps exactly as written.

    Codes stay text: a leading zero ('02134'). So does any value a float64 would change: more
    significant digits than it keeps (a 17-digit ID, '0.1234567890123456789'), or beyond its
    range ('1e400', '1e-400'). A float64's own shortest text (as pandas writes it, up to 17
    digits) is kept exactly, so such columns do become numbers.
    """
    return as_float64(column) is not None


def as_float64(column: pa.Array) -> pa.Array | None:
    """A text column as float64 when every non-empty cell is a plain number that a float64
    keeps exactly (see looks_numeric), else None: the column must stay text.

    Trimmed, '' and null become null, every other cell the float64 that holds it exactly.
    Runs on every batch of the columns the plan decided are numbers, so it is vectorised.
    """
    text, values = _parsed(column, pa.float64())
    if values is None:
        return None
    # At most 15 characters hold at most 15 digits, which a float64 keeps at normal magnitudes;
    # longer values, and huge or tiny ones ('1e400' reads as inf, '1e-400' as 0), need the
    # exact check. A zero written without an exponent ('0', '-0.00') is exact.
    size = pc.abs(values)
    # (Text Arrow read as a number is ASCII: its length in bytes is its length in characters.)
    doubtful = pc.or_kleene(
        pc.greater(pc.binary_length(text), 15), pc.greater(size, FLOAT64_SAFE[1])
    )
    doubtful = pc.fill_null(doubtful, False)
    if pc.any(doubtful).as_py() and not survives_float64(pc.filter(text, doubtful)):
        return None
    tiny = pc.fill_null(pc.less(size, FLOAT64_SAFE[0]), False)
    if pc.any(tiny).as_py():  # zeros, mostly: only those written with an exponent are doubtful
        small = pc.filter(text, tiny)
        # (Two plain searches: ignore_case runs a regex, several times slower.)
        small = pc.filter(
            small, pc.or_(pc.match_substring(small, "e"), pc.match_substring(small, "E"))
        )
        if len(small) and not survives_float64(small):
            return None
    return values


def convert_each(
    convert: Callable[[Any], Any], columns: Sequence[pa.Array]
) -> list[pa.Array | None]:
    """`convert` (as_float64 or as_int64) of each column: what one call per column gives.

    The columns go through `convert` together first, as one chunked array: its dozen or so
    kernels then cost one call each for all of them rather than one per column (with 65,536-row
    batches the calls, not the data, were most of its time). When a value fails anywhere, each
    column is converted on its own, so only the columns that hold such a value are None.
    """
    if len(columns) > 1 and len({c.type for c in columns}) == 1:
        together = convert(pa.chunked_array(columns, type=columns[0].type))
        if together is not None:
            return _split(together, [len(c) for c in columns])
    return [convert(c) for c in columns]


def _split(values: pa.Array | pa.ChunkedArray, lengths: list[int]) -> list[pa.Array | None]:
    """`values` cut back into arrays of `lengths` (a kernel keeps the chunks; else slices)."""
    if isinstance(values, pa.ChunkedArray):
        if [len(c) for c in values.chunks] == lengths:
            return list(values.chunks)
        values = values.combine_chunks()
    out: list[pa.Array | None] = []
    start = 0
    for n in lengths:
        out.append(values.slice(start, n))
        start += n
    return out


def survives_float64(text: pa.Array) -> bool:
    """True when every number in `text` has the same digits after a round trip through float64."""
    values = pc.cast(text, pa.float64())
    if not pc.all(pc.is_finite(values)).as_py():
        return False
    back = pc.cast(values, pa.string())  # Arrow writes the shortest text that reads back exactly
    return bool(pc.all(pc.equal(_digits(text), _digits(back))).as_py())


def _digits(text: pa.Array) -> pa.Array:
    """The significant digits of number texts: no sign, point, exponent, or outer zeros."""
    for pattern in (r"[eE][+-]?\d+$", r"[+\-.]", r"^0+", r"0+$"):
        text = pc.replace_substring_regex(text, pattern, "")
    return text


# A plain whole number: no leading zero ('02134' stays text), no point, no exponent (the rule;
# as_int64 applies it without a regex).
PLAIN_INTEGER_RE = r"^[+-]?(0|[1-9]\d*)$"


def as_int64(column: pa.Array) -> pa.Array | None:
    """A text column as int64 when every non-empty cell is a plain whole number ('12', ' 7',
    '+3', '-4') that an int64 holds, else None ('7.0', '1e5', '02134' and numbers beyond an
    int64 are not). Trimmed, '' and null become null. Vectorised: it runs on every batch of the
    columns the plan decided are integers."""
    return _parsed(column, pa.int64())[1]


def _parsed(column: Any, to: pa.DataType) -> tuple[Any, pa.Array | None]:
    """(the text as _plain reads it, _plain's result) for a column as it came.

    Most number columns have no spaces around a value and no empty cell: then Arrow's parser
    takes the column as it is (it refuses spaces and empty text), and the trimming, the empty
    check and the pattern's sign and code checks (done on each cell's first bytes) cost far less
    than the general path, which is taken for everything else (and for what they refuse).
    """
    if pa.types.is_string(column.type):
        try:
            values = pc.cast(column, to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if _as_trimmed(column):  # the general path would parse the same text: refused
                return column, None
        else:
            if not _refused(column, values):
                return column, values
            # (Refused: the general path says why, null cells' bytes never count there.)
    text = pc.utf8_trim_whitespace(column)
    nonempty = pc.fill_null(pc.not_equal(text, ""), False)
    if not pc.all(nonempty, min_count=0).as_py():
        text = pc.if_else(nonempty, text, pa.scalar(None, pa.string()))
    return text, _plain(text, to)


def _table(chars: bytes) -> np.ndarray:
    """A lookup table: True at each byte of `chars`."""
    table = np.zeros(256, bool)
    table[np.frombuffer(chars, np.uint8)] = True
    return table


_SIGN = _table(b"+-")
_LEAD = _table(b"+-0")  # first bytes that need a closer look
_CODE_SECOND = _table(b"0123456789xX")  # after a leading zero: a code ('007') or hex ('0x1F')


# Bytes that may begin or end a cell the general path changes before parsing: ASCII spaces and
# control bytes, any byte of a multi-byte character (Unicode spaces are trimmed too), and '+'
# (which it takes off, since some Arrow versions' parsers refuse it).
_UNTRIMMED = _table(bytes(range(0x21)) + bytes(range(0x7F, 0x100)) + b"+")


def _as_trimmed(text: Any) -> bool:
    """Whether the general path would hand the text to Arrow's parser unchanged: no cell empty,
    none starting or ending with a byte of _UNTRIMMED (nulls aside)."""
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    for chunk in chunks:
        n = len(chunk)
        if n == 0:
            continue
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, np.int32, n + 1, chunk.offset * 4)
        start, end = offsets[:-1], offsets[1:]
        if chunk.null_count:
            valid = np.asarray(chunk.is_valid().to_numpy(zero_copy_only=False), bool)
            start, end = start[valid], end[valid]
        if not len(start):
            continue
        if data_buf is None or (end <= start).any():
            return False
        data = np.frombuffer(data_buf, np.uint8)
        if _UNTRIMMED[data[start]].any() or _UNTRIMMED[data[end - 1]].any():
            return False
    return True


def _refused(text: Any, values: Any) -> bool:
    """Whether text Arrow's parser read as `values` breaks the plain-number rule (see _plain):
    not finite, two signs, or a leading zero before a digit or an x after the sign if any."""
    if pa.types.is_floating(values.type) and not pc.all(pc.is_finite(values), min_count=0).as_py():
        return True
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    return any(_refused_chunk(c) for c in chunks)


def _refused_chunk(text: pa.Array) -> bool:
    """_refused's byte checks on one string array whose cells are non-empty or null."""
    n = len(text)
    _, offsets_buf, data_buf = text.buffers()
    if n == 0 or data_buf is None or data_buf.size == 0:
        return False
    offsets = np.frombuffer(offsets_buf, np.int32, n + 1, text.offset * 4)
    data = np.frombuffer(data_buf, np.uint8)
    start, end = offsets[:-1], offsets[1:]
    if text.null_count:  # null cells hold no bytes of their own
        start, end = start[start < end], end[start < end]
    first = data[start]
    lead = _LEAD[first]
    if not lead.any():
        return False
    where, ends, first = start[lead], end[lead], first[lead]
    last = len(data) - 1

    def at(i: int) -> np.ndarray:
        """The byte i places after each candidate's first one (0 past its end)."""
        return np.where(where + i < ends, data[np.minimum(where + i, last)], 0)

    second = at(1)
    signed = _SIGN[first]
    if not signed.any():  # each starts with a zero
        return bool(_CODE_SECOND[second].any())
    if (signed & _SIGN[second]).any():
        return True
    digit0 = np.where(signed, second, first)
    digit1 = np.where(signed, at(2), second)
    return bool(((digit0 == ord("0")) & _CODE_SECOND[digit1]).any())


# The first characters of a number with a leading zero before another digit (a code: '02134').
# hex ('0x1F', which Arrow's integer parser reads).
_CODES = pa.array([f"0{c}" for c in "0123456789xX"])


def _plain(text: pa.Array, to: pa.DataType) -> pa.Array | None:
    """Trimmed text (null for empty) as `to` when every value is a plain number (the rule of
    PLAIN_NUMBER_RE, PLAIN_INTEGER_RE: tests/test_stats.py holds them to it), else None.
    Arrow's parser reads every plain number and rejects most other text, so it goes first;
    what it reads but the pattern does not take is then refused cheaply: not finite
    ('nan', 'inf', '1e400' for a float), a leading zero ('007') or hex ('0x1F', an integer).
    After a sign, the same holds for what follows it, and a second sign is refused ('+-5')."""
    signed = pc.fill_null(pc.or_(pc.starts_with(text, "+"), pc.starts_with(text, "-")), False)
    if pc.any(signed).as_py():
        rest = pc.utf8_slice_codeunits(pc.filter(text, signed), 1)
        twice = pc.or_(pc.starts_with(rest, "+"), pc.starts_with(rest, "-"))
        if pc.any(twice).as_py() or _codes(rest):
            return None
        text = pc.utf8_ltrim(text, "+")  # one at most (just checked): Arrow's parser takes none
    try:
        values = pc.cast(text, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # not a number, or beyond an int64
        return None
    if pa.types.is_floating(to) and not pc.all(pc.is_finite(values), min_count=0).as_py():
        return None
    return None if _codes(text) else values


def _codes(text: pa.Array) -> bool:
    """Whether any text starts with a zero and another digit, or 0x ('0', '0.5' do not)."""
    zero = pc.fill_null(pc.starts_with(text, "0"), False)
    if not pc.any(zero).as_py():
        return False
    first = pc.utf8_slice_codeunits(pc.filter(text, zero), 0, 2)
    return bool(pc.any(pc.is_in(first, value_set=_CODES)).as_py())


def has_point(text: pa.Array) -> bool:
    """Whether a cell holds a '.' (no plain whole number does)."""
    return bool(pc.any(pc.match_substring(text, ".")).as_py())
