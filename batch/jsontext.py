"""Strict JSON for every file and line the product writes: NaN and infinities become null."""
from __future__ import annotations

import json
import math
from typing import Any


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
