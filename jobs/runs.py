"""python -m jobs.runs: list, show and prune the scoring runs of an output folder."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batch.core.errors import exit_codes_help
from batch.settings import Settings
from jobs import _cli

FIELDS = ["output_dir", "s3_timeout_s", "log_level"]


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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def job(settings: Settings) -> dict[str, Any]:
        from batch.storage.rundir import writing

        # An output folder that cannot be read or changed is exit 7 in one sentence.
        outcome = "nothing was removed" if args.command == "prune" else "nothing was changed"
        with writing(settings.output_dir, outcome):
            text = _runs(args, settings)
        # Printed outside `writing`: a closed stdout is not a fault of the output location.
        _cli.print_text(text)
        return {}

    return _cli.run("jobs.runs", FIELDS, args, job, summary_line=False)


def _runs(args: argparse.Namespace, settings: Settings) -> str:
    """The sub-command itself: the text of list, show or prune for the output folder."""
    from batch.ops import runs_view

    root = settings.output_dir
    if args.command == "list":
        return runs_view.list_runs(root, args.json)
    if args.command == "show":
        return runs_view.show_run(root, args.run_id, args.json)
    return runs_view.prune_runs(root, args.keep, args.older_than, args.dry_run, settings)


if __name__ == "__main__":
    sys.exit(main())
