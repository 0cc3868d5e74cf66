"""python -m jobs.models: list, show, promote, roll back and audit the model registry's versions."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batch.core.errors import exit_codes_help
from batch.settings import Settings
from jobs import _cli

FIELDS = ["models_dir", "registry_lock_timeout", "s3_timeout_s", "log_level"]


def _runs(text: str) -> int:
    """--require-shadow's N: a whole number of runs, at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of runs, at least 1: {text!r}")
    return n


def parser() -> argparse.ArgumentParser:
    p = _cli.JobParser(
        prog="python -m jobs.models",
        description="Inspect and manage the model registry.",
        epilog=exit_codes_help((0, 1, 2, 4, 6, 7, 130)),
    )
    _cli.add_settings_flags(p, FIELDS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub_list = sub.add_parser("list", help="table of versions with their metrics and aliases")
    sub_show = sub.add_parser("show", help="print one version's metadata.json")
    sub_show.add_argument("version", help="vN, latest or an alias such as production")
    sub_show.add_argument(
        "--full", action="store_true", help="include the training sample (up to 2,000 points)"
    )
    sub_promote = sub.add_parser("promote", help="point the production alias at a version")
    sub_promote.add_argument("version", help="vN or latest")
    sub_promote.add_argument(
        "--require-shadow",
        type=_runs,
        metavar="N",
        help="refuse (exit 4) unless the version shadowed at least N successful, comparable "
        "runs in --output-dir's runs.jsonl (scored as the challenger) and did not do worse "
        "than the scoring version where the true price was known",
    )
    sub_rollback = sub.add_parser(
        "rollback", help="point production back at the version it named before its current one"
    )
    for s in (sub_promote, sub_rollback):
        s.add_argument(
            "--force",
            action="store_true",
            help="move even a version that fails the sanity check (no better than "
            "predicting the training mean)",
        )
    sub_history = sub.add_parser("history", help="every move of an alias, oldest first")
    sub_history.add_argument(
        "--json", action="store_true", help="print the history.jsonl lines as they are"
    )
    for s in (sub_list, sub_show, sub_promote, sub_rollback, sub_history):
        # promote also reads --output-dir: the runs.jsonl whose lines --require-shadow counts
        _cli.add_settings_flags(s, FIELDS + (["output_dir"] if s is sub_promote else []))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _cli.stop_on_sigterm()  # a wait for the registry lock ends on SIGTERM like Ctrl-C (exit 130)

    def job(settings: Settings) -> dict[str, Any]:
        from batch.model import listing
        from batch.model.registry import Registry

        registry = Registry(settings.models_dir, settings.registry_lock_timeout)
        if args.command == "list":
            text = listing.listing(registry)
        elif args.command == "show":
            text = listing.show(registry, args.version, args.full)
        elif args.command == "history":
            text = listing.history(registry, args.json)
        else:
            if getattr(args, "require_shadow", None) is not None:
                from batch.ops.shadow import require_shadow

                version = registry.resolve(args.version)
                require_shadow(settings.output_dir, version, args.require_shadow)
            text = listing.move(registry, args.command, getattr(args, "version", None), args.force)
        if text:
            _cli.print_text(text)
        return {}

    return _cli.run("jobs.models", [*FIELDS, "output_dir"], args, job, summary_line=False)


if __name__ == "__main__":
    sys.exit(main())
