"""python -m jobs.score: score suburb records (CSV/Parquet) into predictions, rejects, a report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batch.core.errors import exit_codes_help
from batch.settings import SCORE_FIELDS, Settings
from jobs import _cli

FIELDS = SCORE_FIELDS


def parser() -> argparse.ArgumentParser:
    p = _cli.JobParser(
        prog="python -m jobs.score",
        summary_line=True,
        description="Score suburb records with a model version from the registry. Writes "
        "output/runs/<run_id>/ (predictions.parquet, predictions.csv, rejects.csv, "
        "report.json, report.html, loss.png, fit.png, _SUCCESS) atomically, then "
        "output/runs.jsonl, output/index.html and <metrics-dir>/batch_score.prom. "
        "The last line of stdout is a JSON summary.",
        epilog=exit_codes_help(),
    )
    _cli.add_settings_flags(p, FIELDS)
    days = p.add_argument_group("backfill (flags only: never read from the environment)")
    days.add_argument(
        "--backfill",
        metavar="FROM..TO",
        help="one ordinary run per day from FROM to TO (YYYY-MM-DD, both included), in order, "
        "each with that day in {date} of --input and as its logical date; a day a published "
        "run scored is skipped, a day without input is recorded and skipped, the first failed "
        "day stops it; run it again to finish what is missing",
    )
    days.add_argument(
        "--force",
        action="store_true",
        help="with --backfill: score every day again, even one scored before; the earlier "
        "runs stay, marked superseded",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.force and not args.backfill:
        p.error("--force only goes with --backfill")
    _cli.quiet_tensorflow()
    _cli.stop_on_sigterm()

    def job(settings: Settings) -> dict[str, Any]:
        if args.backfill is not None:
            from batch.backfill import backfill

            return backfill(settings, args.backfill, args.force)
        from batch.scoring import score

        return score(settings)

    return _cli.run("jobs.score", FIELDS, args, job)


if __name__ == "__main__":
    sys.exit(main())
