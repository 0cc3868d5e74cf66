"""The folded Dense(1) without TensorFlow: read it from a .keras archive, verify it once, trust it
later.

A `.keras` file is a zip of `config.json` (the architecture) and `model.weights.h5` (the
variables). For a model that is exactly one linear Dense(1) on one input, the prediction is
`x * w + b` in float32, so the scorer needs only `w` and `b`. At publish time `verify` reads them
from the saved archive with this module's reader, compares the fold with Keras's own output of
the same archive on a fixed probe set and records the outcome in metadata.json (`fold`). At
scoring time `trusted_fold` accepts the archive's weights only when that record exists, names the
archive's sha256 and holds the very same float32 weight and bias; anything else returns None and
the scorer takes the Keras path. Neither reading nor trusting imports TensorFlow or Keras.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from batch.core.documents import ModelMetadata
from batch.core.documents.metadata import Fold
from batch.core.errors import ModelError
from batch.model.network import PARITY_LIMIT, LinearFold, float32_gap, predict

log = logging.getLogger(__name__)

FOLD_FORMAT = 1  # bump when the reader or the probe set changes: older records are not trusted
GRID_ROWS = 1001  # evenly spaced probe rows across the training range, and again across the domain


class NotLinear(ValueError):
    """The archive is not exactly one linear float32 Dense(1) on one input (use Keras)."""


def probe_rows(
    feature_range: tuple[float, float], domain: tuple[float, float] = (0.0, 20.0)
) -> np.ndarray:
    """The fixed probe set, float32: the training range (ends and a grid), the default domain,
    signed zero, ones, tiny and huge magnitudes (up to 1e20: finite after x * w + b for any
    weight below 1e18)."""
    lo, hi = (float(v) for v in feature_range)
    fixed = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        1e-45,
        1e-38,
        1e-30,
        1e-7,
        1e3,
        -1e3,
        1e6,
        -1e6,
        1e12,
        -1e12,
        1e20,
        -1e20,
        lo,
        hi,
        np.nextafter(np.float32(lo), -np.inf),
        np.nextafter(np.float32(hi), np.inf),
        *domain,
    ]
    grids = [np.linspace(lo, hi, GRID_ROWS), np.linspace(domain[0], domain[1], GRID_ROWS)]
    return np.concatenate([np.asarray(fixed, "float64"), *grids]).astype("float32")


def read_fold(archive_file: Path | bytes) -> LinearFold:
    """The weight and bias of a .keras archive (a path, or its bytes), read without Keras.

    Raises NotLinear unless the archive's config is a Sequential of one InputLayer of shape
    (None, 1) and one float32 Dense(1) with a linear activation and a bias, and its weights file
    holds exactly that layer's kernel (1, 1) and bias (1,) as float32.
    """
    try:
        source = io.BytesIO(archive_file) if isinstance(archive_file, bytes) else archive_file
        with zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
            if not {"config.json", "model.weights.h5"} <= names:
                raise NotLinear(f"no config.json/model.weights.h5 in it (has {sorted(names)})")
            config = json.loads(archive.read("config.json"))
            _check_config(config)
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError, OSError) as exc:
        if isinstance(exc, NotLinear):
            raise
        raise NotLinear(f"unreadable archive ({exc})") from None
    return _read_weights(weights)


def _check_config(config: Any) -> None:
    if not (
        isinstance(config, dict)
        and config.get("class_name") == "Sequential"
        and config.get("module") == "keras"
    ):
        raise NotLinear("the model is not a keras Sequential")
    layers = (config.get("config") or {}).get("layers") or []
    kinds = [layer.get("class_name") for layer in layers]
    if kinds != ["InputLayer", "Dense"]:
        raise NotLinear(f"its layers are {kinds}, not [InputLayer, Dense]")
    inp, dense = layers[0].get("config") or {}, layers[1].get("config") or {}
    if inp.get("batch_shape") != [None, 1] or inp.get("sparse") or inp.get("ragged"):
        raise NotLinear(f"its input is {inp.get('batch_shape')}, not one column")
    dtype = dense.get("dtype")
    policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    checks = {
        "units": (dense.get("units"), 1),
        "activation": (dense.get("activation"), "linear"),
        "use_bias": (dense.get("use_bias"), True),
        "dtype": (policy, "float32"),
        "quantization": (dense.get("quantization_config"), None),
        "lora": (dense.get("lora_rank"), None),
    }
    for name, (got, want) in checks.items():
        if got != want:
            raise NotLinear(f"its Dense layer has {name} {got!r}, not {want!r}")


def _read_weights(data: bytes) -> LinearFold:
    import h5py  # a Keras dependency that does not import TensorFlow

    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            layers = h5.get("layers")
            if not isinstance(layers, h5py.Group) or len(layers) != 1:
                raise NotLinear("its weights file does not hold exactly one layer")
            (layer,) = layers.values()
            vars_ = layer.get("vars")
            root_vars = h5.get("vars")
            if (
                not isinstance(vars_, h5py.Group)
                or sorted(vars_) != ["0", "1"]
                or (isinstance(root_vars, h5py.Group) and len(root_vars))
                or len(layer) != 1
            ):
                raise NotLinear("its weights file does not hold one kernel and one bias")
            kernel, bias = vars_["0"], vars_["1"]
            if (
                kernel.shape != (1, 1)
                or bias.shape != (1,)
                or kernel.dtype != np.float32
                or bias.dtype != np.float32
            ):
                raise NotLinear(
                    f"its kernel {kernel.shape} {kernel.dtype} and bias {bias.shape} "
                    f"{bias.dtype} are not float32 (1, 1) and (1,)"
                )
            w, b = np.float32(kernel[0, 0]), np.float32(bias[0])
    except (OSError, KeyError, TypeError) as exc:
        raise NotLinear(f"unreadable weights file ({exc})") from None
    if not (np.isfinite(w) and np.isfinite(b)):
        raise NotLinear(f"its weight {w} or bias {b} is not finite")
    return LinearFold(w, b)


def verify(path: Path, model_sha256: str, feature_range: tuple[float, float]) -> Fold | None:
    """Publish time: the `fold` record for metadata.json, or None when the model does not fold.

    Loads the archive at `path` with Keras (safe mode), as the Keras path of the scorer would,
    and compares its output with the fold this module reads from the same archive on the probe
    set. A fold that disagrees by more than PARITY_LIMIT float32 epsilons is recorded as not
    verified, with the gap, so the scorer keeps using Keras for it.
    """
    try:
        fold = read_fold(path)
    except NotLinear as exc:
        log.info("model is not a plain linear Dense(1) (%s): it will be scored through Keras", exc)
        return None
    from batch.model.network import keras

    model = keras().saving.load_model(path, safe_mode=True, compile=False)
    x = probe_rows(feature_range)
    theirs = predict(model, x)
    gap = float32_gap(fold(x), theirs)
    verified = gap <= PARITY_LIMIT
    record = Fold(
        format=FOLD_FORMAT,
        weight=float(fold.weight),
        bias=float(fold.bias),
        verified=bool(verified),
        probe_rows=int(len(x)),
        max_gap_float32_eps=gap if np.isfinite(gap) else None,
        bit_identical=bool(np.array_equal(fold(x), theirs)),
        model_sha256=model_sha256,
    )
    if verified:
        log.info(
            "linear fold verified against Keras on %d probe rows (largest gap %.2f float32 "
            "epsilons): scoring this version needs no TensorFlow",
            len(x),
            gap,
        )
    else:
        log.warning(
            "the linear fold differs from Keras by %.1f float32 epsilons on the probe "
            "rows; this version will be scored through Keras",
            gap,
        )
    return record


def trusted_fold(
    data: bytes, meta: ModelMetadata, actual_sha256: str, where: str
) -> LinearFold | None:
    """Scoring time: the archive's fold when metadata records it as verified for this very file.

    `data` is the archive's content and `actual_sha256` its hash, just checked against metadata
    (Registry.load_fold); `where` names the file in log lines.
    None (the Keras path) for a model without a record, an old or failed verification, or
    weights in the archive that differ from the recorded ones.
    """
    check_fold(data, meta, where)
    record = meta.fold
    if not _trusted_record(record, actual_sha256):
        return None
    assert record is not None
    try:
        return read_fold(data)
    except NotLinear as exc:
        log.warning(
            "%s cannot be read as a linear Dense(1) (%s): scoring through Keras", where, exc
        )
        return None


def check_fold(data: bytes, meta: ModelMetadata, where: str) -> None:
    """ModelError (exit 4) when a current, verified fold record disagrees with metadata.json or
    with the (sha256-checked) archive `data`: it names another model file, or holds another
    weight or bias than metadata.json and the archive. Such a version is damaged (edited by
    hand, or mixed with another version's files), never scored. A record without verification
    or of an older format vouches for nothing and is not checked (the scorer uses Keras)."""
    record = meta.fold
    if record is None or record.format != FOLD_FORMAT or not record.verified:
        return
    recorded = (np.float32(record.weight), np.float32(record.bias))
    problem = None
    if record.model_sha256 != meta.model_sha256:
        problem = f"its fold names model sha256 {record.model_sha256[:12]}…, not the version's"
    elif recorded != (np.float32(meta.weight), np.float32(meta.bias)):
        problem = (
            f"its fold holds weight {record.weight!r} bias {record.bias!r}, but metadata.json "
            f"says {meta.weight!r} {meta.bias!r}"
        )
    else:
        try:
            fold = read_fold(data)
        except NotLinear as exc:
            problem = f"its fold is recorded as verified but {where} does not fold ({exc})"
        else:
            if (fold.weight.tobytes(), fold.bias.tobytes()) != tuple(v.tobytes() for v in recorded):
                problem = (
                    f"its fold holds weight {record.weight!r} bias {record.bias!r}, but "
                    f"{where} holds {float(fold.weight)!r} {float(fold.bias)!r}"
                )
    if problem:
        raise ModelError(
            f"{meta.version} is damaged: {problem} (metadata.json disagrees with itself or "
            "with model.keras); restore the version from a backup or use another one "
            "(--model-version, 'python -m jobs.models promote vN')"
        )


def _trusted_record(record: Fold | None, actual_sha256: str) -> bool:
    """Whether metadata's fold record vouches for the archive whose sha256 is `actual_sha256`."""
    if record is None:
        log.info("no linear-fold verification in metadata.json: scoring through Keras")
        return False
    if record.format != FOLD_FORMAT or not record.verified:
        log.info(
            "the linear fold is not verified (format %s, verified %s): scoring through Keras",
            record.format,
            record.verified,
        )
        return False
    if record.model_sha256 != actual_sha256:
        log.warning(
            "the linear-fold verification names another model file (sha256 %s, the file "
            "is %s): scoring through Keras",
            record.model_sha256[:12],
            actual_sha256[:12],
        )
        return False
    return True


def describe(record: Fold) -> str:
    """The report's prediction path for a verified fold."""
    gap = record.max_gap_float32_eps
    return (
        f"folded Dense(1), no TensorFlow; parity with Keras verified at publish on "
        f"{record.probe_rows} probe rows (largest gap "
        f"{0.0 if gap is None else gap:g} float32 epsilons)"
    )
