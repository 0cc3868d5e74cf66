"""Versioned model store: immutable vN directories published atomically, aliases with their history."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import math
import os
import pwd
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batch.core import interrupts
from batch.core.errors import EnvironmentFault, LockHeld, ModelError, location_fault
from batch.core.jsontext import dumps, read_lines
from batch.model.datasets import sha256_file
from batch.storage import fs
from batch.storage.atomic import fsync_dir, write_atomic
from batch.storage.locks import describe_holder, is_abandoned

log = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^v(\d+)$")
STAGING_PREFIX = ".staging-"
MODEL_FILE = "model.keras"
META_FILE = "metadata.json"
ALIASES_FILE = "aliases.json"
HISTORY_FILE = "history.jsonl"
PRODUCTION = "production"
# The sanity check: a version must beat predicting the training mean by at least 10% of that
# baseline's MSE on its test rows (R^2 > 0.1 against the training mean). Over 1,000 random 80/20
# splits of Boston, the tutorial's line lands at 0.62-0.82 x baseline (1st-99th percentile) and
# least squares at 0.32-0.83 x, so 0.9 turns away no honest fit of this data, while a
# diverged-but-finite or barely started fit (about 1 x or far above) never passes.
SANITY_RATIO = 0.9
LOCK_FILE = ".registry.lock"
DEFAULT_LOCK_TIMEOUT = 60.0  # seconds; the registry_lock_timeout setting
LOCK_POLL_SECONDS = 0.2


class Registry:
    """The model registry at `root` (BATCH_MODELS_DIR).

    lock_timeout: how long a command that changes the registry waits for another one holding
    its lock before it gives up with LockHeld (exit 6).
    """

    def __init__(self, root: Path | str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.root = fs.path(root)  # a local folder or an s3:// prefix (see batch.storage.fs)
        self.lock_timeout = float(lock_timeout)

    # -- reading -------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Published versions, oldest first (a directory counts only once it holds metadata.json).

        metadata.json is the version's completion marker: it is written last, also in object
        storage, so a version that is still being copied (or whose copy was killed) is not listed.
        """
        try:
            with fs.storage(self.root):
                fs.check(self.root)
                if not self.root.is_dir():
                    return []
                found = []
                for entry in self.root.iterdir():
                    match = VERSION_RE.match(entry.name)
                    if match and (entry / META_FILE).is_file():
                        found.append(int(match.group(1)))
        except fs.StorageError as exc:
            raise ModelError(
                f"the model registry {str(self.root)!r} cannot be used: {exc}"
            ) from None
        return [f"v{n}" for n in sorted(found)]

    def aliases(self) -> dict[str, str]:
        """aliases.json: alias -> vN; ModelError naming the file when it is damaged."""
        path = self.root / ALIASES_FILE
        fix = (
            "restore it, or delete it and run 'python -m jobs.models promote vN' to point "
            "production at a version again"
        )
        try:
            if not path.exists():
                return {}
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"the registry's alias file {path} cannot be read ({_reason(exc)}); {fix}"
            ) from None
        problem = aliases_problem(data)
        if problem:
            raise ModelError(f"the registry's alias file {path} is damaged ({problem}); {fix}")
        return dict(data)

    def resolve(self, ref: str) -> str:
        """'production', another alias, 'latest', 'vN' or 'N' -> an existing 'vN'."""
        versions = self.versions()
        if not versions:
            if fs.is_file_not_folder(self.root):
                raise ModelError(
                    f"the model registry {str(self.root)!r} is a file, not a "
                    "folder; set --models-dir to the registry's folder"
                )
            raise ModelError(
                f"the model registry {str(self.root)!r} is empty; train a model first "
                "with 'python -m jobs.train' (or set --models-dir)"
            )
        ref = ref.strip()
        if ref == "latest":
            return versions[-1]
        aliases = self.aliases()
        if ref in aliases:
            target = aliases[ref]
            if target not in versions:
                raise ModelError(
                    f"alias {ref!r} points to {target}, which is not in "
                    f"{str(self.root)!r}; promote an existing version"
                )
            return target
        name = f"v{ref}" if ref.isdigit() else ref
        if name in versions:
            return name
        if ref == PRODUCTION:
            raise ModelError(
                f"no production model in {str(self.root)!r} (versions: "
                f"{', '.join(versions)}); promote one with "
                "'python -m jobs.models promote vN'"
            )
        raise ModelError(
            f"no model version or alias {ref!r} in {str(self.root)!r} (versions: "
            f"{', '.join(versions)}; aliases: {', '.join(aliases) or 'none'})"
        )

    def path(self, version: str) -> Path:
        return self.root / self.resolve(version)

    def metadata(self, version: str) -> dict[str, Any]:
        """vN's metadata.json, checked for shape and types; ModelError naming the file if damaged."""
        return self.read_metadata(self.resolve(version))

    def read_metadata(self, name: str) -> dict[str, Any]:
        """metadata.json of the published version `name` (vN, not resolved through aliases)."""
        path = self.root / name / META_FILE
        fix = (
            "restore the file from a backup, or use another version (--model-version, "
            "'python -m jobs.models promote vN')"
        )
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"the metadata of {name} ({path}) cannot be read ({_reason(exc)}), "
                f"so {name} is damaged; {fix}"
            ) from None
        problem = metadata_problem(meta)
        if problem:
            raise ModelError(f"the metadata of {name} ({path}) is damaged ({problem}); {fix}")
        return meta

    def check(self) -> None:
        """What a training run relies on, checked before it fits: ModelError or EnvironmentFault.

        The alias file and every version an alias names must be readable (the gate reads them
        after the new version is published), and the location must take the registry lock (so
        an unusable folder is found before a fit, not after it). Other damaged versions only
        warn: a new version does not depend on them.
        """
        aliases = self.aliases()
        versions = self.versions()
        for name in versions:
            try:
                self.read_metadata(name)
            except ModelError as exc:
                if name in aliases.values():
                    raise
                log.warning("%s", exc)
        with self._lock():
            pass

    def aliases_of(self, version: str) -> list[str]:
        return sorted(a for a, v in self.aliases().items() if v == version)

    def load(self, version: str):
        """Load vN's Keras model after checking its sha256 against metadata, with safe_mode on."""
        name = self.resolve(version)
        meta = self.metadata(name)
        model_path, _ = self._checked_model(name, meta)
        from batch.model.network import keras

        try:
            with fs.local_copy(model_path) as local:  # Keras loads from a local file
                model = keras().saving.load_model(local, safe_mode=True, compile=False)
        except Exception as exc:
            raise ModelError(f"cannot load {model_path} ({exc})") from None
        return model, meta

    def load_fold(self, version: str):
        """vN's verified linear fold, read from its sha256-checked archive without TensorFlow.

        Returns (fold, metadata); fold is None when the version must be scored through Keras
        (not a plain linear Dense(1), no or an old publish-time verification, or weights that
        differ from the verified ones). A file that does not match its sha256 raises ModelError,
        as load() does.
        """
        from batch.model.linear import trusted_fold

        name = self.resolve(version)
        meta = self.metadata(name)
        model_path, data = self._checked_model(name, meta)
        # The bytes just hashed are the bytes parsed: the file cannot change in between.
        return trusted_fold(data, meta, hashlib.sha256(data).hexdigest(), str(model_path)), meta

    def _checked_model(self, name: str, meta: dict[str, Any]) -> tuple[Path, bytes]:
        """vN's model file and its bytes, whose sha256 must be the one its metadata records."""
        model_path = self.root / name / MODEL_FILE
        expected = meta.get("model_sha256")
        if not model_path.is_file():
            raise ModelError(
                f"{model_path} is missing; the version is damaged, "
                "score with another one (--model-version)"
            )
        try:
            with fs.storage(model_path):
                data = model_path.read_bytes()
        except OSError as exc:
            raise ModelError(
                f"cannot read {model_path} ({exc.strerror or exc}); check its "
                "permissions or score with another --model-version"
            ) from None
        if not expected or hashlib.sha256(data).hexdigest() != expected:
            raise ModelError(
                f"{model_path} does not match the sha256 in its metadata (truncated or "
                "modified); refusing to score with it: use another --model-version "
                "or retrain"
            )
        return model_path, data

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def writing(self, outcome: str = "nothing was published") -> Iterator[None]:
        """Turn an OS error while changing the registry into the one-sentence EnvironmentFault."""
        try:
            yield
        except OSError as exc:
            raise location_error(self.root, exc, outcome) from None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """The registry lock; waits up to lock_timeout for a holder (logging who), then LockHeld."""
        lock = fs.lock(self.root / LOCK_FILE)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "actor": actor(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        deadline = time.monotonic() + self.lock_timeout
        announced = False
        while True:
            with self.writing():
                if self.root.exists() and not self.root.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
                self.root.mkdir(parents=True, exist_ok=True)
                got = lock.acquire(blocking=False, holder=me)
            if got:
                break
            who = describe_holder(lock.holder())
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"the model registry {str(self.root)!r} is still locked by {who} after "
                    f"{self.lock_timeout:g} s, so nothing was changed; wait for that command to "
                    "finish (or stop it) and run again, or raise registry_lock_timeout "
                    "(--registry-lock-timeout / BATCH_REGISTRY_LOCK_TIMEOUT)"
                )
            if not announced:
                log.warning(
                    "the model registry %s is locked by %s; waiting up to %g s for it",
                    self.root,
                    who,
                    self.lock_timeout,
                )
                announced = True
            time.sleep(min(LOCK_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder to build a version in; removed unless publish() moved it into place.

        An OS error while the folder is made or filled (a full disk, a read-only mount) becomes
        an EnvironmentFault naming the registry, and the folder is removed.
        """

        @contextmanager
        def guard() -> Iterator[None]:
            # Under the registry lock, so another trainer's clean-up never sees the folder
            # before its owner lock is held.
            with self._lock(), self.writing():
                self.clean_abandoned()
                yield

        with (
            self.writing(),
            fs.private_folder(self.root, STAGING_PREFIX, guard) as path,
            self.writing(),
        ):
            yield path

    def clean_abandoned(self) -> None:
        """Remove what a trainer that died left: a half-copied version (no metadata.json, where
        publishing copies), a staging folder whose owner lock is free.

        Call with the registry lock held (staging() and publish() do).
        """
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if VERSION_RE.match(entry.name):
                fs.remove_unmarked(entry, META_FILE)
        for lock_path in self.root.glob(f"{STAGING_PREFIX}*.lock"):
            folder = lock_path.with_suffix("")
            if is_abandoned(lock_path):
                if folder.exists():
                    log.info("removing %s left by a trainer that did not finish", folder)
                    shutil.rmtree(folder, ignore_errors=True)
                lock_path.unlink(missing_ok=True)
        for folder in self.root.glob(f"{STAGING_PREFIX}*"):
            if folder.is_dir() and not folder.with_name(folder.name + ".lock").exists():
                shutil.rmtree(folder, ignore_errors=True)

    def publish(
        self,
        staged: Path,
        metadata: dict[str, Any],
        promote: str = "auto",
        tolerance: float = 0.0,
        *,
        evaluate: Callable[[str], float] | None = None,
        evaluated_on: str = "",
    ) -> dict[str, Any]:
        """Number, seal and rename `staged` into vN, then apply the quality gate; returns the decision.

        promote: 'auto' (the gate), 'always' (--promote) or 'never' (--no-promote).
        evaluate(version) returns that version's MSE on the candidate's test rows (the rows behind
        metadata's test_mse, described by `evaluated_on`); it runs under the registry lock, so the
        production it measures is the one the gate replaces. Without it a production exists that
        cannot be compared, and the candidate is promoted only by 'always'.
        """
        with self._lock():
            # What the gate reads after the rename is checked before it, so a damaged alias
            # file fails the training with nothing published.
            self.aliases()
            with self.writing():
                self.clean_abandoned()
                existing = [
                    int(VERSION_RE.match(p.name).group(1))
                    for p in (self.root.iterdir() if self.root.is_dir() else [])
                    if VERSION_RE.match(p.name)
                ]
                version = f"v{max(existing, default=0) + 1}"
                metadata = dict(
                    metadata, version=version, model_sha256=sha256_file(staged / MODEL_FILE)
                )
                write_atomic(staged / META_FILE, dumps(metadata, indent=2) + "\n")
                fsync_dir(staged)
                # From here the version is published: a stop signal now waits for the job to end.
                interrupts.hold()
                # One rename on disk; in a bucket a copy with metadata.json (the marker) last.
                meta = (staged / META_FILE).read_bytes()
                fs.publish_folder(staged, self.root / version, META_FILE, meta)
            try:
                fsync_dir(self.root)
            except OSError as exc:  # published already; durability is the file system's now
                log.warning("could not fsync %s after publishing %s: %s", self.root, version, exc)
            try:
                decision = self._gate(version, metadata, promote, tolerance, evaluate, evaluated_on)
            except Exception as exc:
                reason = (
                    f"not promoted: {version} is published but the quality gate could not "
                    f"run ({_reason(exc)}); promote it by hand with 'python -m jobs.models "
                    f"promote {version}' if it should replace production"
                )
                log.error("%s", reason)
                decision = {
                    "promoted": False,
                    "reason": reason,
                    "test_mse": metadata["metrics"]["test_mse"],
                    "previous_production": None,
                    "production_test_mse": None,
                    "production": None,
                }
        log.info("published %s; %s", version, decision["reason"])
        return {"version": version, **decision}

    def _gate(
        self,
        version: str,
        metadata: dict,
        promote: str,
        tolerance: float,
        evaluate: Callable[[str], float] | None,
        evaluated_on: str,
    ) -> dict:
        current = self.aliases().get(PRODUCTION)
        if current and not (self.root / current / META_FILE).is_file():
            log.warning("production alias points to missing %s; treating as no production", current)
            current = None
        new_mse = float(metadata["metrics"]["test_mse"])
        prod_mse: float | None = None
        problem = ""
        if current:
            try:
                if evaluate is None:
                    raise ModelError("no evaluator was given")
                prod_mse = float(evaluate(current))
                if not math.isfinite(prod_mse):
                    raise ModelError(f"its MSE on these rows is {prod_mse}")
            except Exception as exc:
                # turn that into a failure; an unevaluable production only blocks the promotion
                prod_mse = None
                problem = f"production {current} could not be evaluated on the same rows ({exc})"
                log.warning("%s", problem)
        if promote == "never":
            promoted, reason = False, "not promoted (--no-promote)"
        elif current is None:
            promoted, reason = True, "promoted: first model, nothing in production"
        elif promote == "always":
            promoted, reason = True, f"promoted (--promote) over {current}"
        elif prod_mse is None:
            promoted = False
            reason = (
                f"not promoted: {problem}; promote by hand with 'python -m jobs.models "
                f"promote {version}' if it should replace it"
            )
        elif new_mse <= prod_mse * (1 + tolerance):
            promoted = True
            limit = "at least as good as" if tolerance == 0 else f"within {tolerance:.0%} of"
            reason = (
                f"promoted: test MSE {new_mse:.4f} is {limit} production {current}'s "
                f"{prod_mse:.4f} on the same rows"
            )
        else:
            promoted = False
            limit = "worse than" if tolerance == 0 else f"more than {tolerance:.0%} worse than"
            reason = (
                f"not promoted: test MSE {new_mse:.4f} is {limit} production {current}'s "
                f"{prod_mse:.4f} on the same rows"
            )
        if promoted:
            command = "train --promote" if promote == "always" else "train (quality gate)"
            try:
                self._move(
                    PRODUCTION,
                    version,
                    reason,
                    command,
                    to_mse=new_mse,
                    from_mse=prod_mse,
                    mse_on=evaluated_on or None,
                )
            except OSError as exc:
                # The version is published; report that truthfully with why the alias stayed.
                promoted = False
                reason = (
                    f"not promoted: {version} is published but production could not be "
                    f"moved ({_reason(exc)}); promote it with 'python -m jobs.models "
                    f"promote {version}' once {self.root} is writable"
                )
                log.error("%s", reason)
        return {
            "promoted": promoted,
            "reason": reason,
            "test_mse": new_mse,
            "previous_production": current,
            "production_test_mse": prod_mse,
            "production": version if promoted else current,
        }

    # -- aliases and their history -------------------------------------------------------------
    def _set_alias(self, alias: str, version: str) -> None:
        self.aliases()  # a damaged file is refused, never overwritten
        # Under the registry lock; in a bucket also If-Match: a concurrent change is never lost.
        fs.update_json(self.root / ALIASES_FILE, lambda a: {**a, alias: version}, {})

    def _move(
        self,
        alias: str,
        version: str,
        reason: str,
        command: str,
        *,
        to_mse: float | None,
        from_mse: float | None,
        mse_on: str | None,
    ) -> dict:
        """Point `alias` at `version` and record the move. Call with the registry lock held.

        The history line is written (and fsynced) before the alias: a crash in between leaves a
        recorded move that did not happen, which rollback detects, rather than an unrecorded one.
        """
        event = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "alias": alias,
            "from": self.aliases().get(alias),
            "to": version,
            "reason": reason,
            "command": command,
            "actor": actor(),
            "to_mse": _finite_or_none(to_mse),
            "from_mse": _finite_or_none(from_mse),
            "mse_on": mse_on,
        }
        fs.append_line(self.root / HISTORY_FILE, dumps(event))
        self._set_alias(alias, version)
        return event

    def history(self) -> list[dict[str, Any]]:
        """Every recorded alias move, oldest first (a torn last line from a crash is skipped)."""
        path = self.root / HISTORY_FILE
        try:
            return read_lines(path)
        except OSError as exc:  # unreadable is not empty: never report "no moves" for it
            raise ModelError(
                f"the registry's history {path} cannot be read ({_reason(exc)}); "
                "nothing was changed — check the location and run again"
            ) from None

    def promote(
        self,
        version: str,
        alias: str = PRODUCTION,
        force: bool = False,
        command: str = "models promote",
    ) -> dict[str, Any]:
        """Point `alias` at `version` after the sanity check (skipped with force); returns the move.

        Promoting the version the alias already names moves nothing and records nothing
        (the result's 'moved' is False).
        """
        with self._lock(), self.writing("nothing was changed"):
            name = self.resolve(version)
            return self._checked_move(alias, name, force, command)

    def rollback(self, alias: str = PRODUCTION, force: bool = False) -> dict[str, Any]:
        """Move `alias` back to the version it named before its current one, per the history."""
        with self._lock(), self.writing("nothing was changed"):
            current = self.aliases().get(alias)
            target = rollback_target(self.history(), alias, current)
            if target not in self.versions():
                raise ModelError(
                    f"cannot roll {alias} back to {target}: that version is no longer "
                    f"in {str(self.root)!r}; promote another one with "
                    "'python -m jobs.models promote vN'"
                )
            return self._checked_move(alias, target, force, "models rollback")

    def _checked_move(self, alias: str, name: str, force: bool, command: str) -> dict[str, Any]:
        meta = self.metadata(name)
        problem = sanity_problem(meta)
        if problem and not force:
            raise ModelError(
                f"{name} fails the sanity check ({problem}); {command.split()[-1]} "
                "it anyway with --force"
            )
        previous = self.aliases().get(alias)
        if previous == name:
            return {"alias": alias, "from": previous, "to": name, "moved": False}
        prev_mse = None
        if previous and (self.root / previous / META_FILE).is_file():
            try:
                prev_mse = self.read_metadata(previous)["metrics"]["test_mse"]
            except ModelError as exc:  # moving away from a damaged version is the fix
                log.warning("%s", exc)
        words = {"models promote": "promoted by hand", "models rollback": "rolled back"}
        reason = f"{words.get(command, command)} ({command}{' --force' if force else ''})"
        if problem:
            reason += f" despite failing the sanity check: {problem}"
        event = self._move(
            alias,
            name,
            reason,
            command + (" --force" if force else ""),
            to_mse=meta.get("metrics", {}).get("test_mse"),
            from_mse=prev_mse,
            mse_on="each version's own test split (from its metadata)",
        )
        log.info("%s: %s -> %s (%s)", alias, previous or "none", name, reason)
        return {**event, "moved": True}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value: Any, where: str, keys: tuple[str, ...], nullable: bool = False) -> str | None:
    """Problem with `value` as a mapping whose `keys` hold finite numbers (or null if allowed)."""
    if not isinstance(value, dict):
        return f"{where} should be an object, not {type(value).__name__}"
    for key in keys:
        if key not in value:
            return f"{where} has no {key!r}"
        item = value[key]
        if not (_is_number(item) or (nullable and item is None)):
            return f"{where}.{key} should be a finite number, not {item!r:.40}"
    return None


# What a reader of metadata.json relies on, field by field: required ones first, then the ones
# older versions may lack (checked when present). Scoring, the gate and `models` read these.
def metadata_problem(meta: Any) -> str | None:
    """Why `meta` is not a usable metadata.json (shape and types), or None."""
    if not isinstance(meta, dict):
        return f"it should be a JSON object, not {type(meta).__name__}"
    for key in ("weight", "bias"):
        if key not in meta:
            return f"it has no {key!r}"
        if not _is_number(meta[key]):
            return f"{key!r} should be a finite number, not {meta[key]!r:.40}"
    if not isinstance(meta.get("model_sha256"), str):
        return "'model_sha256' should be the model file's sha256 as text"
    metrics = meta.get("metrics")
    if not isinstance(metrics, dict):
        return "'metrics' should be an object with test_mse"
    if not _is_number(metrics.get("test_mse")):
        return f"metrics.test_mse should be a finite number, not {metrics.get('test_mse')!r:.40}"
    if any(not (_is_number(v) or v is None) for v in metrics.values()):
        return "every value in 'metrics' should be a number or null"
    for key in ("version", "created_at", "feature", "target"):
        if key in meta and not isinstance(meta[key], (str, type(None))):
            return f"{key!r} should be text, not {meta[key]!r:.40}"
    for key in ("hyperparameters", "data", "versions"):
        if key in meta and not isinstance(meta[key], dict):
            return f"{key!r} should be an object, not {type(meta[key]).__name__}"
    if "baseline_mse" in meta and not (
        _is_number(meta["baseline_mse"]) or meta["baseline_mse"] is None
    ):
        return f"'baseline_mse' should be a number or null, not {meta['baseline_mse']!r:.40}"
    if meta.get("feature_range") is not None:
        problem = _numbers(meta["feature_range"], "feature_range", ("min", "max"))
        if problem:
            return problem
    if meta.get("ols_reference") is not None:
        problem = _numbers(
            meta["ols_reference"],
            "ols_reference",
            ("slope", "intercept", "test_mse"),
            nullable=True,
        )
        if problem:
            return problem
    if meta.get("feature_stats") is not None:
        stats = meta["feature_stats"]
        problem = _numbers(stats, "feature_stats", tuple(stats) if isinstance(stats, dict) else ())
        if problem:
            return problem
    if meta.get("interval") is not None:
        band = meta["interval"]
        problem = _numbers(band, "interval", ("quantile",)) or _numbers(
            band["scale"] if isinstance(band, dict) and "scale" in band else None,
            "interval.scale",
            ("center", "intercept", "slope_below", "slope_above", "floor"),
        )
        if problem:
            return problem
        if not (band.get("lower_bound") is None or _is_number(band["lower_bound"])):
            return "interval.lower_bound should be a number or null"
        level = band.get("level")
        if not (_is_number(level) and 0 < level < 1):
            return f"interval.level should be a number between 0 and 1, not {level!r:.40}"
        problem = (
            _numbers(band, "interval", ("test_coverage",), nullable=True)
            if "test_coverage" in band
            else None
        )
        if problem:
            return problem
    if meta.get("fold") is not None:  # the publish-time verification of the linear fold
        fold = meta["fold"]
        problem = _numbers(fold, "fold", ("weight", "bias"))
        if problem:
            return problem
        for key in ("max_gap_float32_eps", "probe_rows"):
            if key in fold and not (_is_number(fold[key]) or fold[key] is None):
                return f"fold.{key} should be a number or null, not {fold[key]!r:.40}"
        if not isinstance(fold.get("verified"), bool):
            return f"fold.verified should be true or false, not {fold.get('verified')!r:.40}"
    if meta.get("training_sample") is not None:
        sample = meta["training_sample"]
        if not isinstance(sample, dict) or any(
            not isinstance(sample.get(k), list) or not all(_is_number(v) for v in sample[k])
            for k in ("rm", "medv")
        ):
            return "'training_sample' should hold lists of numbers 'rm' and 'medv'"
        if len(sample["rm"]) != len(sample["medv"]):
            return "training_sample.rm and training_sample.medv differ in length"
    return None


def aliases_problem(data: Any) -> str | None:
    """Why `data` is not a usable aliases.json (an object of alias -> vN), or None."""
    if not isinstance(data, dict):
        return (
            'it should map aliases to versions, like {"production": "v1"}, not a '
            f"{type(data).__name__}"
        )
    for alias, target in data.items():
        if not isinstance(target, str) or not VERSION_RE.match(target):
            return f'alias {alias!r} should name a version such as "v1", not {target!r:.40}'
    return None


def _reason(exc: BaseException) -> str:
    """The OS's words for an error (or the exception's own), on one line."""
    return getattr(exc, "strerror", None) or " ".join(str(exc).split())


def location_error(
    root: Path, exc: OSError, outcome: str = "nothing was published"
) -> EnvironmentFault | ModelError:
    """The EnvironmentFault for a registry location that cannot be used (full, read-only, ...).

    An object store's refusal (wrong key, missing bucket, unreachable endpoint) is a registry
    problem, exit 4, like every other way a registry cannot be read or written.
    """
    stored = fs.classify(exc, root)
    if stored is not None:
        return ModelError(
            f"the model registry location {str(root)!r} cannot be used: {stored}; {outcome}"
        )
    return location_fault("model registry location", root, "--models-dir", exc, outcome)


def sanity_problem(metadata: dict[str, Any]) -> str | None:
    """Why a version fails the sanity check (test MSE clearly below the mean's), or None.

    A version trained before baseline_mse was recorded cannot be checked and passes.
    """
    test_mse = metadata.get("metrics", {}).get("test_mse")
    if not isinstance(test_mse, (int, float)) or not math.isfinite(test_mse):
        return f"its test MSE is {test_mse}"
    baseline = metadata.get("baseline_mse")
    if not isinstance(baseline, (int, float)) or not math.isfinite(baseline):
        return None
    if not test_mse < SANITY_RATIO * baseline:
        return (
            f"test MSE {test_mse:.4g} is not below {SANITY_RATIO} x the baseline "
            f"{baseline:.4g} of predicting the training mean"
        )
    return None


def rollback_target(events: list[dict[str, Any]], alias: str, current: str | None) -> str:
    """The version `alias` goes back to: replay the moves as a stack (a rollback pops one).

    Raises ModelError when there is nothing to roll back to, or when the alias no longer
    matches the history's last move (aliases.json changed by other means).
    """
    stack: list[str | None] = []
    last_to = None
    for event in events:
        if event.get("alias") != alias:
            continue
        if str(event.get("command", "")).startswith("models rollback"):
            if stack:
                stack.pop()
        else:
            stack.append(event.get("from"))
        last_to = event.get("to")
    if last_to is not None and last_to != current:
        raise ModelError(
            f"{alias} is {current or 'unset'} but its history's last move set "
            f"{last_to} (aliases.json was changed outside these commands); choose "
            "the version with 'python -m jobs.models promote vN'"
        )
    if not stack or stack[-1] is None:
        raise ModelError(
            f"nothing to roll back to: the history of {alias} has no version "
            f"before {current or 'none'}; promote one with "
            "'python -m jobs.models promote vN'"
        )
    return str(stack[-1])


def actor() -> str:
    """user@host of this process (the uid when it has no name, as in some containers)."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _finite_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None
