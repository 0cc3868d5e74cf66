"""labels/<run_id>.json and labels/history.jsonl: writing a result once, and reading them back.

Writing the same result again changes nothing (no file is rewritten, no line is added); a
different result for a run replaces the old one and its history line says so. The run pages
(`jobs.runs show`, index.html) and the metrics call `realized_by_run` / `summary` to show the
realized numbers next to each run that has labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

from batch.core.documents import (
    DocumentError,
    LabelsLine,
    LabelsResult,
    RunReport,
    dump,
    parse_labels_result,
)
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)

FOLDER = "labels"
HISTORY = "history.jsonl"
METRICS_FILE = "batch_labels.prom"

Outcome = Literal["new", "replaced", "unchanged"]


def result_path(output_dir: Location, run_id: str) -> Location:
    return output_dir / FOLDER / f"{run_id}.json"


def read_result(output_dir: Location, run_id: str) -> LabelsResult | None:
    """A run's labels result (None: none, or damaged, which is logged once)."""
    path = result_path(output_dir, run_id)
    try:
        return parse_labels_result(path.read_bytes(), str(path))
    except FileNotFoundError:
        return None
    except DocumentError as exc:
        log.warning("%s", exc)
        return None


def write(output_dir: Location, result: LabelsResult) -> Outcome:
    """Write a run's result unless the same one is there; one history line when written."""
    old = read_result(output_dir, result.run_id)
    if old is not None and _same(old, result):
        return "unchanged"
    fs.ensure_dir(output_dir / FOLDER)
    fs.write_atomic(result_path(output_dir, result.run_id), dump(result))
    line = LabelsLine(
        run_id=result.run_id,
        joined_at=result.joined_at,
        label_sha256=[f.sha256 for f in result.label_files],
        rows_labelled=result.rows_labelled,
        realized_mae=result.realized.mae,
        coverage=result.realized.coverage,
        estimated_mae=result.estimated.mae,
        replaced=old is not None,
    )
    fs.append_line(output_dir / FOLDER / HISTORY, dump(line))
    return "new" if old is None else "replaced"


def is_current(output_dir: Location, result: LabelsResult) -> bool:
    """True when the run's stored result is this one (joined earlier with the same labels)."""
    old = read_result(output_dir, result.run_id)
    return old is not None and _same(old, result)


def _same(old: LabelsResult, new: LabelsResult) -> bool:
    """Equal but for when they were joined."""
    return dump(old) == dump(new.model_copy(update={"joined_at": old.joined_at}))


def realized_by_run(output_dir: Location) -> dict[str, LabelsResult]:
    """Every run's labels result, by run id (a damaged one is logged and left out)."""
    folder = output_dir / FOLDER
    try:
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    except OSError:
        return {}
    found = {}
    for name in sorted(names):
        if name.endswith(".json"):
            result = read_result(output_dir, name[: -len(".json")])
            if result is not None:
                found[result.run_id] = result
    return found


def summary(result: LabelsResult) -> str:
    """One line for `jobs.runs show`: realized MAE and coverage, estimated beside them."""
    real = result.realized
    text = f"labels ({result.rows_labelled:,} rows): realized MAE {real.mae:.3f}"
    if real.coverage is not None:
        text += f", band coverage {real.coverage:.1%}"
    if result.estimated.mae is not None:
        text += f"; estimated MAE {result.estimated.mae:.3f}"
    return text


def label_cells(output_dir: Location) -> dict[str, str]:
    """index.html's labels cell of each run with labels: realized MAE and band coverage."""
    cells = {}
    for run_id, result in realized_by_run(output_dir).items():
        real = result.realized
        cell = f"MAE {real.mae:.2f} ({result.rows_labelled:,} rows)"
        if real.coverage is not None:
            cell += f", {real.coverage:.1%} in band"
        cells[run_id] = cell
    return cells


def show_lines(output_dir: Location, run_id: str | None, report: RunReport | None) -> list[str]:
    """`jobs.runs show`'s lines for a run: its label-free estimate, and its labels result."""
    lines = []
    est = report.estimate if report is not None else None
    if est is not None and est.estimated_mae is not None:
        text = f"estimated MAE {est.estimated_mae:.3f} (label-free: {est.method})"
        if est.estimated_coverage is not None:
            text += f", estimated band coverage {est.estimated_coverage:.1%}"
        lines.append(text)
    elif est is not None and est.note:
        lines.append(f"no estimated MAE: {est.note}")
    result = read_result(output_dir, run_id) if run_id else None
    if result is not None:
        lines.append(summary(result))
    return lines


def write_metrics(metrics_dir: Location, results: dict[str, LabelsResult]) -> None:
    """batch_labels.prom: realized MAE, coverage and estimated MAE of each run with labels."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily as G

    mae = G(
        "batch_labels_realized_mae", "realized MAE ($K) of a run's labelled rows", labels=["run_id"]
    )
    cov = G(
        "batch_labels_coverage", "share of a run's true prices inside their band", labels=["run_id"]
    )
    est = G(
        "batch_labels_estimated_mae", "label-free estimated MAE ($K), same rows", labels=["run_id"]
    )
    rows = G("batch_labels_rows", "rows of a run with a true price", labels=["run_id"])
    for run_id, result in sorted(results.items()):
        mae.add_metric([run_id], result.realized.mae)
        rows.add_metric([run_id], result.rows_labelled)
        if result.realized.coverage is not None:
            cov.add_metric([run_id], result.realized.coverage)
        if result.estimated.mae is not None:
            est.add_metric([run_id], result.estimated.mae)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([mae, cov, est, rows]))
    fs.ensure_dir(metrics_dir)
    fs.write_atomic(metrics_dir / METRICS_FILE, generate_latest(registry))


class _Families:
    """A prometheus_client collector over ready-made gauge families."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)
