"""python -m jobs.train: fit the single-neuron model, publish it as vN, promote it if it passes.

The quality gate (--promote-tolerance) decides; --promote / --no-promote override it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batch.core.errors import exit_codes_help
from batch.settings import Settings
from jobs import _cli

FIELDS = [
    "models_dir",
    "registry_lock_timeout",
    "data",
    "feature_column",
    "target_column",
    "epochs",
    "batch_size",
    "learning_rate",
    "optimizer",
    "validation_split",
    "seed",
    "promote_tolerance",
    "interval_level",
    "interval_groups",
    "log_every_epochs",
    "openlineage_url",
    "openlineage_api_key",
    "openlineage_file",
    "http_timeout_s",
    "s3_timeout_s",
    "log_level",
]


def parser() -> argparse.ArgumentParser:
    p = _cli.JobParser(
        prog="python -m jobs.train",
        summary_line=True,
        epilog=exit_codes_help(),
        description="Fit the single-neuron house-price model, publish it as a new immutable "
        "version and promote it to production when it passes the quality gate. "
        "The last line of stdout is a JSON summary.",
    )
    gate = p.add_mutually_exclusive_group()
    gate.add_argument(
        "--promote",
        dest="promote",
        action="store_const",
        const="always",
        default="auto",
        help="make the new version production whatever its MSE",
    )
    gate.add_argument(
        "--no-promote",
        dest="promote",
        action="store_const",
        const="never",
        help="publish without touching the production alias",
    )
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="train only when no production model exists (compose start-up)",
    )
    _cli.add_settings_flags(p, FIELDS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _cli.quiet_tensorflow()
    _cli.stop_on_sigterm()

    def job(settings: Settings) -> dict[str, Any]:
        from batch.model.training import train

        return train(settings, promote=args.promote, if_missing=args.if_missing)

    return _cli.run("jobs.train", FIELDS, args, job)


if __name__ == "__main__":
    sys.exit(main())
