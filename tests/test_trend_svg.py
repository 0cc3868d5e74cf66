"""The history page's trend charts (batch.ops.trend_svg): well-formed SVG that shows what it says."""

from __future__ import annotations

import datetime as dt
import math
import xml.etree.ElementTree as ET

import pytest

from batch.ops.trend_svg import BLUE, BOTTOM, RED, TOP, nice_ticks, trend_svg

NS = "{http://www.w3.org/2000/svg}"
START = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC)


def parsed(svg: bytes) -> ET.Element:
    assert svg.startswith(b"<svg")
    return ET.fromstring(svg)


def circles(root: ET.Element, fill: str | None = None) -> list[ET.Element]:
    found = root.iter(f"{NS}circle")
    return [c for c in found if c.get("cx") and (fill is None or c.get("fill") == fill)]


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def test_each_run_with_a_value_is_a_point_and_each_failed_one_is_marked_red():
    when = [START + dt.timedelta(days=i) for i in range(6)]
    values = [34, 8_000_000, None, 120, math.nan, 34]
    failed = [False, True, True, False, False, True]
    root = parsed(trend_svg(when, values, failed, "Rows scored per run", "rows"))
    points = [c for c in circles(root) if c.get("r") == "3"]
    assert len(points) == 4  # None and NaN are skipped
    assert len(circles(root, RED)) == 2  # the failed runs that have a value
    line = next(root.iter(f"{NS}polyline"))
    assert line.get("stroke") == BLUE and len(line.get("points", "").split()) == 4
    # Later runs are further right; a larger value is higher up (a smaller y).
    xs = [float(c.get("cx", "")) for c in points]
    ys = [float(c.get("cy", "")) for c in points]
    assert xs == sorted(xs) and ys[1] < ys[0]
    words = texts(root)
    assert "Rows scored per run" in words and "rows" in words and "run start (UTC)" in words
    assert "failed run" in words and "reject budget" not in words
    assert "8,000,000" in words  # a round tick at the largest value


def test_the_reject_budget_is_a_dashed_step_line_drawn_only_when_given():
    when = [START + dt.timedelta(hours=i) for i in range(3)]
    root = parsed(
        trend_svg(when, [0.0, 0.2, 0.05], [False] * 3, "Reject share", "share", [0.1, 0.3, None])
    )
    budget = [p for p in root.iter(f"{NS}polyline") if p.get("stroke-dasharray")]
    assert len(budget) == 1 and budget[0].get("stroke") == RED
    # Two budgets: a level, a step up at the second run, a level.
    assert len(budget[0].get("points", "").split()) == 3
    assert "reject budget" in texts(root)


def test_titles_are_escaped_and_the_same_runs_give_the_same_bytes():
    when = [START]
    title = "<script>alert(1)</script> & $K"
    svg = trend_svg(when, [21.5], [False], title, "a < b")
    root = parsed(svg)  # parses: the markup in the title is text
    assert title in texts(root) and "a < b" in texts(root)
    assert b"<script>" not in svg
    assert svg == trend_svg(when, [21.5], [False], title, "a < b")


def test_one_run_gets_a_day_either_side_and_no_run_still_draws_axes():
    one = parsed(trend_svg([START], [21.5], [False], "t", "y"))
    labels = [t for t in texts(one) if ":" in t]
    assert labels[0].startswith("10-31") and labels[-1].startswith("11-02")
    empty = parsed(trend_svg([], [], [], "t", "y"))
    assert circles(empty) == [] and "t" in texts(empty)


@pytest.mark.parametrize(
    "low, high",
    [
        (0, 1),
        (34, 8_000_000),
        (0.0123, 0.0187),
        (-3.5, 2.25),
        (21.5, 21.5),
        (0, 0),
        (1e-13, 3e-13),
        (4e15, 9e15),
    ],
)
def test_nice_ticks_cover_the_range_in_round_steps(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 8
    steps = [b - a for a, b in zip(ticks, ticks[1:])]
    step = steps[0]
    assert all(math.isclose(s, step, rel_tol=1e-6) for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5))


@pytest.mark.parametrize("low, high", [(-1e308, 1e308), (1e-320, 2e-320), (5e-324, 5e-324)])
def test_extreme_values_still_draw_a_chart(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and len(ticks) <= 8
    root = parsed(
        trend_svg([START, START + dt.timedelta(days=1)], [low, high], [False] * 2, "t", "y")
    )
    assert len([c for c in circles(root) if c.get("r") == "3"]) == 2


@pytest.mark.parametrize("values", [[21.5, 21.500000000000004], [0.3, 0.30000000000000004]])
def test_values_apart_by_float_noise_get_distinct_ticks_and_stay_inside(values):
    root = parsed(trend_svg([START, START + dt.timedelta(days=1)], values, [False] * 2, "t", "y"))
    labels = [t for t in texts(root) if t and t[0].isdigit() and ":" not in t and "-" not in t]
    assert len(set(labels)) == len(labels) >= 2
    ys = [float(c.get("cy", "")) for c in circles(root)]
    assert all(TOP < y < 360 - BOTTOM for y in ys)


def test_subnormal_ranges_and_other_time_zones():
    assert nice_ticks(0, 5e-320)[-1] >= 5e-320
    plus_two = dt.timezone(dt.timedelta(hours=2))
    when = [dt.datetime(2026, 11, 1, 3, 0, tzinfo=plus_two)]  # 01:00 UTC
    labels = [t for t in texts(parsed(trend_svg(when, [1.0], [False], "t", "y"))) if ":" in t]
    assert "11-01 01:00" in labels
