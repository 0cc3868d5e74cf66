"""Strict JSON for every file and line the product writes: NaN and infinities become null."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def finite(value: Any, digits: int | None = None) -> Any:
    """`value` with every non-finite float (NaN, inf) replaced by None, at any depth; with
    `digits`, every float rounded to that many significant digits (no float32 noise such as
    3.559999942779541)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{digits}g}") if digits else value
    if isinstance(value, dict):
        return {k: finite(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v, digits) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalars
        try:
            return finite(value.item(), digits)
        except (TypeError, ValueError):
            return value
    return value


def dumps(value: Any, digits: int | None = None, **kwargs: Any) -> str:
    """json.dumps that never writes NaN/Infinity (parsers other than Python's refuse them)."""
    kwargs.setdefault("default", str)
    return json.dumps(finite(value, digits), allow_nan=False, **kwargs)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, in order; a missing file is empty, and a damaged
    line (a write torn by a crash, an edit) is skipped with a warning naming it. Any other read
    error is raised: an unreadable log must never pass for an empty one (a prune would then
    rewrite it empty)."""
    location = Path(path) if isinstance(path, str) else path  # also an object-store path
    try:
        text = location.read_text()
    except FileNotFoundError:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            log.warning("skipping line %d of %s: not JSON (an interrupted write?)", number, path)
            continue
        if isinstance(value, dict):
            entries.append(value)
    return entries
