"""Quoting input values in sentences, logs and pages: short, escaped, never raw bytes.

An input cell can hold anything: terminal escape sequences, a 50 MB string, the first line of a
file a link pointed at. Whatever quotes one (an error sentence, a log line, runs.jsonl, a page)
quotes `excerpt(value)`: at most EXCERPT_CHARS characters, control and bidirectional-override
characters shown as escapes, and the full length said when it was cut.
"""

from __future__ import annotations

import re

EXCERPT_CHARS = 60
# The tail of a value cut before (features.raw_text): "... (52,428,800 characters)".
_CUT = re.compile(r"\.\.\. \((\d{1,3}(?:,\d{3})*) characters\)\Z")
SENTENCE_CHARS = 2_000

# C0 and C1 controls, DEL, and the characters that reorder or hide text on a terminal or page
# (bidirectional overrides and isolates, zero-width and line/paragraph separators).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_UNSAFE_WITH_NEWLINES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, keep_newlines: bool = False) -> str:
    """`text` with every control character written as an escape (\\x1b, \\u202e)."""
    pattern = _UNSAFE if keep_newlines else _UNSAFE_WITH_NEWLINES
    return pattern.sub(_escape, text)


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped excerpt of an input value, for quoting it anywhere."""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", "backslashreplace")
    else:
        text = str(value)
    if len(text) <= limit:
        return escape(text)
    cut = _CUT.search(text)  # a value already cut (rejects.csv's raw_value) keeps its length
    told = cut.group(1) if cut else f"{len(text):,}"
    return f"{escape(text[:limit])}... ({told} characters)"


def safe_sentence(text: str, limit: int = SENTENCE_CHARS) -> str:
    """An error sentence fit for a terminal and a log: escaped, one line, bounded."""
    text = escape(text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return text
