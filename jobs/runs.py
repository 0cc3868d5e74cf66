"""python -m jobs.runs: list, show and prune the scoring runs of an output folder."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batch.core.errors import exit_codes_help
from batch.settings import Settings
from jobs import _cli

FIELDS = ["output_dir", "log_level"]


def parser() -> argparse.ArgumentParser:
    p = _cli.JobParser(
        prog="python -m jobs.runs",
        description="Look after the scoring runs of an output folder: runs/<id> (succeeded), "
        "failed/<id> (over the reject budget) and runs that stopped before writing "
        "a report (from runs.jsonl). A scoring run holding the output folder makes "
        "prune exit 6.",
        epilog=exit_codes_help((0, 1, 2, 6, 7, 130)),
    )
    _cli.add_settings_flags(p, FIELDS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub_list = sub.add_parser(
        "list", help="every run, newest first: id, status, rows, model, drift, duration"
    )
    sub_list.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    sub_show = sub.add_parser("show", help="the report summary of one run")
    sub_show.add_argument("run_id", help="a run id, or 'latest' for the run in LATEST")
    sub_show.add_argument("--json", action="store_true", help="print the whole report.json")
    sub_prune = sub.add_parser(
        "prune",
        help="remove old runs (never the one in LATEST) under the output lock",
        description="Remove run folders from runs/ and failed/ beyond the N newest and/or older "
        "than DAYS; the run in LATEST always stays. Without --keep/--older-than the "
        "settings BATCH_RETENTION / BATCH_RETENTION_DAYS apply. Takes the output "
        "folder's lock (exit 6 while a scoring run holds it), prints what it removed "
        "and rebuilds index.html.",
    )
    sub_prune.add_argument("--keep", type=int, metavar="N", help="keep the N newest run folders")
    sub_prune.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="remove runs that started more than DAYS days ago",
    )
    sub_prune.add_argument(
        "--dry-run", action="store_true", help="print what would be removed and remove nothing"
    )
    for s in (sub_list, sub_show, sub_prune):
        _cli.add_settings_flags(s, FIELDS)
    return p


def _num(value: Any, fmt: str = ",") -> str:
    return "-" if value is None else format(value, fmt)


def table(runs: list[dict[str, Any]], latest: str | None) -> str:
    """The runs as an aligned text table, newest first."""
    header = [
        "run_id",
        "started",
        "status",
        "exit",
        "rows_read",
        "scored",
        "rejected",
        "model",
        "drift",
        "duration_s",
    ]
    rows = []
    for r in runs:
        run_id = r.get("run_id") or "-"
        if run_id == latest:
            run_id += " (LATEST)"
        rows.append(
            [
                run_id,
                str(r.get("started_at", "")).replace("+00:00", "Z"),
                r.get("status", ""),
                str(r.get("exit_code", "")),
                _num(r.get("rows_read")),
                _num(r.get("rows_scored")),
                _num(r.get("rows_rejected")),
                r.get("model_version") or "-",
                ("yes" if r.get("drift") else "no") if r.get("run_dir") else "-",
                _num(r.get("duration_seconds"), ".1f"),
            ]
        )
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + rows
    )


def summary_text(run: dict[str, Any], report: dict[str, Any] | None) -> str:
    """A run's report in a few lines (or its outcome line when it has no report)."""
    lines = [
        f"run {run.get('run_id') or '-'}: {run.get('status')} (exit {run.get('exit_code')})",
        f"started {run.get('started_at')}, took {_num(run.get('duration_seconds'), '.1f')} s",
    ]
    if run.get("error"):
        lines.append(f"error: {run['error']}")
    if report is None:
        lines.append("no report: the run stopped before writing one")
        return "\n".join(lines)
    lines.append(
        f"folder: {run.get('run_dir')} (report.html, report.json, rejects.csv"
        + (", predictions.parquet, predictions.csv)" if run.get("exit_code") == 0 else ")")
    )
    lines.append(f"model: {report.get('model_version')}")
    for item in report.get("inputs") or []:
        lines.append(
            f"input: {item.get('path')} ({item.get('format')}): "
            f"{_num(item.get('rows_read'))} read, {_num(item.get('rows_scored'))} "
            f"scored, {_num(item.get('rows_rejected'))} rejected"
        )
    lines.append(
        f"rows: {_num(report.get('rows_read'))} read, {_num(report.get('rows_scored'))} "
        f"scored, {_num(report.get('rows_rejected'))} rejected "
        f"({report.get('reject_fraction', 0):.2%} of a {report.get('max_reject_fraction', 0):.0%} "
        f"budget), {_num((report.get('out_of_range') or {}).get('rows'))} outside the "
        "training range"
    )
    reasons = {k: v for k, v in (report.get("rejects_by_reason") or {}).items() if v}
    if reasons:
        lines.append("rejected by reason: " + ", ".join(f"{k} {v:,}" for k, v in reasons.items()))
    ps = report.get("prediction_summary") or {}
    if ps.get("count"):
        lines.append(
            f"predictions ($K): mean {ps['mean']:.2f}, min {ps['min']:.2f}, "
            f"p50 {ps['p50']:.2f}, max {ps['max']:.2f}"
        )
    m = report.get("metrics")
    if m:
        lines.append(
            f"against true prices ({m.get('rows'):,} rows): MSE {m['mse']:.3f}, "
            f"MAE {m['mae']:.3f}, RMSE {m['rmse']:.3f}"
        )
    drift = report.get("drift") or {}
    lines.append("drift: " + ("differs markedly" if drift.get("differs_markedly") else "none"))
    lines.extend(f"  {w}" for w in drift.get("warnings") or [])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def job(settings: Settings) -> dict[str, Any]:
        from batch.storage.rundir import writing

        # An output folder that cannot be read or changed is exit 7 in one sentence.
        outcome = "nothing was removed" if args.command == "prune" else "nothing was changed"
        with writing(settings.output_dir, outcome):
            return _runs(args, settings)

    return _cli.run("jobs.runs", FIELDS, args, job, summary_line=False)


def _runs(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The sub-command itself: list, show or prune the runs of the output folder."""
    from batch.core.errors import ConfigError
    from batch.core.jsontext import dumps
    from batch.ops import history

    root = settings.output_dir
    latest = history.latest_run(root)
    if args.command == "list":
        runs = history.collect(root)
        if args.json:
            print(dumps(runs, indent=2))
        elif not runs:
            print(f"no runs in {root} yet; score with 'python -m jobs.score'")
        else:
            print(table(runs, latest))
    elif args.command == "show":
        wanted = latest if args.run_id == "latest" else args.run_id
        run = next((r for r in history.collect(root) if r.get("run_id") == wanted), None)
        if wanted is None or run is None:
            raise ConfigError(
                f"no run {args.run_id!r} in {root}; list the runs with 'python -m jobs.runs list'"
            )
        report = history.read_report(root / run["run_dir"]) if run.get("run_dir") else None
        if args.json:
            print(dumps(report if report is not None else run, indent=2))
        else:
            print(summary_text(run, report))
    else:
        from batch.ops.retention import prune

        keep = (
            args.keep
            if args.keep is not None
            else (settings.retention if args.older_than is None else None)
        )
        days = (
            args.older_than
            if args.older_than is not None
            else (settings.retention_days if args.keep is None else None)
        )
        plan = prune(root, keep=keep, older_than_days=days, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for run in plan.folders:
            print(f"{verb} {run['run_dir']} ({run.get('status')}, started {run.get('started_at')})")
        for run in plan.log_lines:
            print(
                f"{verb} the log line of a run without a folder ({run.get('status')}, "
                f"exit {run.get('exit_code')}, started {run.get('started_at')})"
            )
        if not plan.folders and not plan.log_lines:
            print("nothing to remove")
        kept = [r for r in plan.kept if r.get("run_dir")]
        print(f"{len(kept)} run folder(s) kept" + (f"; LATEST is {latest}" if latest else ""))
    return {}


if __name__ == "__main__":
    sys.exit(main())
