"""index.html: the run history page (every run, newest first, with trend plots), from the
index.html template."""

from __future__ import annotations

import datetime as dt
from typing import Any

from batch.core.documents import RunLine
from batch.ops import pages
from batch.ops.history import RUNS_LOG, RunEntry, collect, latest_run, parse_time
from batch.ops.labels.results import label_cells
from batch.storage import fs
from batch.storage.location import Location

INDEX = "index.html"


def _trend_images(runs: list[RunEntry]) -> list[tuple[str, bytes]]:
    """Trend charts (SVG) over the comparable runs that scored something (oldest to newest): a
    run that is not comparable (batch.core.comparable), or whose day a later run re-scored
    (superseded), adds no point to any trend."""
    from batch.ops.trend_svg import trend_svg

    done: list[tuple[RunLine, float | None]] = []
    for run in reversed(runs):
        line = run.outcome
        if not run.run_dir or line is None or line.comparable is False or run.superseded_by:
            continue
        done.append((line, run.report.max_reject_fraction if run.report else None))
    if not done:
        return []
    when = [parse_time(o.started_at) for o, _ in done]
    failed = [o.exit_code != 0 for o, _ in done]

    def trend(values: list[Any], title: str, ylabel: str, **kwargs: Any) -> bytes:
        return trend_svg(when, values, failed, title, ylabel, **kwargs)

    figures = [
        (
            "Rows scored per run",
            trend([o.rows_scored for o, _ in done], "Rows scored per run", "rows"),
        ),
        (
            "Reject share per run",
            trend(
                [o.reject_fraction for o, _ in done],
                "Reject share per run",
                "share of rows rejected",
                budget=[b for _, b in done],
            ),
        ),
        (
            "Mean prediction per run",
            trend([o.mean_prediction for o, _ in done], "Mean predicted price per run", "$K"),
        ),
    ]
    mse = [o.mse for o, _ in done]
    if any(v is not None for v in mse):
        title = "MSE against true prices (runs whose input had them)"
        figures.append(("MSE against true prices per run", trend(mse, title, "MSE")))
    coverage = [o.interval_coverage for o, _ in done]
    if any(v is not None for v in coverage):
        title = "Interval coverage (runs whose input had true prices)"
        figures.append(
            ("Interval coverage per run", trend(coverage, title, "share inside the band"))
        )
    return figures


def _prediction_files(run: RunEntry) -> str:
    """Which prediction files a published run has (--output-formats), for its row."""
    if run.report is None or run.report.status != "succeeded":
        return ""
    formats = run.report.settings.output_formats
    return "parquet + csv" if formats == "both" else f"{formats} only"


def render_index(
    runs: list[RunEntry],
    latest: str | None,
    now: dt.datetime,
    images: list[tuple[str, bytes]],
    labels: dict[str, str] | None = None,
) -> str:
    """The history page: one self-contained HTML document (plots embedded, relative links only)."""
    views = [dict(r.view(), files=_prediction_files(r)) for r in runs]
    return pages.render(
        "index.html",
        runs=views,
        succeeded=sum(1 for v in views if v["exit_code"] == 0),
        not_comparable=sum(1 for v in views if v["comparable"] is False),
        latest=latest,
        written=now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        figures=images,
        runs_log=RUNS_LOG,
        labels=labels or {},
    )


def write_index(output_dir: Location, now: dt.datetime | None = None) -> Location:
    """Rebuild <output>/index.html from every run, atomically."""
    runs = collect(output_dir)
    page = render_index(
        runs,
        latest_run(output_dir),
        now or dt.datetime.now(dt.UTC),
        _trend_images(runs),
        label_cells(output_dir),
    )
    fs.ensure_dir(output_dir)
    fs.write_atomic(output_dir / INDEX, page)
    return output_dir / INDEX
