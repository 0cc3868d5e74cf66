"""output/runs/<id>/report.json and output/failed/<id>/report.json: one scoring run's report.

Keys the first scorer already wrote are required; keys added later (first_rejects, target,
interval, rejected_rooms, warnings, phases_seconds, failure, estimate, challenger,
logical_date, supersedes, and some nested ones) are optional and None (or empty) when absent,
so reports of earlier runs still read. Unknown keys are carried at every level: other tools
read these files, and later features add keys.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from batch.core.documents._base import (
    Count,
    Day,
    FiniteFloat,
    NonNegativeFloat,
    OpenDocument,
    OpenPart,
    Share,
    UtcTime,
)
from batch.core.documents.metadata import (
    ErrorProfile,
    FeatureRange,
    Hyperparameters,
    OlsReference,
    TrainingMetrics,
)


class ReportModel(OpenPart):
    """The model card: metadata.json's values as the scorer read them (null when absent there)."""

    version: str
    created_at: UtcTime | None
    weight: FiniteFloat | None
    bias: FiniteFloat | None
    metrics: TrainingMetrics | None
    ols_reference: OlsReference | None
    feature_range: FeatureRange | None
    hyperparameters: Hyperparameters | None
    training_data: str | None
    model_sha256: str | None


class ReportInput(OpenPart):
    """One scored input file."""

    path: str
    sha256: str
    format: str = Field(description="csv, parquet, ...")
    rows_read: Count
    rows_scored: Count
    rows_rejected: Count
    reject_fraction: Share | None = None
    rooms_column: str | None = None
    target_column: str | None = None
    notes: list[str]


class SkippedInput(OpenPart):
    """An input left out by --new-only: an earlier run scored the same bytes."""

    path: str
    sha256: str


class RejectedRow(OpenPart):
    """One of the first rejected rows (all are in rejects.csv)."""

    source_file: str
    source_row: int
    raw_value: str | None
    reason: str


class OutOfRange(OpenPart):
    """Scored rows with rooms outside the training range (the model extrapolates there)."""

    rows: Count
    below: Count
    above: Count
    training_range: FeatureRange | None


class PredictionSummary(OpenPart):
    """The predicted prices ($K); p50 is estimated from a sample when `estimated` says so."""

    count: Count
    mean: FiniteFloat | None
    min: FiniteFloat | None
    p50: FiniteFloat | None
    max: FiniteFloat | None
    estimated: list[str]
    sample_size: Count


class RunMetrics(OpenPart):
    """Errors against the true prices the input carried (absent: none did)."""

    mse: NonNegativeFloat
    mae: NonNegativeFloat
    rmse: NonNegativeFloat
    rows: Count
    target_column: str | list[str] | None = Field(
        default=None, description="the column used; a list when files used different ones"
    )
    comparable: bool | None = None
    scale_ratio: FiniteFloat | None = None
    interval_level: Share | None = None
    interval_coverage: Share | None = None
    interval_rows: Count | None = None


class TargetCheck(OpenPart):
    """Which true-price column was used and whether its unit matches the model's ($K)."""

    column: str | list[str] | None = Field(description="a list when files used different ones")
    requested: str | None
    scale_ratio: FiniteFloat | None
    comparable: bool | None
    unit: str | None = Field(
        default=None,
        description="the true prices' most likely unit: $K, dollars, $100K, log dollars, "
        "log $K or unknown; null: too few rows with a true price to say",
    )
    warnings: list[str]


class BandDecile(OpenPart):
    """The band in one rooms decile of the run's sample of scored rows."""

    rooms_min: FiniteFloat
    rooms_max: FiniteFloat
    rows: Count
    mean_width: NonNegativeFloat = Field(description="high - low, $K")
    rows_with_price: Count
    coverage: Share | None = Field(description="share of true prices inside; null: none")


class BandGroup(OpenPart):
    """The band in one rooms group it was calibrated on (--interval-groups), in the run's sample."""

    rooms_from: FiniteFloat | None = Field(description="the group's lower edge; null: no limit")
    rooms_to: FiniteFloat | None = Field(description="its upper edge (not in it); null: no limit")
    rows: Count
    mean_width: NonNegativeFloat | None = Field(description="high - low, $K; null: no rows")
    rows_with_price: Count
    coverage: Share | None = Field(description="share of true prices inside; null: none")


class ReportInterval(OpenPart):
    """Whether the predictions carry a price band, and its promise."""

    available: bool
    level: Share | None
    method: str | None = None
    calibration_rows: Count | None = None
    test_coverage: Share | None = None
    note: str | None = Field(default=None, description="why there is no band")
    lower_bound: FiniteFloat | None = Field(
        default=None, description="the least price a low end shows ($K); null: none"
    )
    lifted_rows: Count | None = Field(
        default=None, description="sampled rows whose low end fell below it and shows as it"
    )
    deciles: list[BandDecile] | None = Field(
        default=None, description="width (and coverage) per rooms decile of the sample"
    )
    sample_rows: Count | None = None
    groups: list[BandGroup] | None = Field(
        default=None,
        description="width (and coverage) per rooms group the band was calibrated on; "
        "absent: one band for all rooms",
    )


class ReportEstimate(OpenPart):
    """The label-free estimate of the run's error, from the model's calibration residuals
    conditioned on rooms (no true price needed)."""

    available: bool
    method: str | None = Field(default=None, description="how it was estimated, in words")
    estimated_mae: NonNegativeFloat | None = Field(
        default=None, description="expected mean absolute error of the scored rows ($K)"
    )
    estimated_coverage: Share | None = Field(
        default=None, description="expected share of true prices inside their band"
    )
    calibration_mae: NonNegativeFloat | None = Field(
        default=None, description="the calibration rows' own MAE, whatever their rooms ($K)"
    )
    rows: Count = Field(default=0, description="scored rows the estimate averages over")
    sampled: bool = Field(default=False, description="true: over a uniform sample of them")
    profile: ErrorProfile | None = Field(
        default=None, description="the model's error profile the estimate used"
    )
    note: str | None = Field(default=None, description="why there is no estimate")


class RejectedRooms(OpenPart):
    """Rejected rows whose rooms are still numbers (outside the plausible range)."""

    count: Count
    min: FiniteFloat | None
    p50: FiniteFloat | None
    max: FiniteFloat | None
    estimated: list[str]


class DriftInput(OpenPart):
    """This input's rooms; only `count` when nothing was scored."""

    count: Count
    mean: FiniteFloat | None = None
    std: NonNegativeFloat | None = None
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    share_outside_training_range: Share | None = None
    share_whole_numbers: Share | None = None
    mean_gap_in_training_sd: NonNegativeFloat | None = None
    spread_ratio: NonNegativeFloat | None = None


class DriftTraining(OpenPart):
    """The training data's rooms (null where the model's metadata lacks them)."""

    count: Count | None
    mean: FiniteFloat | None
    std: NonNegativeFloat | None
    min: FiniteFloat | None
    max: FiniteFloat | None
    share_outside_training_range: Share


class DriftCheck(OpenPart):
    """One drift test: it fails when its p-value is below alpha and its effect past the floor."""

    name: str = Field(description="mean, spread, outside_training_range or whole_numbers")
    statistic: float | None = Field(
        description="z (mean, spread), rows outside, or the share; null when infinite"
    )
    p_value: Share | None = Field(description="null for a rule without a test")
    effect: NonNegativeFloat
    floor: str = Field(description="the effect-size floor, in words")
    fails: bool


class Drift(OpenPart):
    """This input's rooms beside the training data's, with plain-words warnings."""

    input: DriftInput
    training: DriftTraining
    differs_markedly: bool
    verdict: str | None = Field(
        default=None, description="differs_markedly, too_few_rows or no_marked_difference"
    )
    alpha: Share | None = Field(default=None, description="the tests' significance level")
    checks: list[DriftCheck] | None = Field(
        default=None, description="each test with its statistic, p-value and effect"
    )
    warnings: list[str]


class Domain(OpenPart):
    """The plausible range of rooms: min exclusive, max inclusive."""

    min_exclusive: FiniteFloat
    max_inclusive: FiniteFloat


class ReportSettings(OpenPart):
    """The settings that shaped the run."""

    domain: Domain
    feature_column: str | None
    target_column: str | None = None
    on_drift: str | None = None
    engine: str
    chunk_rows: int
    new_only: bool
    model_version_requested: str
    output_formats: str = Field(
        "both",
        description="the prediction files the run wrote: both (predictions.parquet and "
        "predictions.csv), parquet or csv; absent before the setting existed (both)",
    )


class Failure(OpenPart):
    """Why a run failed after scoring (nothing was published), and the fix."""

    cause: str = Field(description="reject_budget or drift")
    reason: str
    fix: str


class RunWarning(OpenPart):
    """One warning of the run with its kind (batch.core.comparable)."""

    kind: str = Field(description="units, drift or target")
    message: str


class Comparability(OpenPart):
    """Whether the run is comparable with the others: inputs in the training units ($K) and
    drift within bounds (batch.core.comparable)."""

    comparable: bool
    reasons: list[str] = Field(description="the kinds that make it not comparable: units, drift")
    warnings: list[RunWarning]


class ReportChallenger(OpenPart):
    """A version scored in the shadow of the run's own (--challenger), on the same rows."""

    version: str
    rows: Count = Field(description="rows both versions scored")
    mean_abs_diff: NonNegativeFloat | None = Field(
        description="mean |challenger - main| of the predictions, $K; null: no rows"
    )
    max_abs_diff: NonNegativeFloat | None = Field(description="$K; null: no rows")
    bands_apart: Share | None = Field(
        description="share of rows whose two price bands do not overlap; null: a version "
        "without a band, or no rows"
    )
    true_price_rows: Count = Field(description="rows with a true price")
    mse: NonNegativeFloat | None = Field(description="the main version's; null: no true price")
    mae: NonNegativeFloat | None = None
    challenger_mse: NonNegativeFloat | None = None
    challenger_mae: NonNegativeFloat | None = None
    estimated_mae: NonNegativeFloat | None = Field(
        default=None,
        description="the main version's label-free estimate (null: the report has none)",
    )
    challenger_estimated_mae: NonNegativeFloat | None = Field(
        default=None, description="the challenger's, from its own error profile, the same way"
    )


class RunReport(OpenDocument):
    """report.json of a scoring run (runs/<id> when it succeeded, failed/<id> when refused)."""

    kind: ClassVar[str] = "report.json"
    fix: ClassVar[str] = (
        "restore it from a backup, or remove the run with 'python -m jobs.runs prune'"
    )
    digits: ClassVar[int | None] = 7  # as batch.ops.report.write rounds it

    run_id: str
    status: str = Field(description="succeeded or failed")
    started_at: UtcTime
    finished_at: UtcTime
    duration_seconds: NonNegativeFloat
    model_version: str
    model: ReportModel
    inputs: list[ReportInput]
    skipped_inputs: list[SkippedInput]
    rows_read: Count
    rows_scored: Count
    rows_rejected: Count
    reject_fraction: Share
    max_reject_fraction: Share
    rejects_by_reason: dict[str, Count]
    first_rejects: list[RejectedRow] | None = None
    out_of_range: OutOfRange
    prediction_summary: PredictionSummary
    metrics: RunMetrics | None
    target: TargetCheck | None = None
    interval: ReportInterval | None = None
    rejected_rooms: RejectedRooms | None = None
    drift: Drift
    warnings: list[str] | None = None
    settings: ReportSettings
    prediction_path: str
    phases_seconds: dict[str, NonNegativeFloat] | None = None
    failure: Failure | None = Field(default=None, description="null when the run succeeded")
    comparable: bool | None = Field(
        default=None,
        description="inputs in the training units and drift within bounds; null: an older report",
    )
    comparability: Comparability | None = None
    estimate: ReportEstimate | None = Field(
        default=None, description="the label-free error estimate; absent in older reports"
    )
    challenger: ReportChallenger | None = Field(
        default=None, description="the shadow-scored version (--challenger); absent: none"
    )
    logical_date: Day | None = Field(
        default=None, description="the day the input stands for (--logical-date); null: none"
    )
    supersedes: list[str] = Field(
        default_factory=list, description="runs of the same day this one re-scored (--force)"
    )
