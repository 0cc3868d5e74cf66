"""python -m jobs.score: score suburb records (CSV/Parquet) into predictions, rejects and a report."""
from __future__ import annotations

import argparse
import datetime as dt
import sys

from batch.errors import BatchError
from batch.settings import SCORE_FIELDS
from jobs import _cli

FIELDS = SCORE_FIELDS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jobs.score",
        description="Score suburb records with a model version from the registry. Writes "
                    "output/runs/<run_id>/ (predictions.parquet, predictions.csv, rejects.csv, "
                    "report.json, report.html, loss.png, fit.png, _SUCCESS) atomically, then "
                    "output/runs.jsonl, output/index.html and <metrics-dir>/batch_score.prom. "
                    "The last line of stdout is a JSON summary. Exit codes: 0 ok, 2 usage, "
                    "3 input, 4 model, 5 reject budget, 6 output locked by another run.")
    _cli.add_settings_flags(p, FIELDS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _cli.quiet_tensorflow()
    _cli.stop_on_sigterm()

    def job(settings):
        from batch.monitoring import after_score
        from batch.scoring import score

        started = dt.datetime.now(dt.timezone.utc)
        try:
            summary = score(settings)
        except BatchError as exc:
            failed = {"status": "failed", "exit_code": exc.exit_code, "error": str(exc),
                      **(getattr(exc, "summary", {}) or {})}
            after_score(settings, failed, exc.exit_code, started)
            raise
        except KeyboardInterrupt:
            after_score(settings, {"status": "interrupted", "exit_code": 130}, 130, started)
            raise
        except Exception:
            after_score(settings, {"status": "failed", "exit_code": 1,
                                   "error": "unexpected failure (a bug)"}, 1, started)
            raise
        after_score(settings, summary, 0, started)
        return summary

    return _cli.run("jobs.score", FIELDS, args, job)


if __name__ == "__main__":
    sys.exit(main())
