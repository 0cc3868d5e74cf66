"""Run history: the outcome log (runs.jsonl), every run of an output folder, and index.html."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from batch.core.jsontext import dumps, read_lines
from batch.ops.metrics import ScoreOutcome, outcome_from_run
from batch.ops.report import PAGE_CSS, escape
from batch.storage import fs
from batch.storage.atomic import write_atomic

log = logging.getLogger(__name__)

RUNS_LOG = "runs.jsonl"
INDEX = "index.html"
REPORT = "report.json"
FOLDERS = ("runs", "failed")


# -- the outcome log ------------------------------------------------------------------------------


def append_outcome(output_dir: Path, outcome: ScoreOutcome) -> None:
    """Append one line to <output>/runs.jsonl (one write of one line: concurrent runs cannot mix)."""
    path = fs.path(output_dir) / RUNS_LOG
    fs.ensure_dir(path.parent)
    fs.append_line(path, dumps(outcome))


def read_log(output_dir: Path) -> list[dict[str, Any]]:
    """Every outcome in runs.jsonl, in the order written; a damaged line is skipped with a warning."""
    return [e for e in read_lines(fs.path(output_dir) / RUNS_LOG) if e.get("started_at")]


def rewrite_log(output_dir: Path, entries: list[dict[str, Any]]) -> None:
    """Replace runs.jsonl with `entries` atomically (prune drops the lines of removed runs)."""
    text = "".join(dumps(e) + "\n" for e in entries)
    write_atomic(fs.path(output_dir) / RUNS_LOG, text)


# -- every run --------------------------------------------------------------------------------------


def _parse(iso: str | None) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def read_report(folder: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((folder / REPORT).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def collect(output_dir: Path) -> list[dict[str, Any]]:
    """Every run of the output folder, newest first, as outcome dicts (see ScoreOutcome).

    A run folder under runs/ or failed/ counts with its report.json; an outcome line of
    runs.jsonl adds its exit code, error and duration to the folder of the same run_id, and a
    line without a folder (a run that stopped before writing a report, or a --new-only run
    that found nothing new) is a run of its own. A line whose folder was removed is dropped.
    """
    root = fs.path(output_dir)
    logged: dict[str, dict[str, Any]] = {}
    folderless: list[dict[str, Any]] = []
    for entry in read_log(root):
        if entry.get("run_dir"):
            logged[str(entry.get("run_id"))] = entry
        else:
            folderless.append(entry)
    runs: list[dict[str, Any]] = []
    for kind in FOLDERS:
        base = root / kind
        if not base.is_dir():
            continue
        for folder in base.iterdir():
            report = read_report(folder) if folder.is_dir() else None
            if report is None:
                continue
            entry = logged.get(folder.name)
            if entry is not None:
                record = dict(entry)
                record["run_dir"] = f"{kind}/{folder.name}"
            else:
                # A run from before the outcome log, or one whose line was lost: its report
                # says all but the exit code, which its folder implies.
                summary = {
                    "status": "succeeded" if kind == "runs" else "reject_budget_exceeded",
                    "run_id": folder.name,
                    "run_dir": str(folder),
                }
                record = dict(
                    outcome_from_run(
                        summary,
                        report,
                        0 if kind == "runs" else 5,
                        _parse(report.get("started_at")),
                        _parse(report.get("finished_at")),
                    )
                )
            record["max_reject_fraction"] = report.get("max_reject_fraction")
            runs.append(record)
    runs.extend(folderless)
    runs.sort(key=lambda r: (_parse(r.get("started_at")), str(r.get("run_id") or "")), reverse=True)
    return runs


def latest_run(output_dir: Path) -> str | None:
    """The run id in LATEST (None when there is none)."""
    try:
        return (fs.path(output_dir) / "LATEST").read_text().strip() or None
    except OSError:
        return None


# -- index.html -------------------------------------------------------------------------------------

_e = escape


def _n(value: Any) -> str:
    return "–" if value is None else f"{value:,}"


def _trend_pngs(runs: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """Trend plots over the runs that scored something (oldest to newest)."""
    from batch.ops import plots

    done = [r for r in reversed(runs) if r.get("run_dir")]
    if not done:
        return []
    when = [_parse(r["started_at"]) for r in done]
    failed = [r.get("exit_code") != 0 for r in done]
    figures = [
        (
            "Rows scored per run",
            plots.trend_png(
                when, [r.get("rows_scored") for r in done], failed, "Rows scored per run", "rows"
            ),
        ),
        (
            "Reject share per run",
            plots.trend_png(
                when,
                [r.get("reject_fraction") for r in done],
                failed,
                "Reject share per run",
                "share of rows rejected",
                budget=[r.get("max_reject_fraction") for r in done],
            ),
        ),
        (
            "Mean prediction per run",
            plots.trend_png(
                when,
                [r.get("mean_prediction") for r in done],
                failed,
                "Mean predicted price per run",
                "$K",
            ),
        ),
    ]
    mse = [r.get("mse") for r in done]
    coverage = [r.get("interval_coverage") for r in done]
    if any(v is not None for v in mse):
        figures.append(
            (
                "MSE against true prices per run",
                plots.trend_png(
                    when, mse, failed, "MSE against true prices (runs whose input had them)", "MSE"
                ),
            )
        )
    if any(v is not None for v in coverage):
        figures.append(
            (
                "Interval coverage per run",
                plots.trend_png(
                    when,
                    coverage,
                    failed,
                    "Interval coverage (runs whose input had true prices)",
                    "share inside the band",
                ),
            )
        )
    return figures


CSS = (
    PAGE_CSS
    + """
body{max-width:1200px}.warn{color:#a05a00}small{color:#666}
"""
)


def render_index(
    runs: list[dict[str, Any]],
    latest: str | None,
    now: dt.datetime,
    images: list[tuple[str, bytes]],
) -> str:
    """The history page: one self-contained HTML document (plots embedded, relative links only)."""
    ok = sum(1 for r in runs if r.get("exit_code") == 0)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        # An empty icon: the browser asks for no favicon.ico.
        "<link rel='icon' href='data:,'>"
        f"<title>Scoring run history</title><style>{CSS}</style></head><body>",
        "<h1>House-price scoring: run history</h1>",
        f"<p>{len(runs)} run(s): {ok} succeeded, {len(runs) - ok} failed. Newest successful "
        f"run (LATEST): <b>{_e(latest or 'none')}</b>. Page written "
        f"{_e(now.astimezone(dt.UTC).isoformat(timespec='seconds'))}.</p>",
    ]
    if images:
        parts.append("<h2>Trends</h2><div class='plots'>")
        for caption, png in images:
            data = base64.b64encode(png).decode()
            parts.append(
                f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'></figure>"
            )
        parts.append("</div>")
    parts.append("<h2>Runs, newest first</h2>")
    if not runs:
        parts.append("<p>No run yet.</p>")
    else:
        head = [
            "run",
            "started (UTC)",
            "status",
            "exit",
            "rows read",
            "scored",
            "rejected",
            "reject share",
            "drift",
            "model",
            "duration (s)",
            "report",
        ]
        parts.append("<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
        for r in runs:
            code = r.get("exit_code")
            cls = "ok" if code == 0 else "bad"
            status = _e(r.get("status"))
            if r.get("error"):
                status += f"<br><small>{_e(r['error'])}</small>"
            link = (
                f"<a href='{_e(r['run_dir'])}/report.html'>report</a>" if r.get("run_dir") else "–"
            )
            run_id = _e(r.get("run_id") or "–")
            if r.get("run_id") and r.get("run_id") == latest:
                run_id += " <small>(LATEST)</small>"
            share = r.get("reject_fraction")
            drift = "<span class='warn'>yes</span>" if r.get("drift") else "no"
            parts.append(
                f"<tr id='run-{_e(r.get('run_id') or '')}'><td><code>{run_id}</code></td>"
                f"<td>{_e(str(r.get('started_at', '')).replace('+00:00', 'Z'))}</td>"
                f"<td class='{cls}'>{status}</td><td class='n'>{_e(code)}</td>"
                f"<td class='n'>{_n(r.get('rows_read'))}</td>"
                f"<td class='n'>{_n(r.get('rows_scored'))}</td>"
                f"<td class='n'>{_n(r.get('rows_rejected'))}</td>"
                f"<td class='n'>{'–' if share is None else f'{share:.2%}'}</td>"
                f"<td>{drift if r.get('run_dir') else '–'}</td>"
                f"<td>{_e(r.get('model_version') or '–')}</td>"
                f"<td class='n'>{_n(r.get('duration_seconds'))}</td><td>{link}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<p><small>Runs that stopped before writing a report (bad settings, unreadable "
        "input, no model, output locked) have no folder and no report; they come from "
        f"<code>{RUNS_LOG}</code>. Run folders are listed and pruned with "
        "<code>python -m jobs.runs</code>.</small></p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_index(output_dir: Path, now: dt.datetime | None = None) -> Path:
    """Rebuild <output>/index.html from every run, atomically."""
    root = fs.path(output_dir)
    runs = collect(root)
    page = render_index(runs, latest_run(root), now or dt.datetime.now(dt.UTC), _trend_pngs(runs))
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / INDEX, page)
    return root / INDEX
