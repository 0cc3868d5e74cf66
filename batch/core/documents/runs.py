"""One line of output/runs.jsonl (a scoring command's outcome), and the scheduler's heartbeat."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from batch.core.documents._base import (
    Count,
    Day,
    FiniteFloat,
    NonNegativeFloat,
    OpenDocument,
    OpenPart,
    Sha256,
    Share,
    UtcTime,
)


class RunChallenger(OpenPart):
    """What a runs.jsonl line keeps of its report's challenger section (read by promote's
    --require-shadow without opening reports)."""

    version: str
    mean_abs_diff: NonNegativeFloat | None = Field(description="$K; null: no rows")
    mse: NonNegativeFloat | None = Field(description="the main version's; null: no true price")
    mae: NonNegativeFloat | None = None
    challenger_mse: NonNegativeFloat | None = None
    challenger_mae: NonNegativeFloat | None = None


class RunLine(OpenDocument):
    """One line of output/runs.jsonl (built by batch.ops.metrics.outcome_from_run).

    Every key has been written since the log began; a run that stopped early has 0 / null
    where it never learnt the value. Unknown keys are carried.
    """

    kind: ClassVar[str] = "runs.jsonl line"
    fix: ClassVar[str] = "restore the line from a backup or remove it; run folders are unaffected"
    indent: ClassVar[int | None] = None
    line: ClassVar[bool] = True

    run_id: str | None = Field(description="null when the run stopped before it had one")
    status: str = Field(
        description="succeeded, nothing_new, no_input (a backfill day without input), "
        "reject_budget_exceeded, drift_detected, failed, interrupted"
    )
    exit_code: int
    error: str | None = Field(description="the one-sentence error of a failed run")
    started_at: UtcTime
    finished_at: UtcTime
    duration_seconds: NonNegativeFloat
    rows_read: Count
    rows_scored: Count
    rows_rejected: Count
    rows_out_of_range: Count
    reject_fraction: Share
    drift: bool = Field(description="the report's drift section says the input differs markedly")
    interval_coverage: Share | None
    mse: NonNegativeFloat | None = Field(description="over rows with a true price")
    mean_prediction: FiniteFloat | None = Field(description="$K")
    model_version: str | None
    run_dir: str | None = Field(description="runs/<id> or failed/<id>; null: no folder")
    comparable: bool | None = Field(
        default=None,
        description="the report's verdict (batch.core.comparable); null: no report, or a line "
        "written before the verdict whose run did not drift (migrated: a drifted one is false)",
    )
    comparable_reasons: list[str] = Field(
        default_factory=list, description="units and/or drift when not comparable"
    )
    warning_kinds: dict[str, Count] = Field(
        default_factory=dict, description="the report's warnings per kind: units, drift, target"
    )
    challenger: RunChallenger | None = Field(
        default=None, description="the report's challenger section, in short; null: none"
    )
    logical_date: Day | None = Field(
        default=None, description="the day the input stands for (--logical-date); null: none"
    )
    supersedes: list[str] = Field(
        default_factory=list, description="runs of the same day this one re-scored (--force)"
    )

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, value: Any) -> Any:
        """A line written before `comparable`: a run that drifted was not comparable."""
        if isinstance(value, dict) and "comparable" not in value and value.get("drift") is True:
            return {**value, "comparable": False, "comparable_reasons": ["drift"]}
        return value


class LedgerLine(OpenDocument):
    """One line of output/ledger.jsonl: an input file a published run scored.

    `--new-only` skips an input whose sha256 is here (or in a run folder's report), so what was
    scored outlives `jobs.runs prune`, which never touches the ledger.
    """

    kind: ClassVar[str] = "ledger.jsonl line"
    fix: ClassVar[str] = (
        "remove or repair the line (its input then counts as not scored by --new-only)"
    )
    indent: ClassVar[int | None] = None
    line: ClassVar[bool] = True

    path: str = Field(description="the input file as the run found it")
    sha256: Sha256
    run_id: str = Field(description="the published run that scored it")
    scored_at: UtcTime
    logical_date: Day | None = Field(
        default=None, description="the run's --logical-date; null: none"
    )


class SchedulerHeartbeat(OpenDocument):
    """output/heartbeat.json: the scheduler's liveness and its last run (read by --health, by
    the catch-up at start and by a restarted scheduler, which keeps the last_* keys).

    The last_* keys are absent until the first fire; stopped_at only after a clean stop.
    Unknown keys are carried: a restarted scheduler copies every last_* key it finds.
    """

    kind: ClassVar[str] = "heartbeat.json"
    fix: ClassVar[str] = "delete it; the scheduler rewrites it when it runs"

    pid: int
    updated_at: UtcTime
    schedule: str = Field(description="the cron expression")
    timezone: str = Field(description="the cron expression's time zone")
    next_run_at: UtcTime | None = Field(description="null once stopped")
    last_run_at: UtcTime | None = None
    last_run_status: str | None = Field(
        None, description="running, succeeded, or 'failed: <reason>'"
    )
    last_success_at: UtcTime | None = None
    last_run_exit_code: int | None = None
    last_run_summary: dict[str, Any] | None = Field(
        None, description="the scorer's JSON summary line (empty when it printed none)"
    )
    stopped_at: UtcTime | None = None
    last_failed_starts: Count | None = Field(
        None,
        description="fires in a row that did not get a run going (missed, or the scorer "
        "refused to start: exit 2, 4, 6 or 7, or could not be launched); 0 after a run",
    )
