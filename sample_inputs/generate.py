"""Remake the synthetic sample inputs: python sample_inputs/generate.py

Synthetic suburbs in the 13-column Boston schema plus suburb_id and suburb (no real data copied).
Some rows carry the true price (medv); a couple have rooms outside the training range (3.56-8.73),
and two in the CSV cannot be scored (an empty and a non-numeric rooms cell), so rejects.csv shows
what happens to them.
Deterministic: the same files every time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
COLUMNS = [
    "crim",
    "zn",
    "indus",
    "chas",
    "nox",
    "rm",
    "age",
    "dis",
    "rad",
    "tax",
    "ptratio",
    "b",
    "lstat",
]
NAMES = [
    "Ashford",
    "Brookvale",
    "Cedar Hill",
    "Dunmore",
    "Elmstead",
    "Fairhaven",
    "Glenwood",
    "Harbourside",
    "Ivybridge",
    "Juniper Flats",
    "Kingsmere",
    "Larchmont",
    "Millbrook",
    "Northgate",
    "Oakridge",
    "Pinecrest",
    "Queensbury",
    "Riverbend",
    "Stonebridge",
    "Thornbury",
    "Upton",
    "Valewood",
    "Westcliff",
    "Yarrow",
    "Zephyr Park",
]


def suburbs(n: int, rng: np.random.Generator, start: int) -> pd.DataFrame:
    rm = np.round(rng.normal(6.3, 0.6, n).clip(4.0, 8.5), 3)
    frame = pd.DataFrame(
        {
            "suburb_id": [f"S{start + i:04d}" for i in range(n)],
            "suburb": [
                f"{NAMES[(start + i) % len(NAMES)]} {(start + i) // len(NAMES) + 1}"
                for i in range(n)
            ],
            "crim": np.round(rng.gamma(0.6, 5.0, n), 5),
            "zn": np.round(rng.choice([0.0, 0.0, 12.5, 20.0, 25.0, 80.0], n), 1),
            "indus": np.round(rng.uniform(0.5, 27.0, n), 2),
            "chas": rng.choice([0, 0, 0, 1], n).astype("int64"),
            "nox": np.round(rng.uniform(0.39, 0.87, n), 3),
            "rm": rm,
            "age": np.round(rng.uniform(3.0, 100.0, n), 1),
            "dis": np.round(rng.uniform(1.2, 12.0, n), 4),
            "rad": rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 24], n).astype("int64"),
            "tax": rng.integers(190, 711, n).astype("int64"),
            "ptratio": np.round(rng.uniform(12.6, 22.0, n), 1),
            "b": np.round(rng.uniform(0.3, 396.9, n), 2),
            "lstat": np.round(rng.uniform(1.7, 38.0, n), 2),
        }
    )
    # A price that roughly follows rooms, for the rows that carry one.
    medv = np.round((9.1 * rm - 34.7 + rng.normal(0, 4.0, n)).clip(5.0, 50.0), 1)
    frame["medv"] = np.where(rng.random(n) < 0.5, medv, np.nan)
    return frame


def main() -> None:
    rng = np.random.default_rng(20261126)
    csv = suburbs(36, rng, start=1)
    csv.loc[3, "rm"] = 9.2  # bigger homes than any suburb in the training data
    csv.loc[17, "rm"] = 3.2  # smaller
    csv["rm"] = csv["rm"].astype(object)
    csv.loc[25, "rm"] = None  # missing: rejected
    csv.loc[30, "rm"] = "n/a"  # not a number: rejected
    csv.to_csv(HERE / "suburbs_north.csv", index=False)
    parquet = suburbs(40, rng, start=101)
    parquet.loc[11, "rm"] = 8.95
    parquet.to_parquet(HERE / "suburbs_south.parquet", index=False)
    print(f"wrote {HERE / 'suburbs_north.csv'} and {HERE / 'suburbs_south.parquet'}")


if __name__ == "__main__":
    main()
