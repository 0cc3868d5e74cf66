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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _cli.quiet_tensorflow()
    _cli.stop_on_sigterm()

    def job(settings: Settings) -> dict[str, Any]:
        from batch.scoring import score

        return score(settings)

    return _cli.run("jobs.score", FIELDS, args, job)


if __name__ == "__main__":
    sys.exit(main())
