"""What `python -m jobs.models` prints: the registry's versions, one version, the alias moves.

Each function returns the text to print; a damaged file is named, never hidden.
"""

from __future__ import annotations

import json
from typing import Any

from batch.core.documents import AliasMove, dump
from batch.core.errors import ModelError
from batch.model.registry import Registry


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
    notes: list[str] = []
    aliases: dict[str, str] | None
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
                meta.created_at,
                f"{meta.metrics.test_mse:.4f}",
                f"{meta.weight:.4f}",
                f"{meta.bias:.4f}",
                names,
            ]
        )
    return _table(["version", "created", "test_mse", "weight", "bias", "aliases"], rows), notes


def listing(registry: Registry) -> str:
    """`models list`: the table and a line per damaged file, or how to train a first model."""
    if not registry.versions():
        return f"no models in {registry.root} yet; train one with 'python -m jobs.train'"
    text, notes = table(registry)
    return "\n".join([text, *(f"damaged: {note}" for note in notes)])


def history_table(moves: list[AliasMove]) -> str:
    """The alias moves as a table, oldest first."""

    def mse(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    rows = [
        [
            m.time,
            m.alias,
            m.from_ or "none",
            m.to,
            mse(m.from_mse),
            mse(m.to_mse),
            m.actor,
            m.reason,
        ]
        for m in moves
    ]
    return _table(["time", "alias", "from", "to", "from_mse", "to_mse", "actor", "reason"], rows)


def history(registry: Registry, as_json: bool) -> str:
    """`models history`: the moves as a table, or as history.jsonl lines (--json)."""
    moves = registry.history()
    if as_json:
        return "\n".join(dump(m) for m in moves)
    if not moves:
        return f"no alias moves recorded in {registry.root} yet"
    return history_table(moves)


def show(registry: Registry, ref: str, full: bool) -> str:
    """`models show`: metadata.json with the version's aliases; the training sample (up to
    2,000 points) only with --full."""
    version = registry.resolve(ref)
    shown: dict[str, Any] = json.loads(dump(registry.metadata(version)))
    sample = shown.get("training_sample")
    if not full and isinstance(sample, dict):
        points = len(next(iter(sample.values()), []))
        shown["training_sample"] = {"points": points, "omitted": "use 'show --full' to print them"}
    shown["aliases"] = registry.aliases_of(version)
    return json.dumps(shown, indent=2)


def move(registry: Registry, command: str, ref: str | None, force: bool) -> str:
    """`models promote vN` or `models rollback`: the move in one line."""
    if command == "promote":
        assert ref is not None
        done = registry.promote(ref, force=force)
    else:
        done = registry.rollback(force=force)
    note = "" if done["moved"] else " (already; nothing changed)"
    return f"production: {done['from'] or 'none'} -> {done['to']}{note}"
