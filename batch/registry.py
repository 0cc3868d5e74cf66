"""Versioned model store: immutable vN directories published atomically, aliases, verified loading."""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from batch.atomic import fsync_dir, write_atomic
from batch.datasets import sha256_file
from batch.errors import ModelError
from batch.locks import FileLock, is_abandoned

log = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^v(\d+)$")
STAGING_PREFIX = ".staging-"
MODEL_FILE = "model.keras"
META_FILE = "metadata.json"
ALIASES_FILE = "aliases.json"
PRODUCTION = "production"


class Registry:
    """The model registry at `root` (BATCH_MODELS_DIR)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading -------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Published versions, oldest first (a directory counts only once it holds metadata.json)."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            match = VERSION_RE.match(entry.name)
            if match and (entry / META_FILE).is_file():
                found.append(int(match.group(1)))
        return [f"v{n}" for n in sorted(found)]

    def aliases(self) -> dict[str, str]:
        path = self.root / ALIASES_FILE
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ModelError(f"{path} is not valid JSON ({exc}); fix it or run "
                             "'python -m jobs.models promote vN'") from None
        if not isinstance(data, dict):
            raise ModelError(f"{path} should map aliases to versions, like "
                             '{"production": "v1"}; fix it or run '
                             "'python -m jobs.models promote vN'")
        return {str(k): str(v) for k, v in data.items()}

    def resolve(self, ref: str) -> str:
        """'production', another alias, 'latest', 'vN' or 'N' -> an existing 'vN'."""
        versions = self.versions()
        if not versions:
            raise ModelError(f"the model registry {str(self.root)!r} is empty; train a model first "
                             "with 'python -m jobs.train' (or set --models-dir)")
        ref = ref.strip()
        if ref == "latest":
            return versions[-1]
        aliases = self.aliases()
        if ref in aliases:
            target = aliases[ref]
            if target not in versions:
                raise ModelError(f"alias {ref!r} points to {target}, which is not in "
                                 f"{str(self.root)!r}; promote an existing version")
            return target
        name = f"v{ref}" if ref.isdigit() else ref
        if name in versions:
            return name
        if ref == PRODUCTION:
            raise ModelError(f"no production model in {str(self.root)!r} (versions: "
                             f"{', '.join(versions)}); promote one with "
                             "'python -m jobs.models promote vN'")
        raise ModelError(f"no model version or alias {ref!r} in {str(self.root)!r} (versions: "
                         f"{', '.join(versions)}; aliases: {', '.join(aliases) or 'none'})")

    def path(self, version: str) -> Path:
        return self.root / self.resolve(version)

    def metadata(self, version: str) -> dict[str, Any]:
        path = self.path(version) / META_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {path} ({exc}); the version is damaged") from None

    def aliases_of(self, version: str) -> list[str]:
        return sorted(a for a, v in self.aliases().items() if v == version)

    def load(self, version: str):
        """Load vN's Keras model after checking its sha256 against metadata, with safe_mode on."""
        name = self.resolve(version)
        meta = self.metadata(name)
        model_path = self.root / name / MODEL_FILE
        expected = meta.get("model_sha256")
        if not model_path.is_file():
            raise ModelError(f"{model_path} is missing; the version is damaged, "
                             "score with another one (--model-version)")
        try:
            actual = sha256_file(model_path)
        except OSError as exc:
            raise ModelError(f"cannot read {model_path} ({exc.strerror or exc}); check its "
                             "permissions or score with another --model-version") from None
        if not expected or actual != expected:
            raise ModelError(f"{model_path} does not match the sha256 in its metadata (truncated or "
                             "modified); refusing to score with it: use another --model-version "
                             "or retrain")
        from batch.model import keras

        try:
            model = keras().saving.load_model(model_path, safe_mode=True, compile=False)
        except Exception as exc:
            raise ModelError(f"cannot load {model_path} ({exc})") from None
        return model, meta

    # -- writing -------------------------------------------------------------------------------
    def _lock(self) -> FileLock:
        return FileLock(self.root / ".registry.lock")

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder to build a version in; removed unless publish() moved it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        owner = FileLock(path.with_name(path.name + ".lock"))
        # Under the registry lock, so another trainer's clean-up never sees the folder before
        # its owner lock is held.
        with self._lock():
            self.clean_abandoned()
            owner.acquire()
            path.mkdir()
        try:
            yield path
        finally:
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
            owner.release()
            owner.path.unlink(missing_ok=True)

    def clean_abandoned(self) -> None:
        """Remove staging folders whose trainer died (their owner lock is free).

        Call with the registry lock held (staging() does).
        """
        if not self.root.is_dir():
            return
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

    def publish(self, staged: Path, metadata: dict[str, Any], promote: str = "auto",
                tolerance: float = 0.05) -> dict[str, Any]:
        """Number, seal and rename `staged` into vN, then apply the quality gate; returns the decision.

        promote: 'auto' (the gate), 'always' (--promote) or 'never' (--no-promote).
        """
        with self._lock():
            existing = [int(VERSION_RE.match(p.name).group(1)) for p in self.root.iterdir()
                        if VERSION_RE.match(p.name)]
            version = f"v{max(existing, default=0) + 1}"
            metadata = dict(metadata, version=version,
                            model_sha256=sha256_file(staged / MODEL_FILE))
            write_atomic(staged / META_FILE, json.dumps(metadata, indent=2) + "\n")
            fsync_dir(staged)
            os.rename(staged, self.root / version)
            fsync_dir(self.root)
            decision = self._gate(version, metadata, promote, tolerance)
        log.info("published %s; %s", version, decision["reason"])
        return {"version": version, **decision}

    def _gate(self, version: str, metadata: dict, promote: str, tolerance: float) -> dict:
        aliases = self.aliases()
        current = aliases.get(PRODUCTION)
        if current and not (self.root / current / META_FILE).is_file():
            log.warning("production alias points to missing %s; treating as no production", current)
            current = None
        new_mse = float(metadata["metrics"]["test_mse"])
        prod_mse = None
        if current:
            prod_mse = float(json.loads((self.root / current / META_FILE).read_text())
                             ["metrics"]["test_mse"])
            if not math.isfinite(prod_mse):
                log.warning("production %s has no finite test MSE; treating as no production",
                            current)
                current, prod_mse = None, None
        if promote == "never":
            promoted, reason = False, "not promoted (--no-promote)"
        elif current is None:
            promoted, reason = True, "promoted: first model, nothing in production"
        elif promote == "always":
            promoted, reason = True, f"promoted (--promote) over {current}"
        elif new_mse <= prod_mse * (1 + tolerance):
            promoted = True
            reason = (f"promoted: test MSE {new_mse:.4f} is within {tolerance:.0%} of "
                      f"production {current}'s {prod_mse:.4f}")
        else:
            promoted = False
            reason = (f"not promoted: test MSE {new_mse:.4f} is worse than production "
                      f"{current}'s {prod_mse:.4f} by more than {tolerance:.0%}")
        if promoted:
            self._set_alias(PRODUCTION, version)
        return {"promoted": promoted, "reason": reason, "test_mse": new_mse,
                "previous_production": current, "production_test_mse": prod_mse,
                "production": version if promoted else current}

    def _set_alias(self, alias: str, version: str) -> None:
        aliases = self.aliases()
        aliases[alias] = version
        write_atomic(self.root / ALIASES_FILE, json.dumps(aliases, indent=2, sort_keys=True) + "\n")

    def promote(self, version: str, alias: str = PRODUCTION) -> tuple[str | None, str]:
        """Point `alias` at `version`; returns (previous target, new target)."""
        with self._lock():
            name = self.resolve(version)
            previous = self.aliases().get(alias)
            self._set_alias(alias, name)
        return previous, name

