"""The validation rules and the spreadsheet defusing, on Arrow arrays (no files)."""

from __future__ import annotations

import decimal

import numpy as np
import pyarrow as pa
import pytest

from batch.core import features

CODES = {"ok": 0, "missing": 1, "not_a_number": 2, "non_finite": 3, "out_of_domain": 4}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("6.5", "ok"),
        (" 7 ", "ok"),
        ("+5.", "ok"),
        ("1e1", "ok"),
        ("20", "ok"),
        ("", "missing"),
        ("   ", "missing"),
        (None, "missing"),
        ("abc", "not_a_number"),
        ("6.5 rooms", "not_a_number"),
        ("0x10", "not_a_number"),
        ("nan", "non_finite"),
        ("NaN", "non_finite"),
        ("inf", "non_finite"),
        ("-Infinity", "non_finite"),
        ("0", "out_of_domain"),
        ("-1", "out_of_domain"),
        ("20.0001", "out_of_domain"),
    ],
)
def test_text_values(raw, expected):
    got = features.validate(pa.array([raw], pa.string()), 0.0, 20.0)
    assert got.codes[0] == CODES[expected]
    if expected == "ok":
        assert got.values[0] == pytest.approx(float(raw))
    else:
        assert np.isnan(got.values[0])


@pytest.mark.parametrize(
    "array",
    [
        pa.array([6.5, None, float("nan"), float("inf"), 25.0]),
        pa.array([6.5, None, float("nan"), float("-inf"), 25.0], pa.float32()),
    ],
)
def test_float_values(array):
    assert features.validate(array, 0, 20).codes.tolist() == [0, 1, 3, 3, 4]


def test_int_and_decimal_values():
    assert features.validate(pa.array([6, None, 0, 21]), 0, 20).codes.tolist() == [0, 1, 4, 4]
    dec = pa.array([decimal.Decimal("6.142"), None], pa.decimal128(6, 3))
    got = features.validate(dec, 0, 20)
    assert got.codes.tolist() == [0, 1] and got.values[0] == pytest.approx(6.142)


def test_decimal_comma_only_when_asked():
    arr = pa.array(["6,5", "6.5"])
    assert features.validate(arr, 0, 20).codes.tolist() == [2, 0]
    got = features.validate(arr, 0, 20, decimal_comma=True)
    assert got.codes.tolist() == [0, 0] and got.values.tolist() == [6.5, 6.5]


def test_domain_is_a_setting():
    got = features.validate(pa.array([3.0, 4.0, 9.0, 9.5]), 3.0, 9.0)
    assert got.codes.tolist() == [4, 0, 0, 4]


def test_rooms_column_by_name_any_case():
    assert features.rooms_column(["a", " Rm "], None) == " Rm "
    assert features.rooms_column(["ROOMS"], None) == "ROOMS"
    assert features.rooms_column(["Avg_Rooms", "x"], None) == "Avg_Rooms"
    assert features.rooms_column(["size"], "SIZE") == "size"
    assert features.rooms_column(["size"], None) is None


def test_parse_numbers_takes_the_parsers_shortcut_only_where_the_patterns_agree():
    """Where Arrow's parser reads every cell as a finite number, parse_numbers skips the regexes;
    value by value (fuzzed and tricky texts), that gives the values and codes the patterns give.
    A neighbour with a space (' 1') makes the parser refuse the batch, so it runs the patterns."""
    rng = np.random.default_rng(17)
    alphabet = list("0123456789+-.eExXpPnaifIN_ ,")
    values = ["".join(rng.choice(alphabet, rng.integers(1, 8))) for _ in range(6000)]
    values += ["1.", ".5", "+.5", "-.5e3", "1e-400", "1e400", "1.e5", "0x1p3", "1_000", "nan"]
    values += ["+inf", "-Infinity", "١", "٣.٥", "1e", "e1", ".", "+", "-", "5e+", "9" * 400]
    shortcuts = 0
    for value in values:
        fast = features.parse_numbers(pa.array([value, "1"]))
        slow = features.parse_numbers(pa.array([value, " 1"]))
        np.testing.assert_array_equal(fast[0], slow[0], err_msg=repr(value))
        np.testing.assert_array_equal(fast[1], slow[1], err_msg=repr(value))
        shortcuts += features._all_finite_numbers(pa.array([value, "1"])) is not None
    assert shortcuts > 100  # the shortcut was taken, not only refused
