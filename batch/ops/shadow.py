"""promote's --require-shadow: the evidence a challenger gathered in runs.jsonl before it leads.

A shadow run counts when its runs.jsonl line says exit 0, comparable and a challenger section
naming the version. On each counted run with true prices, the challenger's MSE must not exceed
the main version's: the true prices joined later with `jobs.labels` (labels/<run_id>.json) when
there are some, else those the input itself carried (the line's challenger summary).
"""

from __future__ import annotations

from batch.core.documents import RunLine
from batch.core.errors import ModelError
from batch.ops.history import RUNS_LOG, read_log
from batch.ops.labels.results import read_result
from batch.storage.location import Location


def shadow_runs(output_dir: Location, version: str) -> list[RunLine]:
    """The successful, comparable runs of the output folder that shadowed `version`."""
    return [
        e.line
        for e in read_log(output_dir)
        if e.line is not None
        and e.line.exit_code == 0
        and e.line.comparable is True
        and e.line.challenger is not None
        and e.line.challenger.version == version
    ]


def _worse(output_dir: Location, line: RunLine) -> str | None:
    """'run: challenger MSE x vs y' when the challenger did worse on the run's true prices
    (its labels result first, else the input's own true prices)."""
    joined = read_result(output_dir, line.run_id) if line.run_id else None
    mine: float | None
    theirs: float | None
    if joined is not None and joined.challenger is not None:
        mine, theirs, where = joined.challenger.mse, joined.challenger.main_mse, " (labels)"
    elif line.challenger is not None:
        mine, theirs, where = line.challenger.challenger_mse, line.challenger.mse, ""
    else:
        return None
    if mine is None or theirs is None or mine <= theirs:
        return None
    return f"{line.run_id}{where}: MSE {mine:.4g} vs {line.model_version}'s {theirs:.4g}"


def require_shadow(output_dir: Location, version: str, required: int) -> int:
    """How many shadow runs back `version`; ModelError (one sentence) when too few, or when
    it did worse than the main version on any of them with true prices."""
    runs = shadow_runs(output_dir, version)
    log = output_dir / RUNS_LOG
    if len(runs) < required:
        raise ModelError(
            f"{version} is not promoted: it shadowed {len(runs)} of the {required} successful, "
            f"comparable runs --require-shadow asks for (found in {str(log)!r}); score with "
            f"--challenger {version} until it has"
        )
    worse = [w for w in (_worse(output_dir, run) for run in runs) if w is not None]
    if worse:
        raise ModelError(
            f"{version} is not promoted: its MSE was worse than the scoring version's on "
            f"{len(worse)} shadow run(s) with true prices ({'; '.join(worse)}); keep the "
            "current production model or train a better one"
        )
    return len(runs)
