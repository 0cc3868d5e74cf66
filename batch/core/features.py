"""The rooms feature, cell by cell: find its column, parse raw values, validate; the reject reasons.

Pure: Arrow arrays in, NumPy arrays out. A new reject reason is added here, with its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch.core.columns import is_number_type, to_text
from batch.core.names import ROOMS_NAMES, find_column

# Reject reasons (rejects.csv's `reason`), in code order, and what each means for a reader.
MEANINGS = {
    "missing": "the rooms cell is empty",
    "not_a_number": "the rooms cell is text that is not a number",
    "non_finite": "NaN or infinity",
    "out_of_domain": "a number outside the plausible range of rooms",
}
REASONS = tuple(MEANINGS)
MISSING, NOT_A_NUMBER, NON_FINITE, OUT_OF_DOMAIN = range(1, 5)  # 0 = valid
# A rejected cell longer than this is kept in rejects.csv as its first characters and its length.
RAW_VALUE_CHARS = 1_000
# Rooms beyond float32 (the model's precision) cannot be scored whatever the domain says.
FLOAT32_MAX = float(np.finfo("float32").max)

# A plain decimal number (what a spreadsheet would also read as a number).
NUMBER_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
NAN_RE = r"^\s*[+-]?nan\s*$"
INF_RE = r"^\s*[+-]?(inf|infinity)\s*$"
DECIMAL_COMMA_RE = r"^\s*[+-]?\d+,\d+\s*$"


def rooms_column(columns: list[str], wanted: str | None) -> str | None:
    return find_column(columns, wanted, ROOMS_NAMES)


@dataclass
class Validated:
    """Per row: the parsed value (float64, NaN where rejected) and a reason code (0 = valid)."""

    values: np.ndarray
    codes: np.ndarray
    parsed: np.ndarray | None = None  # every parsed number, rejected ones included (NaN: none)

    @property
    def valid(self) -> np.ndarray:
        ok: np.ndarray = self.codes == 0
        return ok


def parse_numbers(raw: pa.Array, decimal_comma: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, reason codes) from an Arrow array of numbers or text.

    Codes: MISSING for null/empty, NOT_A_NUMBER for text that is not a number, OUT_OF_DOMAIN for
    a number too large for a float64 (1e400). NaN and inf are returned as values (see validate).
    """
    n = len(raw)
    codes = np.zeros(n, dtype="int8")
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    if pa.types.is_null(raw.type):
        codes[:] = MISSING
        return np.full(n, np.nan), codes
    if is_number_type(raw.type):
        # unsafe: a huge integer may round (it is far out of the domain either way)
        values = pc.cast(raw, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        values = np.array(values, dtype="float64", copy=True)
        missing = raw.is_null().to_numpy(zero_copy_only=False)
        codes[missing] = MISSING
        values[missing] = np.nan
        return values, codes
    if not pa.types.is_string(raw.type):
        raw = to_text(raw)
    plain = _all_finite_numbers(raw)
    if plain is not None:
        codes[raw.is_null().to_numpy(zero_copy_only=False)] = MISSING
        return plain, codes
    text = pc.utf8_trim_whitespace(raw)
    missing = pc.fill_null(pc.equal(text, ""), True)
    if decimal_comma:
        comma = pc.fill_null(pc.match_substring_regex(text, DECIMAL_COMMA_RE), False)
        text = pc.if_else(comma, pc.replace_substring(text, ",", "."), text)
    numeric = pc.fill_null(pc.match_substring_regex(text, NUMBER_RE), False)
    special = pc.fill_null(
        pc.or_(
            pc.match_substring_regex(text, NAN_RE, ignore_case=True),
            pc.match_substring_regex(text, INF_RE, ignore_case=True),
        ),
        False,
    )
    parseable = pc.or_(numeric, special)
    # Only parseable cells are cast, so one bad cell cannot fail the batch.
    safe = pc.if_else(parseable, text, pa.scalar(None, pa.string()))
    values = np.array(
        pc.cast(safe, pa.float64()).to_numpy(zero_copy_only=False), dtype="float64", copy=True
    )
    missing_np = missing.to_numpy(zero_copy_only=False)
    parseable_np = parseable.to_numpy(zero_copy_only=False)
    numeric_np = numeric.to_numpy(zero_copy_only=False)
    codes[~parseable_np] = NOT_A_NUMBER
    codes[numeric_np & np.isinf(values)] = OUT_OF_DOMAIN  # digits, but beyond float64
    codes[missing_np] = MISSING
    values[codes != 0] = np.nan
    return values, codes


def _all_finite_numbers(text: pa.Array) -> np.ndarray | None:
    """The values (NaN for null) when Arrow's parser reads every cell of the text as a finite
    number, else None: the common case, told without the patterns' regexes.

    Arrow's parser refuses spaces, empty text and anything that is not a decimal number; what it
    reads as finite matches NUMBER_RE (tests/test_features.py holds the two to each other), and
    NaN or infinity (NAN_RE, INF_RE, beyond float64) leaves the general path to say which.
    """
    try:
        values = pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not pc.all(pc.is_finite(values), min_count=0).as_py():
        return None
    return np.array(values.to_numpy(zero_copy_only=False), dtype="float64", copy=True)


def decimal_points(column: pa.Array) -> pa.Array:
    """Text cells that are numbers with a decimal comma ('6,5') written with a point ('6.5')."""
    comma = pc.fill_null(pc.match_substring_regex(column, DECIMAL_COMMA_RE), False)
    if not pc.any(comma).as_py():
        return column
    return pc.if_else(comma, pc.replace_substring(column, ",", "."), column)


def validate(
    raw: pa.Array, domain_min: float, domain_max: float, decimal_comma: bool = False
) -> Validated:
    """Reason per row: missing, not_a_number, non_finite (NaN, inf), out_of_domain (outside).

    out_of_domain: not min < x <= max.
    """
    values, codes = parse_numbers(raw, decimal_comma)
    ok = codes == 0
    with np.errstate(invalid="ignore"):
        non_finite = ok & ~np.isfinite(values)
        codes[non_finite] = NON_FINITE
        ok = codes == 0
        out = ok & ~(
            (values > domain_min) & (values <= domain_max) & (np.abs(values) <= FLOAT32_MAX)
        )
    codes[out] = OUT_OF_DOMAIN
    parsed = values
    values = values.copy()
    values[codes != 0] = np.nan
    return Validated(values, codes, parsed)


def raw_text(raw: pa.Array) -> pa.Array:
    """The raw cell as text for rejects.csv ('' for a null); a cell longer than RAW_VALUE_CHARS
    keeps its first RAW_VALUE_CHARS characters and says its length ("... (N characters)")."""
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    if not pa.types.is_string(raw.type):
        raw = to_text(raw)
    raw = pc.fill_null(raw, "")
    lengths = pc.utf8_length(raw)
    long = pc.greater(lengths, RAW_VALUE_CHARS)
    if not pc.any(long).as_py():
        return raw
    heads = pc.utf8_slice_codeunits(raw.filter(long), 0, RAW_VALUE_CHARS).to_pylist()
    told = [f"{h}... ({n:,} characters)" for h, n in zip(heads, lengths.filter(long).to_pylist())]
    return pc.replace_with_mask(raw, long, pa.array(told, pa.string()))
