"""Stop signals (SIGINT, SIGTERM) as KeyboardInterrupt, until a job starts publishing.

A job calls `install()` once. A signal then unwinds the job like Ctrl-C, so temporary output is
removed and nothing is published. From `hold()` on (called just before the rename that makes a
run or a model visible) signals are held back until the job ends: the job completes and is
reported as done, never published and then reported as interrupted.

Whatever the main thread waits on when a signal arrives (an object-store call, a lock, a lineage
POST, a Dask worker) is a wait Python interrupts, so the run unwinds at once; what it does on the
way out (remove the staged run, release the lock) then runs with the short deadlines the
`on_stop` callbacks set (the object store's: `batch.storage.location.stopping`), so a stop ends
a run within seconds even when the store it would clean up in does not answer.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

_state: dict[str, Any] = {"holding": False, "held": None}
_ON_STOP: list[Callable[[], None]] = []


def on_stop(callback: Callable[[], None]) -> None:
    """Call `callback` when a stop signal unwinds a job (it shortens a clean-up's waits)."""
    if callback not in _ON_STOP:
        _ON_STOP.append(callback)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state["holding"]:
        _state["held"] = signum
        return
    for callback in _ON_STOP:
        try:
            callback()
        except Exception:  # a callback must never keep the signal from stopping the job
            log.debug("a stop callback failed", exc_info=True)
    raise KeyboardInterrupt


def install() -> None:
    """SIGTERM (docker stop) and SIGINT (Ctrl-C) raise KeyboardInterrupt, until hold()."""
    _state.update(holding=False, held=None)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)


def hold() -> None:
    """From now until the job ends, a stop signal no longer interrupts (it is noted instead)."""
    _state["holding"] = True


def finish(exit_code: int = 0) -> None:
    """The job has ended (with `exit_code`): say so if a stop signal was held back; stop holding."""
    if _state["held"] is not None:
        name = signal.Signals(_state["held"]).name
        if exit_code == 0:
            log.warning(
                "%s arrived while publishing; the work was completed and published first", name
            )
        else:
            log.warning(
                "%s arrived while publishing, which then failed on its own (exit %d)",
                name,
                exit_code,
            )
    _state.update(holding=False, held=None)
