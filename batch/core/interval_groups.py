"""Which rooms group a row belongs to, for a price band calibrated per group (pure numpy).

The rule (`--interval-groups rooms_decile`): cut the calibration rows at the deciles of their
rooms (equal cut points count once); a row whose rooms equal a cut point belongs to the group
above it. Then, while some group holds fewer than `min_rows` calibration rows (the least number
for which the split-conformal rank ceil((n + 1)·level) is at most n), merge the smallest such
group (the lowest of equals) with its smaller neighbour (the lower one on a tie) by dropping the
cut point between them. Each remaining cut point then moves up to the least calibration rooms
value at or above it (no calibration row changes group), written as its float32's shortest
decimal: these are the groups' edges. Any row, calibration or scored, goes to group
searchsorted(edges, rooms, side="right") with both compared as float32 (as the model reads
rooms), so rooms below the first edge use the lowest group and rooms above the last the highest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DECILES = 10
BY = "rooms_decile"


def decile_cuts(x: np.ndarray) -> list[float]:
    """The distinct deciles of `x` (at most 9 cut points: 10 groups)."""
    x = np.asarray(x, "float64").reshape(-1)
    cuts = np.unique(np.quantile(x, np.linspace(0, 1, DECILES + 1)[1:-1]))
    return [float(v) for v in cuts]


def group_of(rooms: np.ndarray, edges: list[float]) -> np.ndarray:
    """Each row's group index (0 to len(edges)); a row on an edge goes to the group above.

    Rooms and edges are compared as float32, as the model reads rooms: a scored row whose text
    is an edge's (5.6045) is on that edge, as the float32 calibration row it came from was.
    """
    with np.errstate(over="ignore"):  # rooms beyond float32 (1e39 and up) are inf: last group
        x = np.asarray(rooms, "float64").reshape(-1).astype("float32")
    cuts = np.asarray(edges, "float64").astype("float32")
    which: np.ndarray = np.searchsorted(cuts, x, side="right")
    return which


def merge_small(edges: list[float], counts: list[int], min_rows: int) -> list[float]:
    """`edges` with the cut points dropped that merge every group under `min_rows` rows into a
    neighbour (see the module's rule); `counts` holds each group's rows (len(edges) + 1)."""
    edges, counts = list(edges), list(counts)
    if len(counts) != len(edges) + 1:
        raise ValueError("needs one row count per group (one more than the edges)")
    while len(counts) > 1 and min(counts) < min_rows:
        i = counts.index(min(counts))
        if i == 0:
            j = 1
        elif i == len(counts) - 1:
            j = i - 1
        else:
            j = i - 1 if counts[i - 1] <= counts[i + 1] else i + 1
        low = min(i, j)
        counts[low] += counts[low + 1]
        del counts[low + 1]
        del edges[low]
    return edges


def rooms_groups(x: np.ndarray, min_rows: int) -> list[float]:
    """The edges of the rooms groups of calibration rows `x`: deciles, small groups merged,
    each edge then moved up to the least calibration rooms value at or above it (no row changes
    group) and written as that value's shortest decimal (see `_shortest`)."""
    x = np.asarray(x, "float64").reshape(-1)
    cuts = decile_cuts(x)
    which = np.searchsorted(cuts, x, side="right")
    counts = np.bincount(which, minlength=len(cuts) + 1)
    edges = merge_small(cuts, [int(n) for n in counts], min_rows)
    xs = np.sort(x)
    return [_shortest(float(xs[np.searchsorted(xs, e, side="left")])) for e in edges]


def _shortest(value: float) -> float:
    """A rooms value as its float32's shortest decimal (5.6045, not 5.604500198364258): the
    float32 that group_of compares, written as people and CSV files write it."""
    return float(str(np.float32(value)))


def quantile_at(rooms: np.ndarray, params: dict[str, Any]) -> Any:
    """The conformal quantile each row's band uses: the one global quantile (a float) for a
    band without groups, else each row's group's quantile (a float64 array)."""
    groups = params.get("groups")
    if not groups:
        return params["quantile"]
    q = np.asarray([g["quantile"] for g in groups["groups"]], "float64")
    return q[group_of(rooms, groups["edges"])]
