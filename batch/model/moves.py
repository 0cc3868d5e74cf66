"""Alias moves: who moved production where and why (history.jsonl), and rollback's replay."""

from __future__ import annotations

import datetime as dt
import math
import os
import pwd
import socket

from batch.core.documents import AliasMove
from batch.core.errors import ModelError


def actor() -> str:
    """user@host of this process (the uid when it has no name, as in some containers)."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def new_move(
    alias: str,
    previous: str | None,
    version: str,
    reason: str,
    command: str,
    *,
    to_mse: float | None,
    from_mse: float | None,
    mse_on: str | None,
) -> AliasMove:
    """One history line: `alias` moves from `previous` to `version`, now, by this process."""
    return AliasMove.model_validate(
        {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "alias": alias,
            "from": previous,
            "to": version,
            "reason": reason,
            "command": command,
            "actor": actor(),
            "to_mse": _finite_or_none(to_mse),
            "from_mse": _finite_or_none(from_mse),
            "mse_on": mse_on,
        }
    )


def rollback_target(moves: list[AliasMove], alias: str, current: str | None) -> str:
    """The version `alias` goes back to: replay the moves as a stack (a rollback pops one).

    Raises ModelError when there is nothing to roll back to, or when the alias no longer
    matches the history's last move (aliases.json changed by other means).
    """
    stack: list[str | None] = []
    last_to = None
    for move in moves:
        if move.alias != alias:
            continue
        if move.command.startswith("models rollback"):
            if stack:
                stack.pop()
        else:
            stack.append(move.from_)
        last_to = move.to
    if last_to is not None and last_to != current:
        raise ModelError(
            f"{alias} is {current or 'unset'} but its history's last move set "
            f"{last_to} (aliases.json was changed outside these commands); choose "
            "the version with 'python -m jobs.models promote vN'"
        )
    if not stack or stack[-1] is None:
        raise ModelError(
            f"nothing to roll back to: the history of {alias} has no version "
            f"before {current or 'none'}; promote one with "
            "'python -m jobs.models promote vN'"
        )
    return str(stack[-1])


def _finite_or_none(value: float | None) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None
