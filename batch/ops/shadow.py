"""promote's --require-shadow: the evidence a challenger gathered in runs.jsonl before it leads.

A shadow run counts when its runs.jsonl line says exit 0, comparable and a challenger section
naming the version; on the counted runs with true prices, the challenger's MSE must not exceed
the main version's. The lines carry what is needed, so no report is opened.
"""

from __future__ import annotations

from batch.core.documents import RunLine
from batch.core.errors import ModelError
from batch.ops.history import RUNS_LOG, read_log
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


def _worse(line: RunLine) -> str | None:
    """'run: challenger MSE x vs y' when the challenger did worse on its true prices."""
    c = line.challenger
    if c is None or c.mse is None or c.challenger_mse is None or c.challenger_mse <= c.mse:
        return None
    return f"{line.run_id}: MSE {c.challenger_mse:.4g} vs {line.model_version}'s {c.mse:.4g}"


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
    worse = [w for w in map(_worse, runs) if w is not None]
    if worse:
        raise ModelError(
            f"{version} is not promoted: its MSE was worse than the scoring version's on "
            f"{len(worse)} shadow run(s) with true prices ({'; '.join(worse)}); keep the "
            "current production model or train a better one"
        )
    return len(runs)
