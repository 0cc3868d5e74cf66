"""CSV safety: formula defusing of cells and headers."""

from __future__ import annotations

import pyarrow as pa

from batch.io import csv_safety


def test_defuse_formulas_but_not_numbers():
    arr = pa.array(["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "-3.5", "+4", "ok", None, "a=b"])
    assert csv_safety.defuse(arr).to_pylist() == [
        "'=1+1",
        "'+cmd",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "-3.5",
        "+4",
        "ok",
        None,
        "a=b",
    ]
    assert csv_safety.defuse(pa.array([1.0, -2.0])).to_pylist() == [1.0, -2.0]
    assert csv_safety.defuse_text("=cmd") == "'=cmd" and csv_safety.defuse_text("-1") == "-1"
    assert csv_safety.csv_header_schema(pa.schema([("@a", pa.int8())])).names == ["'@a"]


def test_defuse_changes_exactly_the_cells_the_formula_rule_names():
    """The first-byte shortcut never skips a cell the rule (FORMULA_RE and not a plain number)
    defuses: value by value against the rule itself, in both string types."""
    import re

    import numpy as np
    import pyarrow as pa

    from batch.core.features import NUMBER_RE
    from batch.io.csv_safety import FORMULA_RE, defuse

    rng = np.random.default_rng(9)
    alphabet = list("=+-@ \t\r\n\x0b\f0123456789.eaé€")
    values = ["".join(rng.choice(alphabet, rng.integers(0, 5))) for _ in range(5000)]
    for kind in (pa.string(), pa.large_string()):
        for value in values:
            # Arrow's regex engine (RE2) reads \s without the vertical tab Python's re has.
            number = re.match(NUMBER_RE.replace(r"\s", r"[ \t\n\r\f]"), value)
            risky = re.match(FORMULA_RE, value) and not number
            out = defuse(pa.array(["plain", value], kind)).to_pylist()
            assert out == ["plain", "'" + value if risky else value], repr(value)


def test_csv_safe_defuses_a_formula_in_any_one_of_many_text_columns():
    """The first-byte check runs over every text column at once; a trigger in one column (any
    position, first or last) is still defused there and nowhere else."""
    names = [f"c{i}" for i in range(6)]
    for where in range(6):
        for row in (0, 2):
            cols = [pa.array(["a", "b", "c"]) for _ in names]
            values = ["a", "b", "c"]
            values[row] = "=HYPERLINK(1)"
            cols[where] = pa.array(values)
            out = csv_safety.csv_safe(pa.record_batch(cols, names=names))
            for i, name in enumerate(names):
                expected = ["a", "b", "c"]
                if i == where:
                    expected[row] = "'=HYPERLINK(1)"
                assert out.column(name).to_pylist() == expected, (where, row, name)
    clean = pa.record_batch([pa.array(["-1", "x"]), pa.array(["ok", None])], names=["a", "b"])
    assert csv_safety.csv_safe(clean).to_pylist() == clean.to_pylist()
