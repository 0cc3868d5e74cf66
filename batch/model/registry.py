"""Versioned model store: immutable vN directories published atomically, aliases with their history.

Reading is RegistryReader's (batch.model.reading), the layout and the typed documents are in
batch.model.layout, the lock in batch.model.lock, the quality gate's decisions in
batch.model.gate and the alias moves in batch.model.moves; this module changes the registry:
staging, publishing with the gate, promote and rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from batch.core import interrupts
from batch.core.documents import AliasMove, ModelMetadata, dump
from batch.core.errors import ModelError
from batch.model import gate, layout
from batch.model.datasets import sha256_file
from batch.model.layout import (
    ALIASES_FILE,
    HISTORY_FILE,
    META_FILE,
    MODEL_FILE,
    PRODUCTION,
    STAGING_PREFIX,
    VERSION_RE,
    reason,
)
from batch.model.lock import registry_lock, writing
from batch.model.moves import new_move, rollback_target
from batch.model.reading import RegistryReader
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)


class Registry(RegistryReader):
    """The model registry at `root`: what RegistryReader reads, and every change to it."""

    def check(self) -> None:
        """What a training run relies on, checked before it fits: ModelError or EnvironmentFault.

        The alias file and every version an alias names must be readable (the gate reads them
        after the new version is published), and the location must take the registry lock (so
        an unusable folder is found before a fit, not after it). Other damaged versions only
        warn: a new version does not depend on them.
        """
        aliases = self.aliases()
        for name in self.versions():
            try:
                self.read_metadata(name)
            except ModelError as exc:
                if name in aliases.values():
                    raise
                log.warning("%s", exc)
        with self._lock():
            pass

    # -- writing -------------------------------------------------------------------------------
    def writing(self, outcome: str = "nothing was published") -> AbstractContextManager[None]:
        """Turn an OS error while changing the registry into the one-sentence EnvironmentFault."""
        return writing(self.root, outcome)

    def _lock(self) -> AbstractContextManager[None]:
        """The registry lock; waits up to lock_timeout for a holder (logging who), then LockHeld."""
        return registry_lock(self.root, self.lock_timeout)

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
            if _abandoned(lock_path):
                if folder.exists():
                    log.info("removing %s left by a trainer that did not finish", folder)
                    fs.rmtree(folder, ignore_errors=True)
                lock_path.unlink(missing_ok=True)
        for folder in self.root.glob(f"{STAGING_PREFIX}*"):
            if folder.is_dir() and not folder.with_name(folder.name + ".lock").exists():
                fs.rmtree(folder, ignore_errors=True)

    def publish(
        self,
        staged: Path,
        metadata: ModelMetadata,
        promote: str = "auto",
        tolerance: float = 0.0,
        *,
        evaluate: Callable[[str], float] | None = None,
        evaluated_on: str = "",
    ) -> dict[str, Any]:
        """Number, seal and rename `staged` into vN, then apply the quality gate; returns the
        decision.

        metadata's version and model_sha256 are set here: the number the registry gives it and
        the hash of the staged model file.
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
            metadata = self._seal(staged, metadata)
            version = metadata.version
            try:
                decision = self._gate(version, metadata, promote, tolerance, evaluate, evaluated_on)
            except Exception as exc:
                decision = self._gate_failed(version, metadata, exc)
        log.info("published %s; %s", version, decision["reason"])
        return {"version": version, **decision}

    def _seal(self, staged: Path, draft: ModelMetadata) -> ModelMetadata:
        """Number the staged version, write its metadata.json (the marker) and move it into place.

        Call with the registry lock held. From the move on, a stop signal waits for the job.
        """
        with self.writing():
            self.clean_abandoned()
            version = f"v{max(layout.version_numbers(self.root), default=0) + 1}"
            metadata = draft.model_copy(
                update={"version": version, "model_sha256": sha256_file(staged / MODEL_FILE)}
            )
            text = dump(metadata)
            fs.write_atomic(staged / META_FILE, text)
            fs.fsync_dir(staged)
            interrupts.hold()
            # One rename on disk; in a bucket a copy with metadata.json (the marker) last.
            fs.publish_folder(staged, self.root / version, META_FILE, text.encode())
        try:
            fs.fsync_dir(self.root)
        except OSError as exc:  # published already; durability is the file system's now
            log.warning("could not fsync %s after publishing %s: %s", self.root, version, exc)
        return metadata

    def _gate_failed(self, version: str, metadata: ModelMetadata, exc: Exception) -> dict[str, Any]:
        """The decision when the gate itself failed after publishing: not promoted, and why."""
        why = (
            f"not promoted: {version} is published but the quality gate could not "
            f"run ({reason(exc)}); promote it by hand with 'python -m jobs.models "
            f"promote {version}' if it should replace production"
        )
        log.error("%s", why)
        return gate.decision(False, why, metadata.metrics.test_mse, None, None, version)

    def _gate(
        self,
        version: str,
        metadata: ModelMetadata,
        promote: str,
        tolerance: float,
        evaluate: Callable[[str], float] | None,
        evaluated_on: str,
    ) -> dict[str, Any]:
        current = self.aliases().get(PRODUCTION)
        if current and not (self.root / current / META_FILE).is_file():
            log.warning("production alias points to missing %s; treating as no production", current)
            current = None
        new_mse = metadata.metrics.test_mse
        prod_mse, problem = gate.measure_production(current, evaluate) if current else (None, "")
        promoted, why = gate.decide(
            version, new_mse, current, prod_mse, problem, promote, tolerance
        )
        if promoted:
            command = "train --promote" if promote == "always" else "train (quality gate)"
            try:
                self._move(
                    PRODUCTION,
                    version,
                    why,
                    command,
                    to_mse=new_mse,
                    from_mse=prod_mse,
                    mse_on=evaluated_on or None,
                )
            except OSError as exc:
                # The version is published; report that truthfully with why the alias stayed.
                promoted = False
                why = (
                    f"not promoted: {version} is published but production could not be "
                    f"moved ({reason(exc)}); promote it with 'python -m jobs.models "
                    f"promote {version}' once {self.root} is writable"
                )
                log.error("%s", why)
        return gate.decision(promoted, why, new_mse, current, prod_mse, version)

    # -- aliases and their history -------------------------------------------------------------
    def _move(
        self,
        alias: str,
        version: str,
        why: str,
        command: str,
        *,
        to_mse: float | None,
        from_mse: float | None,
        mse_on: str | None,
    ) -> AliasMove:
        """Point `alias` at `version` and record the move. Call with the registry lock held.

        The history line is written (and fsynced) before the alias: a crash in between leaves a
        recorded move that did not happen, which rollback detects, rather than an unrecorded one.
        """
        previous = self.aliases().get(alias)  # a damaged alias file is refused, never overwritten
        move = new_move(
            alias,
            previous,
            version,
            why,
            command,
            to_mse=to_mse,
            from_mse=from_mse,
            mse_on=mse_on,
        )
        interrupts.hold()  # from the history line on, a stop signal waits for the alias
        fs.append_line(self.root / HISTORY_FILE, dump(move))
        path = self.root / ALIASES_FILE
        # Under the registry lock; in a bucket also If-Match: a concurrent change is never lost.
        fs.update_json(path, lambda current: layout.aliases_text(current, version, str(path)), None)
        return move

    def promote(self, version: str, force: bool = False) -> dict[str, Any]:
        """Point production at `version` after the sanity check (skipped with force); returns
        the move as {alias, from, to, moved}.

        Promoting the version production already names moves nothing and records nothing
        ('moved' is False).
        """
        with self._lock(), self.writing("nothing was changed"):
            name = self.resolve(version)
            return self._checked_move(PRODUCTION, name, force, "models promote")

    def rollback(self, force: bool = False) -> dict[str, Any]:
        """Move production back to the version it named before its current one, per the history."""
        with self._lock(), self.writing("nothing was changed"):
            current = self.aliases().get(PRODUCTION)
            target = rollback_target(self.history(), PRODUCTION, current)
            if target not in self.versions():
                self._refuse_unfinished(target)
                raise ModelError(
                    f"cannot roll {PRODUCTION} back to {target}: that version is no longer "
                    f"in {str(self.root)!r}; promote another one with "
                    "'python -m jobs.models promote vN'"
                )
            return self._checked_move(PRODUCTION, target, force, "models rollback")

    def _checked_move(self, alias: str, name: str, force: bool, command: str) -> dict[str, Any]:
        meta = self.check_files(name)  # damaged files are refused even with --force
        problem = gate.sanity_problem(meta)
        if problem and not force:
            raise ModelError(
                f"{name} fails the sanity check ({problem}); {command.split()[-1]} "
                "it anyway with --force"
            )
        previous = self.aliases().get(alias)
        if previous == name:
            return {"alias": alias, "from": previous, "to": name, "moved": False}
        words = {"models promote": "promoted by hand", "models rollback": "rolled back"}
        why = f"{words.get(command, command)} ({command}{' --force' if force else ''})"
        if problem:
            why += f" despite failing the sanity check: {problem}"
        self._move(
            alias,
            name,
            why,
            command + (" --force" if force else ""),
            to_mse=meta.metrics.test_mse,
            from_mse=self._test_mse_of(previous),
            mse_on="each version's own test split (from its metadata)",
        )
        log.info("%s: %s -> %s (%s)", alias, previous or "none", name, why)
        return {"alias": alias, "from": previous, "to": name, "moved": True}

    def _test_mse_of(self, previous: str | None) -> float | None:
        """The recorded test MSE of the version an alias leaves (None: none, or damaged)."""
        if not previous or not (self.root / previous / META_FILE).is_file():
            return None
        try:
            return self.read_metadata(previous).metrics.test_mse
        except ModelError as exc:  # moving away from a damaged version is the fix
            log.warning("%s", exc)
            return None


def _abandoned(lock_path: Location) -> bool:
    """True when nobody holds the staging folder's owner lock (its trainer finished or died)."""
    lock = fs.lock(lock_path)
    if lock.acquire(blocking=False):
        lock.release()
        return True
    return False
