"""What `python -m jobs.runs` prints: the runs table, one run's summary, what a prune removed.

Text out, never printed here: the entry point prints it.
"""

from __future__ import annotations

from typing import Any

from batch.core import comparable
from batch.core.documents import RunReport, dump
from batch.core.errors import ConfigError
from batch.core.jsontext import dumps
from batch.ops import history
from batch.ops.history import RunEntry
from batch.ops.labels.results import show_lines
from batch.ops.retention import PrunePlan, prune
from batch.storage.location import Location

TABLE_HEADER = [
    "run_id",
    "started",
    "day",
    "status",
    "exit",
    "rows_read",
    "scored",
    "rejected",
    "model",
    "drift",
    "comparable",
    "duration_s",
]


def _num(value: Any, fmt: str = ",") -> str:
    return "-" if value is None else format(value, fmt)


# -- list -------------------------------------------------------------------------------------


def list_runs(output_dir: Location, as_json: bool) -> str:
    """Every run, newest first: a table (LATEST marked), or a JSON list of their fields."""
    runs = history.collect(output_dir)
    if as_json:
        return dumps([r.view() for r in runs], indent=2)
    if not runs:
        return f"no runs in {output_dir} yet; score with 'python -m jobs.score'"
    return table(runs, history.latest_run(output_dir))


def _row(run: dict[str, Any], latest: str | None) -> list[str]:
    run_id = run["run_id"] or "-"
    if run_id == latest:
        run_id += " (LATEST)"
    return [
        run_id,
        str(run["started_at"] or "").replace("+00:00", "Z"),
        run["logical_date"] or "-",
        (run["status"] or "") + (" (superseded)" if run["superseded_by"] else ""),
        "" if run["exit_code"] is None else str(run["exit_code"]),
        _num(run["rows_read"]),
        _num(run["rows_scored"]),
        _num(run["rows_rejected"]),
        run["model_version"] or "-",
        ("yes" if run["drift"] else "no") if run["run_dir"] else "-",
        comparable.in_words(run["comparable"], run["comparable_reasons"] or ()),
        _num(run["duration_seconds"], ".1f"),
    ]


def table(runs: list[RunEntry], latest: str | None) -> str:
    """The runs as an aligned text table, newest first."""
    rows = [TABLE_HEADER] + [_row(r.view(), latest) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


# -- show -------------------------------------------------------------------------------------


def show_run(output_dir: Location, run_id: str, as_json: bool) -> str:
    """One run (`latest`: the run in LATEST): its report in a few lines, or its whole report.json
    (its outcome line when it has no report)."""
    latest = history.latest_run(output_dir)
    wanted = latest if run_id == "latest" else run_id
    run = next((r for r in history.collect(output_dir) if r.run_id == wanted), None)
    if wanted is None or run is None:
        raise ConfigError(
            f"no run {run_id!r} in {output_dir}; list the runs with 'python -m jobs.runs list'"
        )
    if as_json:
        return dump(run.report).rstrip("\n") if run.report else dumps(run.view(), indent=2)
    return "\n".join([summary_text(run), *show_lines(output_dir, run.run_id, run.report)])


def summary_text(run: RunEntry) -> str:
    """A run's report in a few lines (or its outcome line when it has no report)."""
    view = run.view()
    lines = [
        f"run {view['run_id'] or '-'}: {view['status']} (exit {view['exit_code']})",
        f"started {view['started_at']}, took {_num(view['duration_seconds'], '.1f')} s",
    ]
    if view["logical_date"]:
        lines.append(f"logical date: {view['logical_date']}")
    if view["supersedes"]:
        lines.append(f"supersedes (re-scored the same day): {', '.join(view['supersedes'])}")
    if view["superseded_by"]:
        lines.append(f"superseded by {view['superseded_by']} (the same day, re-scored)")
    if view["error"]:
        lines.append(f"error: {view['error']}")
    if run.report is None:
        if run.problem is None:
            lines.append("no report: the run stopped before writing one")
        return "\n".join(lines)
    lines.append(
        f"folder: {run.run_dir} (report.html, report.json, rejects.csv"
        + (_prediction_files(run.report) if view["exit_code"] == 0 else ")")
    )
    return "\n".join(lines + _report_lines(run.report))


def _report_lines(report: RunReport) -> list[str]:
    lines = [f"model: {report.model_version}"]
    for item in report.inputs:
        lines.append(
            f"input: {item.path} ({item.format}): {_num(item.rows_read)} read, "
            f"{_num(item.rows_scored)} scored, {_num(item.rows_rejected)} rejected"
        )
    lines.append(
        f"rows: {_num(report.rows_read)} read, {_num(report.rows_scored)} scored, "
        f"{_num(report.rows_rejected)} rejected ({report.reject_fraction:.2%} of a "
        f"{report.max_reject_fraction:.0%} budget), {_num(report.out_of_range.rows)} outside "
        "the training range"
    )
    reasons = {k: v for k, v in report.rejects_by_reason.items() if v}
    if reasons:
        lines.append("rejected by reason: " + ", ".join(f"{k} {v:,}" for k, v in reasons.items()))
    ps = report.prediction_summary
    if ps.count:
        lines.append(
            f"predictions ($K): mean {_num(ps.mean, '.2f')}, min {_num(ps.min, '.2f')}, "
            f"p50 {_num(ps.p50, '.2f')}, max {_num(ps.max, '.2f')}"
        )
    m = report.metrics
    if m:
        lines.append(
            f"against true prices ({m.rows:,} rows): MSE {m.mse:.3f}, "
            f"MAE {m.mae:.3f}, RMSE {m.rmse:.3f}"
        )
    drift = report.drift
    lines.append("drift: " + ("differs markedly" if drift.differs_markedly else "none"))
    lines.extend(f"  {w}" for w in drift.warnings)
    verdict = report.comparability
    if verdict is not None:
        lines.append("comparable: " + comparable.in_words(verdict.comparable, verdict.reasons))
        lines.extend(f"  [{w.kind}] {w.message}" for w in verdict.warnings)
    return lines


# -- prune ------------------------------------------------------------------------------------


def prune_limits(
    keep: int | None, older_than: float | None, settings: Any
) -> tuple[int | None, float | None]:
    """(keep, days) of a prune: the flags; without either, the retention settings."""
    if keep is None and older_than is None:
        return settings.retention, settings.retention_days
    return keep, older_than


def prune_runs(
    output_dir: Location,
    keep: int | None,
    older_than: float | None,
    dry_run: bool,
    settings: Any,
) -> str:
    """Prune under the output lock; what it removed (or would), and what it kept."""
    keep, days = prune_limits(keep, older_than, settings)
    plan = prune(output_dir, keep=keep, older_than_days=days, dry_run=dry_run)
    return prune_text(plan, dry_run, history.latest_run(output_dir))


def prune_text(plan: PrunePlan, dry_run: bool, latest: str | None) -> str:
    """One line per removed folder and log line, then how many folders were kept."""
    verb = "would remove" if dry_run else "removed"
    lines = []
    for run in plan.folders:
        view = run.view()
        lines.append(f"{verb} {run.run_dir} ({view['status']}, started {view['started_at']})")
    for run in plan.log_lines:
        view = run.view()
        lines.append(
            f"{verb} the log line of a run without a folder ({view['status']}, "
            f"exit {view['exit_code']}, started {view['started_at']})"
        )
    if not plan.folders and not plan.log_lines:
        lines.append("nothing to remove")
    kept = [r for r in plan.kept if r.run_dir]
    lines.append(f"{len(kept)} run folder(s) kept" + (f"; LATEST is {latest}" if latest else ""))
    return "\n".join(lines)


def _prediction_files(report: RunReport) -> str:
    """The prediction files a successful run wrote (--output-formats), closing the list."""
    formats = report.settings.output_formats
    kept = [
        name
        for name, fmt in (("predictions.parquet", "parquet"), ("predictions.csv", "csv"))
        if formats in ("both", fmt)
    ]
    return "".join(f", {name}" for name in kept) + ")"
