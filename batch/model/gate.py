"""The quality gate and the sanity check: which version production should name, and why.

Pure decisions on numbers already measured; Registry.publish applies them under its lock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from batch.core.documents import ModelMetadata
from batch.core.errors import ModelError

log = logging.getLogger(__name__)

# The sanity check: a version must beat predicting the training mean by at least 10% of that
# baseline's MSE on its test rows (R^2 > 0.1 against the training mean). Over 1,000 random 80/20
# splits of Boston, the tutorial's line lands at 0.62-0.82 x baseline (1st-99th percentile) and
# least squares at 0.32-0.83 x, so 0.9 turns away no honest fit of this data, while a
# diverged-but-finite or barely started fit (about 1 x or far above) never passes.
SANITY_RATIO = 0.9


def sanity_problem(metadata: ModelMetadata) -> str | None:
    """Why a version fails the sanity check (test MSE clearly below the mean's), or None.

    A version trained before baseline_mse was recorded cannot be checked and passes.
    """
    test_mse = metadata.metrics.test_mse
    baseline = metadata.baseline_mse
    if baseline is None:
        return None
    if not test_mse < SANITY_RATIO * baseline:
        return (
            f"test MSE {test_mse:.4g} is not below {SANITY_RATIO} x the baseline "
            f"{baseline:.4g} of predicting the training mean"
        )
    return None


def measure_production(
    current: str, evaluate: Callable[[str], float] | None
) -> tuple[float | None, str]:
    """(production's MSE on the candidate's rows, or None; why it could not be measured).

    An unevaluable production only blocks the promotion: the error becomes the reason.
    """
    try:
        if evaluate is None:
            raise ModelError("no evaluator was given")
        prod_mse = float(evaluate(current))
        if not math.isfinite(prod_mse):
            raise ModelError(f"its MSE on these rows is {prod_mse}")
    except Exception as exc:
        problem = f"production {current} could not be evaluated on the same rows ({exc})"
        log.warning("%s", problem)
        return None, problem
    return prod_mse, ""


def decide(
    version: str,
    new_mse: float,
    current: str | None,
    prod_mse: float | None,
    problem: str,
    promote: str,
    tolerance: float,
) -> tuple[bool, str]:
    """(promoted, the reason in words) for candidate `version` against production `current`.

    promote: 'auto' (the gate), 'always' (--promote) or 'never' (--no-promote).
    """
    if promote == "never":
        return False, "not promoted (--no-promote)"
    if current is None:
        return True, "promoted: first model, nothing in production"
    if promote == "always":
        return True, f"promoted (--promote) over {current}"
    if prod_mse is None:
        return False, (
            f"not promoted: {problem}; promote by hand with 'python -m jobs.models "
            f"promote {version}' if it should replace it"
        )
    if new_mse <= prod_mse * (1 + tolerance):
        limit = "at least as good as" if tolerance == 0 else f"within {tolerance:.0%} of"
        return True, (
            f"promoted: test MSE {new_mse:.4f} is {limit} production {current}'s "
            f"{prod_mse:.4f} on the same rows"
        )
    limit = "worse than" if tolerance == 0 else f"more than {tolerance:.0%} worse than"
    return False, (
        f"not promoted: test MSE {new_mse:.4f} is {limit} production {current}'s "
        f"{prod_mse:.4f} on the same rows"
    )


def decision(
    promoted: bool,
    reason: str,
    new_mse: float,
    current: str | None,
    prod_mse: float | None,
    version: str,
) -> dict[str, Any]:
    """The gate's outcome as publish returns it (and the trainer's summary reports it)."""
    return {
        "promoted": promoted,
        "reason": reason,
        "test_mse": new_mse,
        "previous_production": current,
        "production_test_mse": prod_mse,
        "production": version if promoted else current,
    }
