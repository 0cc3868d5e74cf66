"""python -m jobs.labels: join true prices to past runs' predictions and judge them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batch.core.errors import exit_codes_help
from batch.settings import Settings
from jobs import _cli

FIELDS = ["output_dir", "metrics_dir", "s3_timeout_s", "log_level"]


def parser() -> argparse.ArgumentParser:
    p = _cli.JobParser(
        prog="python -m jobs.labels",
        summary_line=True,
        description="Join true prices (label files, CSV or Parquet, local or s3://) to the "
        "predictions of every succeeded run in the output folder that carries the key. "
        "Writes output/labels/<run_id>.json (realized MAE, RMSE, bias, band coverage, per "
        "rooms decile, the label-free estimate beside them) and one line in "
        "output/labels/history.jsonl per result written; joining the same labels again "
        "changes nothing. The last line of stdout is a JSON summary.",
        epilog=exit_codes_help((0, 1, 2, 3, 6, 7, 130)),
    )
    p.add_argument(
        "label_files", nargs="+", metavar="LABEL_FILE", help="CSV or Parquet file(s) of true prices"
    )
    p.add_argument(
        "--key",
        action="append",
        metavar="COL",
        help="a column both the labels and the scored inputs have (repeat for several); "
        "default: source_file and source_row",
    )
    p.add_argument(
        "--label-column",
        metavar="COL",
        help="the true-price column, in $K (any case); default: the target_column setting "
        "(BATCH_TARGET_COLUMN, default medv)",
    )
    _cli.add_settings_flags(p, FIELDS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _cli.stop_on_sigterm()

    def job(settings: Settings) -> dict[str, Any]:
        from batch.ops.labels import job as labels_job

        return labels_job.run(settings, args.label_files, args.key, args.label_column)

    return _cli.run("jobs.labels", FIELDS, args, job)


if __name__ == "__main__":
    sys.exit(main())
