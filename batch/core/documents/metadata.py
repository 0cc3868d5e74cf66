"""models/vN/metadata.json: one published model version, written once by the trainer.

Keys the first trainer already wrote are required. Four came later and are absent from
versions published before them, so they are optional (None when absent), never made up:
`baseline_mse` and `interval` (the sanity check and price bands), `fold` (the publish-time
verification that lets the scorer skip TensorFlow) and `error_profile` (the label-free estimate).
`interval.groups` is set only for a band calibrated per rooms group (absent: one global band).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from batch.core.documents._base import (
    Count,
    Document,
    FiniteFloat,
    NonNegativeFloat,
    Part,
    Sha256,
    Share,
    UtcTime,
    VersionName,
)


class Hyperparameters(Part):
    """The fit's settings (the Settings of the same names)."""

    optimizer: str
    learning_rate: FiniteFloat
    epochs: int
    batch_size: int
    validation_split: FiniteFloat
    seed: int


class TrainingData(Part):
    """Where the training rows came from and how they were split."""

    source: str = Field(description="the --data setting's file, or 'boston' for Keras's copy")
    sha256: str = Field(description="the data file's sha256 (may be empty when unknown)")
    rows_train: Count = Field(description="rows the fit updated on")
    rows_val: Count = Field(description="Keras's validation tail of the training split")
    rows_test: Count
    rows_dropped: Count
    test_split: FiniteFloat
    split_seed: int


class TrainingMetrics(Part):
    """The fit's final losses and its test errors (MSE in $K squared)."""

    loss: NonNegativeFloat
    val_loss: NonNegativeFloat | None = Field(description="null without validation rows")
    test_mse: NonNegativeFloat
    test_mae: NonNegativeFloat


class OlsReference(Part):
    """The least-squares line on the same rows, for comparison."""

    slope: FiniteFloat | None
    intercept: FiniteFloat | None
    test_mse: NonNegativeFloat | None


class FeatureRange(Part):
    """The training rows' least and greatest rooms (float32's shortest decimals)."""

    min: FiniteFloat
    max: FiniteFloat


class FeatureStats(Part):
    """The training rows' rooms: count, mean, standard deviation and quantiles."""

    count: Count
    mean: FiniteFloat
    std: NonNegativeFloat
    p05: FiniteFloat
    p25: FiniteFloat
    p50: FiniteFloat
    p75: FiniteFloat
    p95: FiniteFloat


class SoftwareVersions(Part):
    """The software that trained the model."""

    python: str
    tensorflow: str
    keras: str


class TrainingSample(Part):
    """Up to 2,000 training points (rooms, price) for the scorer's fit plot."""

    rm: list[FiniteFloat]
    medv: list[FiniteFloat]

    @model_validator(mode="after")
    def _same_length(self) -> TrainingSample:
        if len(self.rm) != len(self.medv):
            raise ValueError("must hold as many prices (medv) as rooms (rm)")
        return self


class BandScale(Part):
    """The hinge model of |residual| against rooms; the band's half-width is quantile x scale."""

    center: FiniteFloat
    intercept: FiniteFloat
    slope_below: NonNegativeFloat
    slope_above: NonNegativeFloat
    floor: NonNegativeFloat


class IntervalGroup(Part):
    """One rooms group of a band calibrated per group: its rooms and its own quantile."""

    rooms_from: FiniteFloat | None = Field(description="its lower edge (in it); null: no limit")
    rooms_to: FiniteFloat | None = Field(description="its upper edge (not in it); null: no limit")
    rows: Count = Field(description="calibration rows in it")
    guaranteed: bool = Field(description="false when too few calibration rows for the level")
    quantile_rank: Count
    quantile: NonNegativeFloat = Field(description="its half-width is quantile x scale(rooms)")


class IntervalGroups(Part):
    """The band calibrated per rooms group (--interval-groups): each row uses its group's
    quantile, the group being searchsorted(edges, rooms, side='right')."""

    by: Literal["rooms_decile"] = Field(description="how the groups were made")
    min_rows: Count = Field(description="the fewest calibration rows a group may hold")
    edges: list[FiniteFloat] = Field(description="rooms cut points between groups, ascending")
    groups: list[IntervalGroup]

    @model_validator(mode="after")
    def _edges_match(self) -> IntervalGroups:
        if len(self.groups) != len(self.edges) + 1:
            raise ValueError("must hold one group more than edges")
        if any(a >= b for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("edges must be strictly ascending")
        return self


class Interval(Part):
    """The calibrated price band (split-conformal, locally scaled) and its check on test rows."""

    method: str
    level: FiniteFloat = Field(
        gt=0, lt=1, description="the promised share of true prices inside the band"
    )
    calibration_rows: Count
    scale_rows: str = Field(description="'separate' (the fit's own rows) or 'calibration'")
    scale: BandScale
    lower_bound: FiniteFloat | None = Field(description="the least price (0), or null")
    guaranteed: bool = Field(description="false when too few calibration rows for the level")
    quantile_rank: Count
    quantile: NonNegativeFloat
    calibration_source: str = Field(description="'validation' rows, or 'test' without them")
    test_coverage: Share | None = Field(description="share of test prices inside; null: no rows")
    test_rows: Count
    test_mean_width: NonNegativeFloat | None
    groups: IntervalGroups | None = Field(
        None, description="per rooms group quantiles; absent: one band for all rooms"
    )


class ErrorProfile(Part):
    """What the label-free estimate of a run's error needs, from the calibration rows."""

    method: str = Field(description="the estimate's method, named in reports and the docs")
    source: str = Field(description="'validation' rows, or 'test' without them")
    rows: Count = Field(description="calibration rows it was fitted on")
    mae: NonNegativeFloat = Field(description="the calibration rows' mean absolute error ($K)")
    scale: BandScale = Field(description="expected |error| ($K) against rooms, as a hinge")
    coverage_edges: list[FiniteFloat] = Field(description="rooms cut points of the quartiles")
    coverage_bins: list[Share | None] = Field(
        description="each rooms quartile's share of calibration prices inside the band"
    )
    coverage_rows: list[Count] = Field(description="calibration rows in each quartile")

    @model_validator(mode="after")
    def _bins_match(self) -> ErrorProfile:
        n = len(self.coverage_edges) + 1
        if len(self.coverage_bins) != n or len(self.coverage_rows) != n:
            raise ValueError("must hold one coverage and one row count per rooms bin")
        return self


class Fold(Part):
    """The publish-time check that model.keras is a plain Dense(1) scored as x * w + b."""

    format: int = Field(description="the verification's format; older ones are not trusted")
    weight: FiniteFloat
    bias: FiniteFloat
    verified: bool
    probe_rows: Count
    max_gap_float32_eps: NonNegativeFloat | None
    bit_identical: bool
    model_sha256: Sha256


class ModelMetadata(Document):
    """One published model version: its weight and bias, how it was trained and on what, its
    test metrics, its price band and the fold check. Written once, last, by Registry.publish
    (it marks the version complete); read by scoring, the quality gate and `jobs.models`."""

    kind: ClassVar[str] = "metadata.json"
    fix: ClassVar[str] = "re-train or restore it (or score with another version: --model-version)"

    version: VersionName = Field(description="vN, set by the registry when it numbers it")
    created_at: UtcTime
    feature: str
    target: str
    weight: FiniteFloat
    bias: FiniteFloat
    hyperparameters: Hyperparameters
    data: TrainingData
    metrics: TrainingMetrics
    baseline_mse: NonNegativeFloat | None = Field(
        None, description="MSE of predicting the training mean; absent before the sanity check"
    )
    ols_reference: OlsReference
    interval: Interval | None = Field(None, description="absent before price bands existed")
    feature_range: FeatureRange
    feature_stats: FeatureStats
    versions: SoftwareVersions
    training_sample: TrainingSample
    fold: Fold | None = Field(None, description="absent before the fold was verified at publish")
    error_profile: ErrorProfile | None = Field(
        None, description="absent before the label-free estimate of a run's error existed"
    )
    model_sha256: Sha256 = Field(description="model.keras's sha256, checked before loading")
