"""python -m jobs.models: list, show and promote versions of the model registry."""
from __future__ import annotations

import argparse
import json
import sys

from jobs import _cli

FIELDS = ["models_dir", "log_level"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.models",
                                description="Inspect and manage the model registry.")
    _cli.add_settings_flags(p, FIELDS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub_list = sub.add_parser("list", help="table of versions with their metrics and aliases")
    sub_show = sub.add_parser("show", help="print one version's metadata.json")
    sub_show.add_argument("version", help="vN, latest or an alias such as production")
    sub_promote = sub.add_parser("promote", help="point the production alias at a version")
    sub_promote.add_argument("version", help="vN or latest")
    for s in (sub_list, sub_show, sub_promote):
        _cli.add_settings_flags(s, FIELDS)
    return p


def table(registry) -> str:
    header = ["version", "created", "test_mse", "weight", "bias", "aliases"]
    rows = []
    for version in registry.versions():
        meta = registry.metadata(version)
        rows.append([version, meta.get("created_at", ""),
                     f"{meta.get('metrics', {}).get('test_mse', float('nan')):.4f}",
                     f"{meta.get('weight', float('nan')):.4f}",
                     f"{meta.get('bias', float('nan')):.4f}",
                     ",".join(registry.aliases_of(version))])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header] + rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def job(settings):
        from batch.registry import Registry

        registry = Registry(settings.models_dir)
        if args.command == "list":
            if not registry.versions():
                print(f"no models in {settings.models_dir} yet; train one with "
                      "'python -m jobs.train'")
            else:
                print(table(registry))
        elif args.command == "show":
            version = registry.resolve(args.version)
            meta = registry.metadata(version)
            meta["aliases"] = registry.aliases_of(version)
            print(json.dumps(meta, indent=2))
        else:
            previous, version = registry.promote(args.version)
            print(f"production: {previous or 'none'} -> {version}")
        return {}

    return _cli.run("jobs.models", FIELDS, args, job, summary_line=False)


if __name__ == "__main__":
    sys.exit(main())
