"""Run ids: YYYYMMDDTHHMMSSZ-<6 hex>, sortable by start time (UTC), for scoring and training."""

from __future__ import annotations

import datetime as dt
import secrets


def new_run_id(now: dt.datetime | None = None) -> str:
    """A new run id for a run started at `now` (default: this moment)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
