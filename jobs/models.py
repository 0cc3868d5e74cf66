"""python -m jobs.models: list, show, promote, roll back and audit the model registry's versions."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from batch.core.errors import exit_codes_help
from batch.settings import Settings
from jobs import _cli

if TYPE_CHECKING:  # the registry is imported when a command runs, not for --help
    from batch.model.registry import Registry

FIELDS = ["models_dir", "registry_lock_timeout", "log_level"]


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
        _cli.add_settings_flags(s, FIELDS)
    return p


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows
    )


def table(registry: Registry) -> tuple[str, list[str]]:
    """The versions with their metrics and aliases, oldest first, and what is damaged.

    A version whose metadata.json is damaged (or an alias file that is) is listed with what can
    still be said and named in the notes, so one bad file never hides the rest of the registry.
    """
    from batch.core.errors import ModelError

    notes: list[str] = []
    try:
        aliases = registry.aliases()
    except ModelError as exc:
        aliases = None
        notes.append(str(exc))
    rows = []
    for version in registry.versions():
        names = (
            "?"
            if aliases is None
            else ",".join(sorted(a for a, v in aliases.items() if v == version))
        )
        try:
            meta = registry.read_metadata(version)
        except ModelError as exc:
            rows.append([version, "DAMAGED", "-", "-", "-", names])
            notes.append(str(exc))
            continue
        rows.append(
            [
                version,
                meta.get("created_at", ""),
                f"{meta['metrics']['test_mse']:.4f}",
                f"{meta['weight']:.4f}",
                f"{meta['bias']:.4f}",
                names,
            ]
        )
    return _table(["version", "created", "test_mse", "weight", "bias", "aliases"], rows), notes


def history_table(events: list[dict[str, Any]]) -> str:
    """The alias moves as a table, oldest first."""

    def mse(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    rows = [
        [
            e.get("time", ""),
            e.get("alias", ""),
            e.get("from") or "none",
            e.get("to", ""),
            mse(e.get("from_mse")),
            mse(e.get("to_mse")),
            e.get("actor", ""),
            e.get("reason", ""),
        ]
        for e in events
    ]
    return _table(["time", "alias", "from", "to", "from_mse", "to_mse", "actor", "reason"], rows)


def shown_metadata(meta: dict[str, Any], full: bool) -> dict[str, Any]:
    """metadata.json for `show`: the training sample only with --full (it runs to 2,000 points)."""
    sample = meta.get("training_sample")
    if not full and isinstance(sample, dict):
        points = len(next(iter(sample.values()), []))
        meta = dict(
            meta, training_sample={"points": points, "omitted": "use 'show --full' to print them"}
        )
    return meta


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def job(settings: Settings) -> dict[str, Any]:
        from batch.core.jsontext import dumps
        from batch.model.registry import Registry

        registry = Registry(settings.models_dir, settings.registry_lock_timeout)
        if args.command == "list":
            if not registry.versions():
                print(
                    f"no models in {settings.models_dir} yet; train one with 'python -m jobs.train'"
                )
            else:
                text, notes = table(registry)
                print(text)
                for note in notes:
                    print(f"damaged: {note}")
        elif args.command == "show":
            version = registry.resolve(args.version)
            meta = shown_metadata(registry.metadata(version), args.full)
            meta["aliases"] = registry.aliases_of(version)
            print(dumps(meta, indent=2))
        elif args.command == "history":
            events = registry.history()
            if args.json:
                for event in events:
                    print(dumps(event))
            elif not events:
                print(f"no alias moves recorded in {settings.models_dir} yet")
            else:
                print(history_table(events))
        else:
            if args.command == "promote":
                move = registry.promote(args.version, force=args.force)
            else:
                move = registry.rollback(force=args.force)
            note = "" if move["moved"] else " (already; nothing changed)"
            print(f"production: {move['from'] or 'none'} -> {move['to']}{note}")
        return {}

    return _cli.run("jobs.models", FIELDS, args, job, summary_line=False)


if __name__ == "__main__":
    sys.exit(main())
