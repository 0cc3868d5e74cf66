"""Strict JSON for every file and line the product writes: NaN and infinities become null."""
from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every non-finite float (NaN, inf) replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalars
        try:
            return finite(value.item())
        except (TypeError, ValueError):
            return value
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps that never writes NaN/Infinity (parsers other than Python's refuse them)."""
    kwargs.setdefault("default", str)
    return json.dumps(finite(value), allow_nan=False, **kwargs)
