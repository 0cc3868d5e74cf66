"""Seconds per phase of a run (model, plan, stream, finalize, report), for the report's
`phases_seconds`."""

from __future__ import annotations

import time


class Phases:
    """Seconds per phase of a run, each phase measured from the end of the one before."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.monotonic()

    def end(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._clock, 3)
        self._clock = now
