"""Mergeable run statistics and column typing, without files or a model."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from batch.core.number_text import looks_numeric
from batch.core.stats import FileStats, NumericColumns, RunStats, Sample


def test_sample_keeps_the_k_smallest_keys_whatever_the_grouping():
    rng = np.random.default_rng(7)
    keys = rng.random(5000)
    values = np.arange(5000, dtype="float64")
    whole = Sample(k=100)
    whole.add(keys, v=values)
    merged = Sample(k=100)
    for chunk in np.array_split(np.arange(5000), 17):
        part = Sample(k=100)
        part.add(keys[chunk], v=values[chunk])
        merged.merge(part)
    expected = np.sort(np.argsort(keys)[:100])
    assert np.array_equal(np.sort(whole.cols["v"]).astype(int), expected)
    assert np.array_equal(np.sort(merged.cols["v"]).astype(int), expected)


def test_run_stats_merge_adds_counts_and_keeps_extremes():
    a, b = (
        RunStats(scored=3, pred_min=1.0, pred_max=5.0),
        RunStats(scored=2, pred_min=0.5, pred_max=4.0),
    )
    a.rejects["missing"] = 2
    b.rejects["missing"], b.rejects["non_finite"] = 1, 4
    b.first_rejects = [{"row": i} for i in range(30)]
    a.merge(b)
    assert a.scored == 5 and a.rejected == 7
    assert (a.pred_min, a.pred_max) == (0.5, 5.0)
    assert len(a.first_rejects) == 20  # only the first few are kept for the page


def test_file_stats_add_per_part():
    f = FileStats("a.csv", "00", "csv")
    s = RunStats(scored=4)
    s.rejects["missing"] = 1
    f.add(5, s)
    f.add(5, s)
    assert (f.rows_read, f.rows_scored, f.rows_rejected) == (10, 8, 2)


def test_looks_numeric_keeps_codes_with_leading_zeros_as_text():
    assert looks_numeric(pa.array(["1", " 2.5", "", "-3e2"]))
    assert not looks_numeric(pa.array(["02134", "1"]))
    assert not looks_numeric(pa.array(["1", "x"]))
    assert looks_numeric(pa.array(["0", "0.5"]))


def test_numeric_columns_need_every_part_to_agree():
    def batch(a, b):
        return pa.record_batch({"a": pa.array(a, pa.string()), "b": pa.array(b, pa.string())})

    one, two = NumericColumns({"a", "b"}), NumericColumns({"a", "b"})
    one.observe(batch(["1", "2"], [None, None]))  # b all-null here: no evidence either way
    two.observe(batch(["3", "x"], ["4", ""]))
    assert one.columns == ["a"] and two.columns == ["b"]
    one.merge(two)
    assert one.columns == ["b"]


def reference_looks_numeric(column: pa.Array) -> bool:
    """The rule as first written (three regexes per cell), kept to check the one-pass version."""
    import pyarrow.compute as pc

    from batch.core.features import NUMBER_RE
    from batch.core.number_text import survives_float64

    text = pc.utf8_trim_whitespace(column)
    nonempty = pc.fill_null(pc.not_equal(text, ""), False)
    numeric = pc.fill_null(pc.match_substring_regex(text, NUMBER_RE), False)
    code_like = pc.fill_null(pc.match_substring_regex(text, r"^[+-]?0\d"), False)
    if pc.any(pc.and_(nonempty, pc.or_(pc.invert(numeric), code_like))).as_py():
        return False
    doubtful = pc.and_(
        nonempty,
        pc.or_(
            pc.greater(pc.utf8_length(text), 15),
            pc.fill_null(pc.match_substring_regex(text, r"[eE][+-]?\d{3}"), False),
        ),
    )
    if not pc.any(doubtful).as_py():
        return True
    return survives_float64(pc.filter(text, doubtful))


def test_looks_numeric_agrees_value_by_value_with_the_rule_as_first_written():
    tricky = [
        "1e-400",
        "0e5",
        "0E-999",
        "1e400",
        "-0",
        "00",
        "0.",
        ".",
        "+",
        "e5",
        "1e",
        "-.5",
        "4.9e-324",
        "2.2250738585072014e-308",
        "1.2345e-320",
        "1e-320",
        "123456789012345",
        "1234567890123456",
        "9007199254740993",
        "9007199254740992",
        "0.1234567890123456789",
        " 7 ",
        "\t5",
        "0.30000000000000004",
        "1e22",
        "1e23",
        "+.5E+2",
        "5.e3",
        "0x10",
        "1_000",
        "nan",
        "inf",
        "-Infinity",
        "1,5",
        "١٢",
        "1e+308",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "000.5",
        "-00",
        "0.000",
        "1.0000000000000000",
    ]
    rng = np.random.default_rng(11)
    alphabet = list("0123456789+-.eE 0000111")
    fuzz = ["".join(rng.choice(alphabet, rng.integers(1, 9))) for _ in range(4000)]
    digits = [
        f"{rng.random() * 10.0 ** rng.integers(-320, 300):.{rng.integers(1, 19)}g}"
        for _ in range(1000)
    ]
    for value in tricky + fuzz + digits:
        cell = pa.array([value])
        assert looks_numeric(cell) == reference_looks_numeric(cell), repr(value)


def test_as_int64_and_as_float64_follow_their_regex_rule_without_running_it():
    """The fast paths (Arrow's parser first, then cheap refusals) accept exactly what the
    plain-number patterns accept, value by value, with signs, codes and hex in the mix."""
    import re

    from batch.core.number_text import (
        PLAIN_INTEGER_RE,
        PLAIN_NUMBER_RE,
        as_float64,
        as_int64,
        survives_float64,
    )

    rng = np.random.default_rng(5)
    alphabet = list("0123456789+-.eExX 00")
    values = ["".join(rng.choice(alphabet, rng.integers(0, 7))) for _ in range(6000)]
    values += ["+-5", "-+5", "++5", "--5", "+05", "-0x1F", "0x1F", "0X1f", "007", "-0", "+0"]
    values += ["9223372036854775807", "9223372036854775808", "-9223372036854775808", "+7"]
    for value in values:
        text = value.strip()
        cell = pa.array([value, "12"])
        whole = re.fullmatch(PLAIN_INTEGER_RE, text) is not None or text == ""
        if whole and text:
            whole = -(2**63) <= int(text) < 2**63
        assert (as_int64(cell) is not None) == whole, repr(value)
        plain = re.fullmatch(PLAIN_NUMBER_RE, text) is not None
        expected = text == "" or (plain and survives_float64(pa.array([text])))
        assert (as_float64(cell) is not None) == expected, repr(value)


def test_convert_each_gives_what_one_call_per_column_gives():
    """Converting same-typed columns together (one kernel call for all) changes no result: a
    column with a failing value is None and its neighbours still convert; empty columns, nulls,
    chunk lengths and mixed types come back as they went in."""
    from batch.core.number_text import as_float64, as_int64, convert_each

    good = pa.array(["1.5", "", None, "-0.0", "1e-310"])
    bad = pa.array(["2", "x7", "3"])
    ints = pa.array(["7", "-9223372036854775808", None])
    cases = [
        [good, bad, ints],
        [good, ints],
        [pa.array([], pa.string()), good, pa.array([], pa.string())],
        [good],
        [],
        [good, pa.array(["1", "2"], pa.large_string())],  # two types: one call each
        [bad, bad],
    ]
    for convert in (as_float64, as_int64):
        for columns in cases:
            got = convert_each(convert, columns)
            want = [convert(c) for c in columns]
            assert len(got) == len(columns)
            for g, w, c in zip(got, want, columns):
                assert (g is None) == (w is None), (convert.__name__, c)
                if w is not None:
                    assert len(g) == len(c) and g.equals(w), (convert.__name__, c)


def test_as_float64_and_as_int64_fast_path_on_sliced_chunked_columns_with_nulls():
    """The path that reads each cell's first bytes from Arrow's buffers gives what a cell-by-cell
    conversion gives, whatever the array's offset, nulls (with or without bytes behind them) and
    chunks; one bad cell anywhere makes the whole column None."""
    from batch.core.number_text import as_float64, as_int64

    rng = np.random.default_rng(11)
    good = ["0", "0.5", "-0.25", "+3", "12", "-7", "1e5", "0.000", "4.25", "-0"]
    bad = ["007", "-007", "+-1", "0x1F", "-0x1", "--2", "00", "+00.5", "nan", "1e400"]
    whole = {"0", "+3", "12", "-7", "-0"}
    for trial in range(300):
        n = int(rng.integers(1, 40))
        cells = [None if rng.random() < 0.2 else str(rng.choice(good)) for _ in range(n)]
        if trial % 2:
            cells[int(rng.integers(0, n))] = str(rng.choice(bad))
        pad = int(rng.integers(0, 3))
        column = pa.array(["9"] * pad + cells + ["9"] * pad).slice(pad, n)
        if trial % 3 == 0:  # nulls with bytes behind them, as some writers leave them
            raw = pa.array([c if c is not None else "x7" for c in cells])
            column = pa.Array.from_buffers(
                pa.string(), n, [column.is_valid().buffers()[1], *raw.buffers()[1:]]
            )
        if trial % 5 == 0:
            cut = int(rng.integers(0, n + 1))
            column = pa.chunked_array([column.slice(0, cut), column.slice(cut)], pa.string())
        for convert, ok in ((as_float64, set(good)), (as_int64, whole)):
            expect_ok = all(c is None or c in ok for c in cells)
            got = convert(column)
            assert (got is not None) == expect_ok, (convert.__name__, cells)
            if got is not None:
                want = [None if c is None else float(c) for c in cells]
                assert pa.chunked_array([got]).to_pylist() == want, cells


def test_the_shortcuts_of_as_float64_and_as_int64_agree_with_the_general_path():
    """Random cells (spaces of every kind, signs, codes, empty text, nulls): a column converted
    as it is equals the same cells beside ' 1', a cell only the general path (trim, then parse)
    takes, whichever shortcut the first took (parsed at once, or refused at once)."""
    from batch.core.number_text import as_float64, as_int64

    rng = np.random.default_rng(23)
    alphabet = list("0123456789+-.eE x") + ["\u00a0", "\u3000", "\t", "\x1c", "\x85", "é", ""]
    for _ in range(4000):
        n = int(rng.integers(1, 5))
        cells = [
            None if rng.random() < 0.1 else "".join(rng.choice(alphabet, rng.integers(0, 5)))
            for _ in range(n)
        ]
        for convert in (as_float64, as_int64):
            got = convert(pa.array(cells, pa.string()))
            general = convert(pa.array([*cells, " 1"], pa.string()))
            assert (got is None) == (general is None), (convert.__name__, cells)
            if got is not None:
                assert got.equals(general.slice(0, n)), (convert.__name__, cells)
