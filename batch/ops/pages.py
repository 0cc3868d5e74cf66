"""The HTML pages' Jinja2 environment: templates in batch/ops/templates, autoescaped.

report.html and index.html both extend base.html (the shared head, stylesheet and heading) and
use macros.html (tables, embedded plots). Every value is escaped by Jinja2's autoescape; the
filters below only format. Pages are self-contained: plots are embedded as data: URIs.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import jinja2

from batch.core.quoting import excerpt
from batch.core.redact import redact

# The longest text a page cell shows whole (a path, an error sentence); longer is cut.
CELL_CHARS = 500


def num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: thousands separated, floats to `digits` places, None as –."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def thousands(value: Any) -> str:
    """A count or a duration as it is, thousands separated (None as –)."""
    return "–" if value is None else f"{value:,}"


def pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage (None as –)."""
    return "–" if value is None else f"{value:.{digits}%}"


def text(value: Any) -> str:
    """Any value as text for a cell (None as empty): control characters escaped, a huge value
    cut to an excerpt with its length."""
    return "" if value is None else excerpt(value, limit=CELL_CHARS)


def data_uri(image: bytes) -> str:
    """PNG or SVG bytes as a data: URI, so the page needs no other file."""
    kind = "svg+xml" if image.startswith(b"<svg") else "png"
    return f"data:image/{kind};base64," + base64.b64encode(image).decode()


def _redacted(value: object) -> object:
    """Every value a page shows passes the one redaction rule (markup built by our own filters
    is left as it is: it holds numbers and data URIs, never a location)."""
    import markupsafe

    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return redact(value)
    return value


@functools.cache
def environment() -> jinja2.Environment:
    """The one environment of the pages (templates are loaded once, then cached)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("batch.ops", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=_redacted,
    )
    env.filters.update(num=num, thousands=thousands, pct=pct, text=text, data_uri=data_uri)
    return env


def render(template: str, **context: Any) -> str:
    """The page `template` (a file in batch/ops/templates) filled with `context`."""
    return environment().get_template(template).render(**context)
