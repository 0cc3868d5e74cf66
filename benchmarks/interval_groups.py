"""Per-group price bands against the global band, where the numbers are not noise.

Repeats fit-calibrate-score over many seeded random 80/20 splits of the 506 Boston rows and
reports, per rooms quartile of each split's test rows, the mean coverage (and mean width) of the
global band (`--interval-groups none`) and of the per-group band (`rooms_decile`).

Each split mirrors the trainer (batch.model.metadata.calibrate_band): shuffle, the first 80% are
the training split and the rest the test rows; of the training split, the first
floor(n x (1 - 0.3)) rows are fitted and the last 30% (Keras's validation tail) calibrate the
band, with the scale model fitted on the fitted rows' residuals. The one difference: the line is
the closed-form least-squares fit of price on rooms over the fitted rows, not 101 epochs of Keras
(seconds instead of hours; the band's method does not depend on how the line was found).

    python benchmarks/interval_groups.py                       # Keras's copy of Boston
    python benchmarks/interval_groups.py --data ~/.keras/datasets/boston_housing.npz
    python benchmarks/interval_groups.py --data boston.csv --splits 200 --level 0.9
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from batch.core import intervals  # noqa: E402

ROOMS_INDEX = 5  # rm among Boston's 13 features
TEST_SPLIT = 0.2  # batch.model.datasets.TEST_SPLIT
VALIDATION_SPLIT = 0.3  # the trainer's default --validation-split
QUARTILES = 4
METHODS = ("none", "rooms_decile")


def load(data: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(rooms, price) of every Boston row: from an .npz (Keras's file), a CSV with rm and medv
    (any case), or Keras's loader (downloads only when not cached)."""
    if data is None:
        from keras.datasets import boston_housing

        (x, y), _ = boston_housing.load_data(test_split=0.0)
        return x[:, ROOMS_INDEX].astype("float64"), y.astype("float64")
    path = Path(data)
    if path.suffix == ".npz":
        with np.load(path) as npz:
            return npz["x"][:, ROOMS_INDEX].astype("float64"), npz["y"].astype("float64")
    import pandas as pd

    frame = pd.read_csv(path)
    frame.columns = [c.lower() for c in frame.columns]
    return frame["rm"].to_numpy("float64"), frame["medv"].to_numpy("float64")


def one_split(
    x: np.ndarray, y: np.ndarray, seed: int, level: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each method: (coverage, mean width) per rooms quartile of this split's test rows."""
    idx = np.random.RandomState(seed).permutation(len(x))
    cut = int(len(x) * (1 - TEST_SPLIT))
    train, test = idx[:cut], idx[cut:]
    rows_fit = int(np.floor(len(train) * (1 - VALIDATION_SPLIT)))
    fit, cal = train[:rows_fit], train[rows_fit:]
    slope, intercept = np.polyfit(x[fit], y[fit], 1)

    def predict(rows: np.ndarray) -> np.ndarray:
        return (slope * x[rows] + intercept).astype("float32")

    quartiles = np.array_split(np.argsort(x[test], kind="stable"), QUARTILES)
    found = {}
    for method in METHODS:
        params = intervals.calibrate(
            x[cal],
            y[cal],
            predict(cal),
            level,
            x_scale=x[fit],
            residuals_scale=y[fit] - predict(fit),
            lower_bound=0.0,
            groups=method,
        )
        bounds = intervals.band(x[test], predict(test), params)
        assert bounds is not None
        low, high = (np.asarray(b, "float64") for b in bounds)
        inside = (y[test] >= low) & (y[test] <= high)
        width = high - low
        found[method] = (
            np.array([inside[q].mean() for q in quartiles]),
            np.array([width[q].mean() for q in quartiles]),
        )
    return found


def run(x: np.ndarray, y: np.ndarray, splits: int, level: float) -> dict[str, np.ndarray]:
    """Per method: mean coverage and mean width per quartile (a 2 x QUARTILES array)."""
    sums = {m: np.zeros((2, QUARTILES)) for m in METHODS}
    for seed in range(splits):
        for method, (cov, width) in one_split(x, y, seed, level).items():
            sums[method] += np.vstack([cov, width])
    return {m: s / splits for m, s in sums.items()}


def table(results: dict[str, np.ndarray], level: float) -> str:
    """The markdown tables: coverage per quartile (with the worst shortfall), then widths."""
    head = "| band | " + " | ".join(f"Q{i + 1}" for i in range(QUARTILES))
    lines = [
        f"Mean coverage per rooms quartile of the test rows (level {level:g}):",
        "",
        head + " | worst shortfall |",
        "| --- |" + " ---: |" * (QUARTILES + 1),
    ]
    for method, values in results.items():
        cov = values[0]
        short = max(0.0, level - float(cov.min()))
        cells = " | ".join(f"{c:.3f}" for c in cov)
        lines.append(f"| {method} | {cells} | {short:.3f} |")
    lines += ["", "Mean band width ($K) per rooms quartile:", "", head + " |"]
    lines.append("| --- |" + " ---: |" * QUARTILES)
    for method, values in results.items():
        lines.append(f"| {method} | " + " | ".join(f"{w:.1f}" for w in values[1]) + " |")
    return "\n".join(lines)


def verdict(results: dict[str, np.ndarray], level: float) -> list[str]:
    """The targets: per-group coverage >= level - 0.01 in every quartile, and a worst-quartile
    shortfall smaller than the global band's."""
    grouped, single = results["rooms_decile"][0], results["none"][0]
    short_g, short_n = max(0.0, level - grouped.min()), max(0.0, level - single.min())
    return [
        f"per-group coverage >= {level - 0.01:.2f} in every quartile: "
        f"{'yes' if grouped.min() >= level - 0.01 else 'NO'} (lowest {grouped.min():.3f})",
        f"worst shortfall per-group {short_g:.3f} < global {short_n:.3f}: "
        f"{'yes' if short_g < short_n else 'NO'}",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/interval_groups.py", description=__doc__)
    p.add_argument("--data", help="boston_housing.npz or a CSV of rm and medv; default: Keras's")
    p.add_argument("--splits", type=int, default=200, help="seeded random 80/20 splits")
    p.add_argument("--level", type=float, default=0.9, help="the band's level")
    a = p.parse_args(argv)
    x, y = load(a.data)
    results = run(x, y, a.splits, a.level)
    print(f"{a.splits} seeded random 80/20 splits of {len(x)} rows\n")
    print(table(results, a.level))
    print()
    print("\n".join(verdict(results, a.level)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
