"""report.html (from the report.html template), its plots (loss.png, fit.png) and the writing of
a run's report files.

The page is built from the typed report only; the tables' rows are prepared here so that the
template holds no logic beyond "show this when present".
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from batch.core.documents import ModelMetadata, RunReport, dump
from batch.core.documents.metadata import OlsReference, TrainingMetrics
from batch.core.features import MEANINGS
from batch.core.stats import RunStats
from batch.ops import pages, plots
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)

CAPTIONS = {
    "loss.png": "Training and validation loss per epoch",
    "fit.png": "Training data, the model's line and this run's rows",
}


def render(
    rep: RunReport,
    meta: ModelMetadata,
    stats: RunStats,
    version_dir: Location,
    plots: bool = True,
) -> dict[str, bytes]:
    """The plots (loss.png, fit.png) and report.html of a run; report.json is written by write()."""
    model = meta
    images: dict[str, bytes] = {}
    if plots:
        loss = _loss_png(version_dir, rep.model_version)
        if loss is not None:
            images["loss.png"] = loss
        images["fit.png"] = _fit_png(model, stats, rep)
    return {**images, "report.html": render_html(rep, images).encode()}


def write(folder: Location, rep: RunReport, files: dict[str, bytes]) -> None:
    """The rendered files, then report.json, into the run's (temporary) folder."""
    for name, data in files.items():
        fs.write_atomic(folder / name, data)
    fs.write_atomic(folder / "report.json", dump(rep))


# -- the page ---------------------------------------------------------------------------------


def render_html(rep: RunReport, images: dict[str, bytes]) -> str:
    """One self-contained page; every value that came from input files is escaped."""
    failure = rep.failure
    return pages.render(
        "report.html",
        rep=rep,
        ok=rep.status == "succeeded",
        cause="drift" if failure and failure.cause == "drift" else "reject budget exceeded",
        cards=_cards(rep),
        inputs=_input_rows(rep),
        reasons=[[r, n, MEANINGS[r]] for r, n in rep.rejects_by_reason.items()],
        first_rejects=[
            [r.source_file, r.source_row, r.raw_value, r.reason] for r in rep.first_rejects or []
        ],
        model_rows=_model_rows(rep),
        target_column=_target_column(rep),
        drift_rows=_drift_rows(rep),
        band_rows=_band_rows(rep),
        group_rows=_group_rows(rep),
        figures=[(CAPTIONS[name], images[name]) for name in CAPTIONS if name in images],
    )


def _cards(rep: RunReport) -> list[tuple[str, Any]]:
    share = f"{rep.reject_fraction:.2%} (budget {rep.max_reject_fraction:.0%})"
    return [
        ("rows read", rep.rows_read),
        ("rows scored", rep.rows_scored),
        ("rows rejected", rep.rows_rejected),
        ("reject share", share),
        ("out of training range", rep.out_of_range.rows),
        ("mean prediction ($K)", rep.prediction_summary.mean),
    ]


def _input_rows(rep: RunReport) -> list[list[Any]]:
    return [
        [
            i.path,
            i.format,
            i.rooms_column,
            i.target_column or "–",
            i.rows_read,
            i.rows_scored,
            i.rows_rejected,
            pages.pct(i.reject_fraction),
            i.sha256[:16] + "…",
            "; ".join(i.notes or []),
        ]
        for i in rep.inputs
    ]


def _model_rows(rep: RunReport) -> list[list[Any]]:
    """The model card: what the model is, what it was trained on and how well it did."""
    model = rep.model
    mm = model.metrics
    ols = model.ols_reference
    fr = model.feature_range
    hyper = model.hyperparameters.model_dump() if model.hyperparameters else {}
    return [
        ["version", model.version],
        ["created", model.created_at],
        ["formula", f"price ($K) = {_fixed(model.weight)} × rooms {_signed(model.bias)}"],
        ["training data", model.training_data],
        ["training range of rooms", f"{pages.num(fr and fr.min)} – {pages.num(fr and fr.max)}"],
        [
            "final loss / val_loss (MSE)",
            f"{pages.num(mm and mm.loss, 2)} / {pages.num(mm and mm.val_loss, 2)}",
        ],
        [
            "test MSE / MAE",
            f"{pages.num(mm and mm.test_mse, 2)} / {pages.num(mm and mm.test_mae, 2)}",
        ],
        [
            "least-squares reference (OLS)",
            f"price = {pages.num(ols and ols.slope, 4)} × rooms "
            f"{_signed(ols.intercept if ols else None)}, "
            f"test MSE {pages.num(ols and ols.test_mse, 2)}",
        ],
        ["model vs least squares", _versus_ols(mm, ols)],
        ["hyperparameters", ", ".join(f"{k} {v}" for k, v in hyper.items())],
        ["prediction path", rep.prediction_path],
    ]


def _versus_ols(mm: TrainingMetrics | None, ols: OlsReference | None) -> str:
    """How much worse the model is than the least-squares line, on the same test rows."""
    model_mse, ols_mse = (mm and mm.test_mse), (ols and ols.test_mse)
    if not model_mse or not ols_mse:
        return "–"
    gap = model_mse / ols_mse - 1
    if gap <= 0.01:
        return (
            f"test MSE {model_mse:.1f} vs {ols_mse:.1f}: as good as the least-squares line "
            "on the same test rows"
        )
    return (
        f"test MSE {model_mse:.1f} vs {ols_mse:.1f}: the model's squared errors are "
        f"{gap:.0%} larger than the least-squares line's on the same test rows"
    )


def _column_name(rep: RunReport) -> str | None:
    """The true-price column the metrics used (files that used different ones: all of them)."""
    column = rep.metrics.target_column if rep.metrics else None
    if not column:
        return None
    return column if isinstance(column, str) else ", ".join(column)


def _target_column(rep: RunReport) -> str:
    return _column_name(rep) or "the true price"


def _band_rows(rep: RunReport) -> list[list[Any]]:
    """The band's rows per rooms decile, as the page shows them."""
    found = rep.interval.deciles if rep.interval else None
    return [
        [
            d.rooms_min,
            d.rooms_max,
            d.rows,
            d.mean_width,
            d.rows_with_price,
            "-" if d.coverage is None else f"{d.coverage:.0%}",
        ]
        for d in found or []
    ]


def _group_rows(rep: RunReport) -> list[list[Any]]:
    """The band's rows per rooms group it was calibrated on (none for a global band)."""
    found = rep.interval.groups if rep.interval else None
    return [
        [
            "(lowest)" if g.rooms_from is None else g.rooms_from,
            "(highest)" if g.rooms_to is None else g.rooms_to,
            g.rows,
            g.mean_width,
            g.rows_with_price,
            "-" if g.coverage is None else f"{g.coverage:.0%}",
        ]
        for g in found or []
    ]


def _drift_rows(rep: RunReport) -> list[list[Any]]:
    di, dt_ = rep.drift.input, rep.drift.training
    return [
        [
            "this input",
            di.count,
            di.mean,
            di.std,
            di.min,
            di.max,
            pages.pct(di.share_outside_training_range),
        ],
        ["training", dt_.count, dt_.mean, dt_.std, dt_.min, dt_.max, pages.pct(0.0)],
    ]


def _fixed(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _signed(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{'+' if x >= 0 else '−'} {abs(x):.4f}"


# -- the plots --------------------------------------------------------------------------------


def _loss_png(version_dir: Location, version: str) -> bytes | None:
    png = version_dir / "loss.png"
    if png.is_file():
        return png.read_bytes()
    if not (version_dir / "history.csv").is_file():
        log.warning(
            "model %s has neither loss.png nor history.csv; the run has no loss plot", version
        )
        return None
    loss, val = [], []
    for line in (version_dir / "history.csv").read_text().splitlines()[1:]:
        _, a, b = line.split(",")
        loss.append(float(a))
        val.append(float(b))
    return plots.loss_png(loss, val, f"Loss per epoch (model {version})")


def _fit_note(rep: RunReport) -> str | None:
    m = rep.metrics
    if m is None:
        return None
    note = (
        f"on {m.rows:,} rows with {m.target_column or 'a true price'}: MSE {m.mse:.2f}  "
        f"MAE {m.mae:.2f}  RMSE {m.rmse:.2f}"
    )
    if m.interval_coverage is not None:
        note += f"  in band {m.interval_coverage:.0%}"
    return note


def _fit_png(meta: ModelMetadata, stats: RunStats, rep: RunReport) -> bytes:
    sample = stats.sample.cols
    actual = sample.get("actual", np.empty(0))
    has = np.isfinite(actual) if len(actual) else np.zeros(0, bool)
    shown = len(sample.get("rooms", []))
    title = f"Model {rep.model_version} on run {rep.run_id}"
    if shown < rep.rows_scored:
        title += f"\n(a random sample of {shown:,} of {rep.rows_scored:,} scored rows)"
    return plots.fit_png(
        meta.weight,
        meta.bias,
        meta.training_sample.rm,
        meta.training_sample.medv,
        title,
        scored_x=sample.get("rooms"),
        scored_pred=sample.get("pred"),
        actual_x=sample.get("rooms", np.empty(0))[has] if len(has) else None,
        actual_y=actual[has] if len(has) else None,
        note=_fit_note(rep),
        interval=meta.interval.model_dump() if meta.interval else None,
        ols=meta.ols_reference.model_dump(),
        target=_column_name(rep),
    )
