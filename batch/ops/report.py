"""The run report: report.json (machine-readable) and report.html (self-contained, for analysts)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from batch.core.features import MEANINGS
from batch.core.jsontext import dumps
from batch.core.stats import FileStats, RunStats
from batch.ops import plots
from batch.storage.atomic import write_atomic
from batch.storage.location import Location

log = logging.getLogger(__name__)

DRIFT_MEAN_SD = 0.5  # |input mean - training mean| in training standard deviations
DRIFT_SPREAD = (0.5, 2.0)  # input std / training std outside this is marked
DRIFT_OUTSIDE = 0.05  # share of rows outside the training range
DRIFT_MIN_ROWS = 30  # fewer scored rows than this: too few to say there is no drift
WHOLE_SHARE = 0.9  # this share of whole-number rooms: a feed of rooms per house, not averages
REJECTED_NUMBERS_SHARE = 0.05  # rows rejected while still numbers: a unit problem, not typos
UNIT_RATIO = 5.0  # true prices this many times off the predictions (either way): another unit


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def build(
    *,
    run_id: str,
    status: str,
    started: dt.datetime,
    finished: dt.datetime,
    version: str,
    meta: dict,
    stats: RunStats,
    files: list[FileStats],
    skipped: list[dict[str, str]],
    settings,
    predictor: str,
    reject_fraction: float,
    phases: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The report.json content: the run's outcome, its inputs, model, predictions and drift."""
    n = stats.scored
    sample = stats.sample
    preds = sample.cols.get("pred", np.empty(0))
    estimated = n > len(preds)
    summary = {
        "count": n,
        "mean": _num(stats.pred_sum / n) if n else None,
        "min": _num(stats.pred_min) if n else None,
        "p50": _num(float(np.median(preds))) if len(preds) else None,
        "max": _num(stats.pred_max) if n else None,
        "estimated": ["p50"] if estimated else [],
        "sample_size": int(len(preds)),
    }
    band = meta.get("interval") or None
    target = target_check(stats, files, settings)
    metrics = None
    if stats.actual_n:
        mse = stats.sq_err / stats.actual_n
        metrics = {
            "mse": mse,
            "mae": stats.abs_err / stats.actual_n,
            "rmse": math.sqrt(mse),
            "rows": stats.actual_n,
            "target_column": target["column"],
            "comparable": target["comparable"],
            "scale_ratio": target["scale_ratio"],
            "interval_level": band.get("level") if band else None,
            "interval_coverage": (
                stats.band_covered / stats.band_rows if stats.band_rows else None
            ),
            "interval_rows": stats.band_rows,
        }
    rejected = rejected_rooms(stats)
    drift_ = drift(stats, meta, rejected)
    interval = (
        {
            "available": True,
            "level": band.get("level"),
            "method": band.get("method"),
            "calibration_rows": band.get("calibration_rows"),
            "test_coverage": band.get("test_coverage"),
        }
        if band
        else {
            "available": False,
            "level": None,
            "note": f"model {version} was trained before price bands existed, so "
            "predicted_low_k and predicted_high_k are empty; retrain to get them",
        }
    )
    model = {
        "version": version,
        "created_at": meta.get("created_at"),
        "weight": meta.get("weight"),
        "bias": meta.get("bias"),
        "metrics": meta.get("metrics"),
        "ols_reference": meta.get("ols_reference"),
        "feature_range": meta.get("feature_range"),
        "hyperparameters": meta.get("hyperparameters"),
        "training_data": (meta.get("data") or {}).get("source"),
        "model_sha256": meta.get("model_sha256"),
    }
    return {
        "run_id": run_id,
        "status": status,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "model_version": version,
        "model": model,
        "inputs": [
            {
                "path": f.path,
                "sha256": f.sha256,
                "format": f.format,
                "rows_read": f.rows_read,
                "rows_scored": f.rows_scored,
                "rows_rejected": f.rows_rejected,
                "reject_fraction": f.rows_rejected / f.rows_read if f.rows_read else 0.0,
                "rooms_column": f.rooms_column,
                "target_column": f.target_column,
                "notes": f.notes,
            }
            for f in files
        ],
        "skipped_inputs": skipped,
        "rows_read": stats.scored + stats.rejected,
        "rows_scored": stats.scored,
        "rows_rejected": stats.rejected,
        "reject_fraction": reject_fraction,
        "max_reject_fraction": settings.max_reject_fraction,
        "rejects_by_reason": dict(stats.rejects),
        "first_rejects": stats.first_rejects,
        "out_of_range": {
            "rows": stats.out_of_range,
            "below": stats.below_range,
            "above": stats.above_range,
            "training_range": meta.get("feature_range"),
        },
        "prediction_summary": summary,
        "metrics": metrics,
        "target": target,
        "interval": interval,
        "rejected_rooms": rejected,
        "drift": drift_,
        # Every warning of the run, once, in plain words (also in the JSON summary line).
        "warnings": drift_["warnings"] + target["warnings"],
        "settings": {
            "domain": {"min_exclusive": settings.domain_min, "max_inclusive": settings.domain_max},
            "feature_column": settings.feature_column,
            "target_column": settings.target_column,
            "on_drift": settings.on_drift,
            "engine": settings.engine,
            "chunk_rows": settings.chunk_rows,
            "new_only": settings.new_only,
            "model_version_requested": settings.model_version,
        },
        "prediction_path": predictor,
        # Seconds per phase of the run so far (model, plan, stream, finalize, report); the
        # publish step that follows is in the JSON summary line.
        "phases_seconds": dict(phases or {}),
    }


def budget_failure(rep: dict[str, Any], over_files: list[FileStats]) -> dict[str, str]:
    """Why a run over its reject budget failed, and the fix that fits what was rejected."""
    budget = rep["max_reject_fraction"]
    if rep["reject_fraction"] > budget:
        reason = (
            f"{rep['rows_rejected']:,} of {rep['rows_read']:,} rows "
            f"({rep['reject_fraction']:.1%}) were rejected, over the budget of {budget:.1%}"
        )
    else:
        names = ", ".join(f"{f.path!r} ({f.rows_rejected / f.rows_read:.1%})" for f in over_files)
        reason = (
            f"the run as a whole is within the reject budget of {budget:.1%}, but "
            f"{names} on {'its' if len(over_files) == 1 else 'their'} own "
            f"{'is' if len(over_files) == 1 else 'are'} over it"
        )
    reasons = rep["rejects_by_reason"]
    top = max(reasons, key=reasons.get) if rep["rows_rejected"] else None
    if top == "out_of_domain":
        fix = (
            "most rejected rows hold numbers outside the plausible range of rooms: check the "
            "units of the feed before anything else"
        )
    elif top in ("missing", "not_a_number", "non_finite"):
        fix = (
            f"most rejected rows are {top.replace('_', ' ')}: check how the feed fills its "
            "rooms column (the wrong column? --feature-column) and fix the source"
        )
    else:
        fix = "fix the input, or raise --max-reject-fraction if such rows are expected"
    return {"cause": "reject_budget", "reason": reason, "fix": fix}


def drift_failure(rep: dict[str, Any]) -> dict[str, str]:
    """Why a run failed on drift (--on-drift fail), and what to do about it."""
    return {
        "cause": "drift",
        "reason": "the input differs markedly from the data the model was trained on "
        f"({len(rep['drift']['warnings']) - 1} warning(s)) and --on-drift fail was "
        "asked for",
        "fix": "check the feed against the warnings in the report, retrain on data like it, "
        "or score with --on-drift warn",
    }


def target_check(stats: RunStats, files: list[FileStats], settings) -> dict[str, Any]:
    """Which true-price column was used, and whether its prices are in the model's unit ($K)."""
    used = sorted({f.target_column for f in files if f.target_column})
    requested = settings.target_column
    warnings: list[str] = []
    if (
        not used
        and requested
        and "target_column" in settings.model_fields_set
        and any(f.rooms_column for f in files)
    ):
        warnings.append(
            f"No input has a column named {requested!r} (--target-column), so no "
            "MSE/MAE could be measured; check the spelling."
        )
    sample = stats.sample.cols
    actual, pred = sample.get("actual", np.empty(0)), sample.get("pred", np.empty(0))
    ok = np.isfinite(actual) & np.isfinite(pred) & (pred > 0) if len(actual) else np.zeros(0, bool)
    ratio, comparable = None, None
    if ok.sum() >= 5:
        ratio = float(np.median(actual[ok] / pred[ok]))
        comparable = 1 / UNIT_RATIO <= ratio <= UNIT_RATIO
        if comparable and ok.sum() >= 20:
            spread = float(np.std(actual[ok]) / max(np.std(pred[ok]), 1e-9))
            comparable = spread >= 1 / UNIT_RATIO  # log prices: right size, almost no spread
        if not comparable:
            warnings.append(
                f"The true prices in {', '.join(repr(u) for u in used)} are about {ratio:.3g} "
                f"times the predictions, which are in thousands of dollars ($K): they look like "
                f"{_likely_unit(ratio, actual[ok])}. MSE and MAE compare different units and are "
                "not comparable; convert the column to $K."
            )
    return {
        "column": used[0] if len(used) == 1 else (used or None),
        "requested": requested,
        "scale_ratio": ratio,
        "comparable": comparable,
        "warnings": warnings,
    }


def _likely_unit(ratio: float, actual: np.ndarray) -> str:
    if 300 <= ratio <= 3000:
        return "dollars rather than $K"
    if 0.003 <= ratio <= 0.03:
        return "hundreds of thousands of dollars ($100K) rather than $K"
    if float(np.median(actual)) < 20 and float(np.std(actual)) < 2:
        return "logarithms of prices"
    return "another unit or scale"


def rejected_rooms(stats: RunStats) -> dict[str, Any]:
    """The rooms values that were rejected but are numbers (out of the domain): count, min, p50, max."""
    values = stats.rejected_sample.cols.get("rooms", np.empty(0))
    n = stats.rejected_numbers
    return {
        "count": n,
        "min": stats.rejected_min if n else None,
        "p50": float(np.median(values)) if len(values) else None,
        "max": stats.rejected_max if n else None,
        "estimated": ["p50"] if n > len(values) else [],
    }


def drift(stats: RunStats, meta: dict, rejected: dict[str, Any] | None = None) -> dict[str, Any]:
    """The input's rooms beside the training data's, with plain-words warnings when they differ.

    It looks at the whole feed: the scored rows, and the rejected rows that are still numbers.
    """
    train = dict(meta.get("feature_stats") or {})
    fr = meta.get("feature_range") or {}
    n = stats.scored
    current: dict[str, Any] = {"count": n}
    warnings: list[str] = []
    if n:
        mean = stats.rooms_sum / n
        var = max(stats.rooms_sq / n - mean**2, 0.0)
        current.update(
            mean=mean,
            std=math.sqrt(var),
            min=stats.rooms_min,
            max=stats.rooms_max,
            share_outside_training_range=stats.out_of_range / n,
            share_whole_numbers=stats.rooms_whole / n,
        )
        t_mean, t_std = train.get("mean"), train.get("std")
        if t_mean is not None and t_std:
            gap = abs(mean - t_mean) / t_std
            current["mean_gap_in_training_sd"] = gap
            if gap > DRIFT_MEAN_SD:
                warnings.append(
                    f"The average number of rooms in this input ({mean:.2f}) is {gap:.1f} training "
                    f"standard deviations away from the training data's ({t_mean:.2f})."
                )
            if n >= DRIFT_MIN_ROWS and t_std > 0:
                ratio = math.sqrt(var) / t_std
                current["spread_ratio"] = ratio
                if not DRIFT_SPREAD[0] <= ratio <= DRIFT_SPREAD[1]:
                    warnings.append(
                        f"The spread of rooms in this input (sd {math.sqrt(var):.2f}) is "
                        f"{ratio:.1f} times the training data's (sd {t_std:.2f})."
                    )
        share = stats.out_of_range / n
        if share > DRIFT_OUTSIDE and fr:
            warnings.append(
                f"{share:.0%} of the scored rows have rooms outside the training range "
                f"{fr['min']:.2f}-{fr['max']:.2f}; there the model extrapolates a straight line and "
                "its prices deserve less trust."
            )
        if n >= DRIFT_MIN_ROWS and stats.rooms_whole / n >= WHOLE_SHARE:
            warnings.append(
                f"{stats.rooms_whole / n:.0%} of the rooms values are whole numbers; a suburb's "
                "average number of rooms almost never is: the feed may hold rooms per house "
                "rather than suburb averages."
            )
    read = stats.scored + stats.rejected
    if rejected and read and rejected["count"] / read > REJECTED_NUMBERS_SHARE:
        warnings.append(
            f"{rejected['count']:,} rows ({rejected['count'] / read:.0%}) were rejected although "
            f"their rooms are numbers (from {rejected['min']:.4g} to {rejected['max']:.4g}, "
            f"median {rejected['p50']:.4g}), outside the plausible range: the feed may use another "
            "unit (rooms squared? rooms per building?)."
        )
    if warnings:
        warnings.append(
            "The input differs markedly from what the model was trained on: check the "
            "source data, or retrain on data like it."
        )
    verdict = (
        "differs_markedly"
        if warnings
        else ("too_few_rows" if n < DRIFT_MIN_ROWS else "no_marked_difference")
    )
    training = {k: train.get(k) for k in ("count", "mean", "std")}
    training.update(min=fr.get("min"), max=fr.get("max"), share_outside_training_range=0.0)
    return {
        "input": current,
        "training": training,
        "differs_markedly": bool(warnings),
        "verdict": verdict,
        "warnings": warnings,
    }


def render(
    rep: dict, meta: dict, stats: RunStats, version_dir: Location, plots: bool = True
) -> dict[str, bytes]:
    """The plots (loss.png, fit.png) and report.html of a run; report.json is written by write()."""
    images: dict[str, bytes] = {}
    if plots:
        loss = _loss_png(version_dir, rep["model_version"])
        if loss is not None:
            images["loss.png"] = loss
        images["fit.png"] = _fit_png(meta, stats, rep)
    return {**images, "report.html": render_html(rep, images).encode()}


def write(folder: Location, rep: dict, files: dict[str, bytes]) -> None:
    """The rendered files, then report.json, into the run's (temporary) folder."""
    for name, data in files.items():
        write_atomic(folder / name, data)
    write_atomic(folder / "report.json", dumps(rep, indent=2, digits=7) + "\n")


def _loss_png(version_dir: Path, version: str) -> bytes | None:
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


def _fit_png(meta: dict, stats: RunStats, rep: dict) -> bytes:
    sample = stats.sample.cols
    train = meta.get("training_sample") or {"rm": [], "medv": []}
    actual = sample.get("actual", np.empty(0))
    has = np.isfinite(actual) if len(actual) else np.zeros(0, bool)
    note = None
    if rep["metrics"]:
        m = rep["metrics"]
        note = (
            f"on {m['rows']:,} rows with {m.get('target_column') or 'a true price'}: MSE {m['mse']:.2f}  MAE {m['mae']:.2f}  "
            f"RMSE {m['rmse']:.2f}"
        )
        if m.get("interval_coverage") is not None:
            note += f"  in band {m['interval_coverage']:.0%}"
    shown = len(sample.get("rooms", []))
    title = f"Model {rep['model_version']} on run {rep['run_id']}"
    if shown < rep["rows_scored"]:
        title += f"\n(a random sample of {shown:,} of {rep['rows_scored']:,} scored rows)"
    return plots.fit_png(
        float(meta["weight"]),
        float(meta["bias"]),
        train["rm"],
        train["medv"],
        title,
        scored_x=sample.get("rooms"),
        scored_pred=sample.get("pred"),
        actual_x=sample.get("rooms", np.empty(0))[has] if len(has) else None,
        actual_y=actual[has] if len(has) else None,
        note=note,
        interval=meta.get("interval") or None,
        ols=meta.get("ols_reference"),
        target=rep["metrics"]["target_column"] if rep["metrics"] else None,
    )


# -- HTML -------------------------------------------------------------------------------------------

# The look both pages share (report.html and the run history's index.html).
PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1rem 1.5rem;color:#222;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:1.8rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17702a;font-weight:600}.bad{color:#b00020;font-weight:600}
img{max-width:100%;height:auto;border:1px solid #eee}.plots{display:flex;flex-wrap:wrap;gap:1rem}
.plots figure{flex:1 1 480px;margin:0}code{font-size:.85rem;word-break:break-all}
"""
CSS = (
    PAGE_CSS
    + """
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem .8rem;margin:.6rem 0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #ddd;border-radius:6px;
padding:.5rem .9rem;min-width:9rem}.card b{display:block;font-size:1.3rem}
"""
)


def escape(value: Any) -> str:
    """A value as HTML text (None as empty); every value from inputs goes through it."""
    return html.escape("" if value is None else str(value), quote=True)


_e = escape


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{_f(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(rep: dict, images: dict[str, bytes]) -> str:
    """One self-contained page; every value that came from input files is escaped."""
    ok = rep["status"] == "succeeded"
    failure = rep.get("failure") or {}
    cause = "drift" if failure.get("cause") == "drift" else "reject budget exceeded"
    status = (
        "<span class='ok'>succeeded</span>"
        if ok
        else f"<span class='bad'>failed: {cause} — nothing was published</span>"
    )
    model, summary, drift_ = rep["model"], rep["prediction_summary"], rep["drift"]
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Scoring run {_e(rep['run_id'])}</title><style>{CSS}</style></head><body>",
        f"<h1>House-price scoring run {_e(rep['run_id'])}</h1>",
        f"<p>Status: {status}. Model <b>{_e(rep['model_version'])}</b>. Started "
        f"{_e(rep['started_at'])}, finished {_e(rep['finished_at'])} "
        f"({_f(rep['duration_seconds'], 1)} s).</p>",
    ]
    cards = [
        ("rows read", rep["rows_read"]),
        ("rows scored", rep["rows_scored"]),
        ("rows rejected", rep["rows_rejected"]),
        ("reject share", f"{rep['reject_fraction']:.2%} (budget {rep['max_reject_fraction']:.0%})"),
        ("out of training range", rep["out_of_range"]["rows"]),
        ("mean prediction ($K)", summary["mean"]),
    ]
    parts.append(
        "<h2>Summary</h2><div class='cards'>"
        + "".join(f"<div class='card'>{_e(k)}<b>{_f(v, 2)}</b></div>" for k, v in cards)
        + "</div>"
    )
    if failure:
        parts.append(
            f"<div class='warn'><b>Why:</b> {_e(failure['reason'])}.<br><b>What to "
            f"do:</b> {_e(failure['fix'])}.</div>"
        )
    for w in rep.get("warnings", []):  # every warning once, here; the sections refer to them
        parts.append(f"<div class='warn'>{_e(w)}</div>")

    parts.append(
        "<h2>Inputs</h2>"
        + _table(
            [
                "file",
                "format",
                "rooms column",
                "price column",
                "rows read",
                "scored",
                "rejected",
                "reject share",
                "sha256",
                "notes",
            ],
            [
                [
                    i["path"],
                    i["format"],
                    i.get("rooms_column"),
                    i.get("target_column") or "–",
                    i["rows_read"],
                    i["rows_scored"],
                    i["rows_rejected"],
                    _pct(i.get("reject_fraction")),
                    i["sha256"][:16] + "…",
                    "; ".join(i.get("notes") or []),
                ]
                for i in rep["inputs"]
            ],
            numeric={4, 5, 6},
        )
    )
    if rep["skipped_inputs"]:
        parts.append(
            "<p>Skipped, already scored by an earlier run (--new-only): "
            + ", ".join(f"<code>{_e(s['path'])}</code>" for s in rep["skipped_inputs"])
            + "</p>"
        )

    parts.append(
        "<h2>Rejected rows by reason</h2>"
        + _table(
            ["reason", "rows", "meaning"],
            [[r, n, MEANINGS[r]] for r, n in rep["rejects_by_reason"].items()],
            numeric={1},
        )
        + "<p>Every rejected row is listed in <code>rejects.csv</code> with its file, row number "
        "and raw value.</p>"
    )
    rr = rep.get("rejected_rooms") or {}
    if rr.get("count"):
        parts.append(
            f"<p>{rr['count']:,} rejected rows still hold a number for rooms: from "
            f"{_f(rr['min'], 3)} to {_f(rr['max'], 3)}, median {_f(rr['p50'], 3)}.</p>"
        )
    if rep["first_rejects"]:
        parts.append(
            f"<p>The first {len(rep['first_rejects'])} rejected rows:</p>"
            + _table(
                ["file", "row", "raw value", "reason"],
                [
                    [r["source_file"], r["source_row"], r["raw_value"], r["reason"]]
                    for r in rep["first_rejects"]
                ],
                numeric={1},
            )
        )

    mm = model.get("metrics") or {}
    ols = model.get("ols_reference") or {}
    fr = model.get("feature_range") or {}
    parts.append(
        "<h2>Model card</h2>"
        + _table(
            ["field", "value"],
            [
                ["version", model["version"]],
                ["created", model.get("created_at")],
                ["formula", f"price ($K) = {model['weight']:.4f} × rooms {_signed(model['bias'])}"],
                ["training data", model.get("training_data")],
                ["training range of rooms", f"{_f(fr.get('min'))} – {_f(fr.get('max'))}"],
                [
                    "final loss / val_loss (MSE)",
                    f"{_f(mm.get('loss'), 2)} / {_f(mm.get('val_loss'), 2)}",
                ],
                ["test MSE / MAE", f"{_f(mm.get('test_mse'), 2)} / {_f(mm.get('test_mae'), 2)}"],
                [
                    "least-squares reference (OLS)",
                    f"price = {_f(ols.get('slope'), 4)} × rooms {_signed(ols.get('intercept', 0))}, "
                    f"test MSE {_f(ols.get('test_mse'), 2)}",
                ],
                ["model vs least squares", _versus_ols(mm, ols)],
                [
                    "hyperparameters",
                    ", ".join(f"{k} {v}" for k, v in (model.get("hyperparameters") or {}).items()),
                ],
                ["prediction path", rep.get("prediction_path")],
            ],
        )
    )

    est = (
        f" (p50 estimated from a random sample of {summary['sample_size']:,} rows)"
        if summary["estimated"]
        else ""
    )
    parts.append(
        "<h2>Predictions ($K)</h2>"
        + _table(
            ["count", "mean", "min", "p50", "max"],
            [[summary["count"], summary["mean"], summary["min"], summary["p50"], summary["max"]]],
            numeric={0, 1, 2, 3, 4},
        )
        + f"<p>{_e(est)}</p>"
    )
    band = rep.get("interval") or {}
    if band.get("available"):
        parts.append(
            f"<p>Every prediction has a price band (<code>predicted_low_k</code> – "
            f"<code>predicted_high_k</code>) calibrated so that about "
            f"{band['level']:.0%} of true prices of suburbs like the training data "
            "fall inside it; it is wider where the model is less sure.</p>"
        )
    else:
        parts.append(f"<div class='warn'>{_e(band.get('note'))}</div>")
    if rep["metrics"]:
        m = rep["metrics"]
        covered = (
            ""
            if m.get("interval_coverage") is None
            else (
                f" {m['interval_coverage']:.1%} of them lie inside their price band (promised: "
                f"{m['interval_level']:.0%})."
            )
        )
        column = m.get("target_column") or "the true price"
        column = column if isinstance(column, str) else ", ".join(column)
        caveat = (
            ""
            if m.get("comparable") is not False
            else " These are NOT comparable with the model's $K: see the warning above."
        )
        parts.append(
            f"<p>The input carries the true price (<code>{_e(column)}</code>) for "
            f"{m['rows']:,} scored rows: MSE {m['mse']:.3f}, MAE {m['mae']:.3f}, "
            f"RMSE {m['rmse']:.3f}.{_e(covered)}{_e(caveat)}</p>"
        )

    di, dt_ = drift_["input"], drift_["training"]
    parts.append(
        "<h2>Drift: rooms in this input vs the training data</h2>"
        + _table(
            ["", "rows", "mean", "sd", "min", "max", "share outside training range"],
            [
                [
                    "this input",
                    di.get("count"),
                    di.get("mean"),
                    di.get("std"),
                    di.get("min"),
                    di.get("max"),
                    _pct(di.get("share_outside_training_range")),
                ],
                [
                    "training",
                    dt_.get("count"),
                    dt_.get("mean"),
                    dt_.get("std"),
                    dt_.get("min"),
                    dt_.get("max"),
                    _pct(0.0),
                ],
            ],
            numeric={1, 2, 3, 4, 5},
        )
    )
    verdict = drift_.get("verdict")
    parts.append(
        "<p class='ok'>No marked difference.</p>"
        if verdict == "no_marked_difference"
        else f"<p>Too few scored rows ({di.get('count', 0):,}) to judge drift: no verdict.</p>"
        if verdict == "too_few_rows"
        else "<p class='bad'>The input differs markedly: see the warnings at the top.</p>"
    )

    if images:
        parts.append("<h2>Plots</h2><div class='plots'>")
        for name, caption in (
            ("loss.png", "Training and validation loss per epoch"),
            ("fit.png", "Training data, the model's line and this run's rows"),
        ):
            if name in images:
                data = base64.b64encode(images[name]).decode()
                parts.append(
                    f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,"
                    f"{data}'><figcaption>{_e(caption)}</figcaption></figure>"
                )
        parts.append("</div>")
    if ok:
        parts.append(
            "<h2>Files of this run</h2><p><code>predictions.parquet/</code> (a folder "
            "of Parquet parts), <code>predictions.csv</code> (spreadsheet-safe), "
            "<code>rejects.csv</code>, <code>report.json</code>, <code>loss.png</code>, "
            "<code>fit.png</code>; the data dictionary is in the project README.</p>"
        )
    else:
        parts.append(
            "<h2>Files of this run</h2><p>Kept for diagnosis only (nothing was "
            "published): <code>rejects.csv</code>, <code>report.json</code> and this "
            "page.</p>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _versus_ols(mm: dict, ols: dict) -> str:
    """How much worse the model is than the least-squares line, on the same test rows."""
    model_mse, ols_mse = mm.get("test_mse"), ols.get("test_mse")
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


def _signed(x: float) -> str:
    return f"{'+' if x >= 0 else '−'} {abs(x):.4f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"
