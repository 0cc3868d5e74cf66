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
