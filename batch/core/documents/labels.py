"""output/labels/<run_id>.json and output/labels/history.jsonl: true prices joined to a run.

`python -m jobs.labels` writes one result per run whose predictions carry the key, and one
history line each time a result is written (new, or replacing an older one).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from batch.core.documents._base import (
    Count,
    Document,
    FiniteFloat,
    NonNegativeFloat,
    Part,
    Sha256,
    Share,
    UtcTime,
)


class LabelFile(Part):
    """One label file as it was read."""

    path: str
    sha256: Sha256
    rows: Count = Field(description="rows read from it")


class KeyCounts(Part):
    """Keys that appear more than once; their rows are left out of the join (ambiguous)."""

    labels: Count = Field(description="distinct keys repeated in the label files")
    predictions: Count = Field(description="distinct keys repeated in the run's predictions")


class Realized(Part):
    """The errors of the labelled rows' predictions against their true prices ($K)."""

    mae: NonNegativeFloat
    rmse: NonNegativeFloat
    mse: NonNegativeFloat
    bias: FiniteFloat = Field(description="mean of predicted minus true: above 0 over-predicts")
    coverage: Share | None = Field(description="share inside their band; null: no band")
    band_rows: Count = Field(description="labelled rows with a band")
    level: Share | None = Field(description="the band's promised share (the model's)")


class Estimated(Part):
    """The label-free estimate beside the realized numbers."""

    available: bool
    method: str | None
    mae: NonNegativeFloat | None = Field(description="estimated MAE of the labelled rows")
    coverage: Share | None = Field(description="estimated coverage of the labelled rows")
    run_mae: NonNegativeFloat | None = Field(description="the run report's estimate, all rows")
    note: str | None = Field(description="why there is no estimate")


class RoomsDecile(Part):
    """The labelled rows of one rooms decile (cut at the labelled rows' own deciles)."""

    decile: int = Field(ge=1, le=10)
    rooms_min: FiniteFloat
    rooms_max: FiniteFloat
    rows: Count
    mae: NonNegativeFloat
    coverage: Share | None
    estimated_mae: NonNegativeFloat | None


class RoomsGroup(Part):
    """The labelled rows of one rooms group the band was calibrated on (--interval-groups)."""

    rooms_from: FiniteFloat | None = Field(description="the group's lower edge; null: no limit")
    rooms_to: FiniteFloat | None = Field(description="its upper edge (not in it); null: no limit")
    rows: Count
    mae: NonNegativeFloat | None = Field(description="null: no labelled row in the group")
    coverage: Share | None


class ChallengerRealized(Part):
    """The shadow-scored version's errors on the same labelled rows (a run with --challenger)."""

    version: str
    rows: Count = Field(description="labelled rows with a challenger prediction")
    mae: NonNegativeFloat
    mse: NonNegativeFloat
    main_mae: NonNegativeFloat = Field(description="the run's own version on the same rows")
    main_mse: NonNegativeFloat


class LabelsResult(Document):
    """output/labels/<run_id>.json: one run's predictions joined with true prices."""

    kind: ClassVar[str] = "labels result"
    fix: ClassVar[str] = "join the labels again with 'python -m jobs.labels' (it rewrites it)"
    digits: ClassVar[int | None] = 7

    run_id: str
    model_version: str
    joined_at: UtcTime
    label_files: list[LabelFile]
    key: list[str] = Field(description="the columns joined on")
    label_column: str
    unit: str | None = Field(description="the labels' unit as detected ($K); null: too few rows")
    rows_scored: Count = Field(description="rows in the run's predictions")
    rows_labelled: Count
    predictions_unlabelled: Count = Field(description="prediction rows without a label")
    labels_unmatched: Count = Field(description="label rows matching no prediction of the run")
    duplicate_keys: KeyCounts
    realized: Realized
    estimated: Estimated
    deciles: list[RoomsDecile]
    groups: list[RoomsGroup] | None = Field(
        None, description="per rooms group of a band calibrated per group; absent: one band"
    )
    challenger: ChallengerRealized | None = Field(
        None, description="the challenger's realized errors (--challenger); absent: none"
    )


class LabelsLine(Document):
    """One line of output/labels/history.jsonl: a labels result written (or replaced)."""

    kind: ClassVar[str] = "labels history line"
    fix: ClassVar[str] = "remove the line; the results in labels/ are unaffected"
    indent: ClassVar[int | None] = None
    line: ClassVar[bool] = True
    digits: ClassVar[int | None] = 7

    run_id: str
    joined_at: UtcTime
    label_sha256: list[Sha256]
    rows_labelled: Count
    realized_mae: NonNegativeFloat
    coverage: Share | None
    estimated_mae: NonNegativeFloat | None
    replaced: bool = Field(description="true: it replaced an earlier result for the run")
