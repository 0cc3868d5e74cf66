"""Column names the job knows: Boston Housing's features and the names the rooms column goes by."""

from __future__ import annotations

BOSTON_COLUMNS = [
    "crim",
    "zn",
    "indus",
    "chas",
    "nox",
    "rm",
    "age",
    "dis",
    "rad",
    "tax",
    "ptratio",
    "b",
    "lstat",
]
ROOMS_NAMES = ("rm", "rooms", "avg_rooms")


def find_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    """The column named `wanted` (or the first candidate) compared case- and space-insensitively."""
    by_key: dict[str, str] = {}
    for col in columns:
        by_key.setdefault(str(col).strip().lower(), col)
    for name in [wanted] if wanted else list(candidates):
        hit = by_key.get(name.strip().lower())
        if hit is not None:
            return hit
    return None
