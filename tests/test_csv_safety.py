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
