"""Input values are quoted short and escaped: no terminal escape reaches stderr, no cell whole."""

from __future__ import annotations

from batch.core.quoting import EXCERPT_CHARS, escape, excerpt, safe_sentence


def test_control_and_bidi_characters_are_escaped():
    assert escape("a\x1b[31mred\x07") == "a\\x1b[31mred\\x07"
    assert escape("x\u202etxt.exe") == "x\\u202etxt.exe"
    assert escape("two\nlines") == "two\\x0alines"
    assert escape("two\nlines\tok", keep_newlines=True) == "two\nlines\tok"
    assert escape("caf\u00e9 6.5 \u00bd") == "caf\u00e9 6.5 \u00bd"


def test_long_values_are_cut_and_their_length_said():
    big = "9" * 50_000_000
    out = excerpt(big)
    assert out == "9" * EXCERPT_CHARS + "... (50,000,000 characters)"


def test_bytes_and_numbers():
    assert excerpt(b"\xff\x00ab") == "\\xff\\x00ab"
    assert excerpt(6.5) == "6.5"


def test_a_sentence_stays_one_line_and_bounded():
    out = safe_sentence("root:x:0:0:root:/root:/bin/bash\n" * 1000)
    assert "\n" not in out and len(out) < 2_100 and out.endswith("characters)")


def test_a_huge_hostile_cell_is_quoted_as_an_excerpt_in_the_report(models, tmp_path):
    import json

    from tests.helpers import run_cli

    rows = ["rm,medv"] + [f"{6 + i / 10},{20 + i}" for i in range(20)]
    rows.append('"\x1b[31m' + "9" * 100_000 + '",21')
    feed = tmp_path / "feed.csv"
    feed.write_text("\n".join(rows) + "\n")
    res = run_cli(
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        tmp_path / "out",
        "--input",
        feed,
        "--max-reject-fraction",
        1,
    )
    assert res.code == 0, res.stderr[-2000:]
    assert "\x1b" not in res.stderr and "9" * 1000 not in res.stderr
    report = json.loads(next((tmp_path / "out" / "runs").glob("*/report.json")).read_text())
    (reject,) = report["first_rejects"]
    assert reject["raw_value"].startswith("\\x1b[31m999")
    assert reject["raw_value"].endswith("(100,005 characters)")
