"""The history page's trend charts as SVG, drawn directly: one value per run over time.

Every run rebuilds index.html, and drawing its three to five trends with matplotlib took about
half a second of every run (the figures, their layout and PNG encoding), more than the scoring
of a small input. A trend is a line of points, a few red markers, a dashed step line and two
labelled axes: here it is SVG text built in a few milliseconds, deterministic (the same runs give
the same bytes) and sharp at any zoom. The page embeds it as a data: URI like the report's PNGs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 700, 360
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 34, 52  # the plot area's margins, in pixels
BLUE, RED, GREY = "#1f77b4", "#d62728", "#b0b0b0"
X_TICKS = 5


def nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering low..high."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high - low <= 1e-9 * max(abs(low), abs(high)):  # flat, or apart by float noise only
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, most - 1)
    if not (math.isfinite(raw) and raw > 0):  # a span beyond float64 either way: the ends only
        return [low, high]
    power = 10.0 ** math.floor(math.log10(raw))
    step = next((m * power for m in (1, 2, 5) if m * power >= raw), 10 * power)
    if not (math.isfinite(step) and step > 0):
        return [low, high]
    first = math.floor(low / step) * step
    count = int(math.ceil(high / step - first / step + 1e-9)) + 1
    # Twelve significant digits drop the float noise of first + i * step at any magnitude.
    return [float(f"{first + i * step:.12g}") for i in range(count)]


def _number(value: float, step: float) -> str:
    """A tick label with as many decimals as the step between ticks needs (three significant
    digits for steps too small or too large to write out)."""
    if not (math.isfinite(step) and 1e-6 <= step < 1e15):
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:,.{decimals}f}"


def _time_label(t: dt.datetime, span: dt.timedelta) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC)  # the axis says UTC
    if span <= dt.timedelta(days=2):
        return t.strftime("%m-%d %H:%M")
    if span <= dt.timedelta(days=400):
        return t.strftime("%Y-%m-%d")
    return t.strftime("%Y-%m")


class _Frame:
    """The plot area: data coordinates to pixels."""

    def __init__(self, t0: dt.datetime, t1: dt.datetime, y_ticks: list[float]) -> None:
        self.t0, self.span = t0, max((t1 - t0).total_seconds(), 1.0)
        self.y0, self.y1 = y_ticks[0], y_ticks[-1]
        self.width, self.height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(self, t: dt.datetime) -> float:
        return round(LEFT + (t - self.t0).total_seconds() / self.span * self.width, 1)

    def y(self, v: float) -> float:
        share = (v / 2 - self.y0 / 2) / ((self.y1 / 2 - self.y0 / 2) or 1.0)  # halves: no overflow
        return round(TOP + (1 - share) * self.height, 1)


def _text(x: float, y: float, words: str, anchor: str = "middle", **extra: str) -> str:
    attrs = "".join(f" {k.replace('_', '-')}='{v}'" for k, v in extra.items())
    return f"<text x='{x}' y='{y}' text-anchor='{anchor}' fill='#222'{attrs}>{escape(words)}</text>"


def _axes(frame: _Frame, y_ticks: list[float], t0: dt.datetime, t1: dt.datetime) -> list[str]:
    """Grid lines, tick labels and the plot area's border."""
    out = []
    step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    for v in y_ticks:
        y = frame.y(v)
        out.append(f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y}' y2='{y}' stroke='{GREY}'/>")
        out.append(_text(LEFT - 6, y + 4, _number(v, step), anchor="end"))
    span = t1 - t0
    for i in range(X_TICKS):
        t = t0 + span * i / (X_TICKS - 1)
        x = frame.x(t)
        out.append(f"<line x1='{x}' x2='{x}' y1='{TOP}' y2='{HEIGHT - BOTTOM}' stroke='{GREY}'/>")
        out.append(_text(x, HEIGHT - BOTTOM + 16, _time_label(t, span)))
    out.append(
        f"<rect x='{LEFT}' y='{TOP}' width='{frame.width}' height='{frame.height}' "
        "fill='none' stroke='#333'/>"
    )
    return out


def _legend(entries: list[tuple[str, str]]) -> list[str]:
    """Legend entries (label, SVG of its sample mark at 0,0) in the plot's top-right corner."""
    out = []
    x = WIDTH - RIGHT - 130
    for i, (label, mark) in enumerate(entries):
        y = TOP + 14 + 16 * i
        out.append(f"<g transform='translate({x},{y})'>{mark}</g>")
        out.append(_text(x + 16, y + 4, label, anchor="start", font_size="11"))
    return out


def _frame(
    points: list[tuple[dt.datetime, float, bool]], steps: list[tuple[dt.datetime, float]]
) -> tuple[_Frame, list[str]]:
    """The plot area fitted to the points and the budget steps, and its axes."""
    times = [p[0] for p in points] + [s[0] for s in steps]
    t0, t1 = (
        (min(times), max(times)) if times else (dt.datetime(2000, 1, 1), dt.datetime(2000, 1, 2))
    )
    if t1 - t0 < dt.timedelta(minutes=1):  # one run: a day either side
        t0, t1 = t0 - dt.timedelta(days=1), t1 + dt.timedelta(days=1)
    ys = [p[1] for p in points] + [s[1] for s in steps]
    y_ticks = nice_ticks(min(ys), max(ys)) if ys else [0.0, 1.0]
    margin = (t1 - t0) * 0.05  # points off the border, the outer tick labels inside the chart
    frame = _Frame(t0 - margin, t1 + margin, y_ticks)
    return frame, _axes(frame, y_ticks, t0, t1)


def _runs(frame: _Frame, points: list[tuple[dt.datetime, float, bool]]) -> list[str]:
    """The line through the runs' values, a dot per run, a larger red one per failed run."""
    line = " ".join(f"{frame.x(t)},{frame.y(v)}" for t, v, _ in points)
    parts = [f"<polyline points='{line}' fill='none' stroke='{BLUE}' stroke-width='1.5'/>"]
    parts += [f"<circle cx='{frame.x(t)}' cy='{frame.y(v)}' r='3'/>" for t, v, _ in points]
    parts += [
        f"<circle cx='{frame.x(t)}' cy='{frame.y(v)}' r='5' fill='{RED}'/>"
        for t, v, failed in points
        if failed
    ]
    return parts


def _budget(frame: _Frame, steps: list[tuple[dt.datetime, float]]) -> str:
    """The budget as a step line: each run's budget holds until the next run's."""
    path, previous = [], None
    for t, b in steps:
        if previous is not None:
            path.append(f"{frame.x(t)},{frame.y(previous)}")
        path.append(f"{frame.x(t)},{frame.y(b)}")
        previous = b
    return (
        f"<polyline points='{' '.join(path)}' fill='none' stroke='{RED}' stroke-dasharray='5,3'/>"
    )


def trend_svg(
    when: Sequence[dt.datetime],
    values: Sequence[float | None],
    failed: Sequence[bool],
    title: str,
    ylabel: str,
    budget: Sequence[float | None] | None = None,
) -> bytes:
    """One value per run over time (missing values skipped); failed runs marked in red; the
    reject budget, when given, as a dashed red step line."""
    points = [
        (t, float(v), f)
        for t, v, f in zip(when, values, failed)
        if v is not None and math.isfinite(v)
    ]
    steps = [
        (t, float(b)) for t, b in zip(when, budget or []) if b is not None and math.isfinite(b)
    ]
    frame, parts = _frame(points, steps)
    legend = []
    if points:
        parts += _runs(frame, points)
        legend.append(("run", f"<circle r='3' fill='{BLUE}'/>"))
        if any(f for _, _, f in points):
            legend.append(("failed run", f"<circle r='5' fill='{RED}'/>"))
    if steps:
        parts.append(_budget(frame, steps))
        dashes = f"<line x1='-8' x2='8' stroke='{RED}' stroke-dasharray='5,3'/>"
        legend.append(("reject budget", dashes))
    parts += _legend(legend)
    middle = TOP + frame.height / 2
    parts.append(_text(WIDTH / 2, 20, title, font_size="14"))
    parts.append(_text(LEFT + frame.width / 2, HEIGHT - 12, "run start (UTC)"))
    parts.append(_text(16, middle, ylabel, transform=f"rotate(-90 16 {middle})"))
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' font-family='sans-serif' font-size='12'>"
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>"
        f"<g fill='{BLUE}'>{''.join(parts)}</g></svg>"
    ).encode()
