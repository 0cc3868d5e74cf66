"""Reading the model registry: its versions, aliases and history, and a version's model.

Every read goes through the typed documents (batch.model.layout); a model file is checked
against the sha256 its metadata records before it is used.
"""

from __future__ import annotations

import hashlib
from typing import Any

from batch.core.documents import AliasMove, ModelMetadata
from batch.core.errors import ModelError
from batch.model import layout
from batch.model.layout import META_FILE, MODEL_FILE, PRODUCTION
from batch.model.linear import check_fold, trusted_fold
from batch.model.lock import DEFAULT_LOCK_TIMEOUT
from batch.model.network import LinearFold
from batch.storage import fs
from batch.storage.location import Location


class RegistryReader:
    """What can be read from the model registry at `root` (BATCH_MODELS_DIR: a local folder or
    an s3:// prefix); Registry adds the changes.

    lock_timeout: how long a command that changes the registry waits for another one holding
    its lock before it gives up with LockHeld (exit 6).
    """

    def __init__(self, root: Location, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.root = root
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
                found = [
                    n
                    for n in layout.version_numbers(self.root)
                    if (self.root / f"v{n}" / META_FILE).is_file()
                ]
        except fs.StorageError as exc:
            raise ModelError(
                f"the model registry {str(self.root)!r} cannot be used: {exc}"
            ) from None
        return [f"v{n}" for n in sorted(found)]

    def aliases(self) -> dict[str, str]:
        """aliases.json: alias -> vN; ModelError naming the file when it is damaged."""
        return layout.read_aliases(self.root)

    def resolve(self, ref: str) -> str:
        """'production', another alias, 'latest', 'vN' or 'N' -> an existing 'vN'."""
        versions = self.versions()
        if not versions:
            self._refuse_empty()
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
        self._refuse_unfinished(name)
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

    def _refuse_unfinished(self, name: str) -> None:
        """ModelError naming what is missing when `name` is a version folder without its
        metadata.json (damaged, or a copy that never finished)."""
        if layout.VERSION_RE.match(name) and (self.root / name).is_dir():
            missing = [f for f in (META_FILE, MODEL_FILE) if not (self.root / name / f).is_file()]
            raise ModelError(
                f"{name} in {str(self.root)!r} is damaged or unfinished: "
                f"{' and '.join(missing)} missing; restore it from a backup or use another "
                "version ('python -m jobs.models list')"
            )

    def _refuse_empty(self) -> None:
        if fs.is_file_not_folder(self.root):
            raise ModelError(
                f"the model registry {str(self.root)!r} is a file, not a "
                "folder; set --models-dir to the registry's folder"
            )
        raise ModelError(
            f"the model registry {str(self.root)!r} is empty; train a model first "
            "with 'python -m jobs.train' (or set --models-dir)"
        )

    def metadata(self, version: str) -> ModelMetadata:
        """The metadata of `version` (resolved); ModelError naming the file if damaged."""
        return self.read_metadata(self.resolve(version))

    def read_metadata(self, name: str) -> ModelMetadata:
        """metadata.json of the published version `name` (vN, not resolved through aliases)."""
        return layout.read_metadata(self.root, name)

    def aliases_of(self, version: str) -> list[str]:
        return sorted(a for a, v in self.aliases().items() if v == version)

    def history(self) -> list[AliasMove]:
        """Every recorded alias move, oldest first (a torn line from a crash is skipped)."""
        return layout.read_history(self.root)

    def load(self, version: str) -> tuple[Any, ModelMetadata]:
        """Load vN's Keras model after checking its sha256 against metadata, with safe_mode on."""
        name = self.resolve(version)
        meta = self.metadata(name)
        model_path, data = self._checked_model(name, meta)
        check_fold(data, meta, str(model_path))
        from batch.model.network import keras

        try:
            with fs.local_copy(model_path) as local:  # Keras loads from a local file
                model = keras().saving.load_model(local, safe_mode=True, compile=False)
        except Exception as exc:
            raise ModelError(f"cannot load {model_path} ({exc})") from None
        return model, meta

    def load_fold(self, version: str) -> tuple[LinearFold | None, ModelMetadata]:
        """vN's verified linear fold, read from its sha256-checked archive without TensorFlow.

        Returns (fold, metadata); fold is None when the version must be scored through Keras
        (not a plain linear Dense(1), no or an old publish-time verification, or weights that
        differ from the verified ones). A file that does not match its sha256 raises ModelError,
        as load() does.
        """
        name = self.resolve(version)
        meta = self.metadata(name)
        model_path, data = self._checked_model(name, meta)
        # The bytes just hashed are the bytes parsed: the file cannot change in between.
        actual = hashlib.sha256(data).hexdigest()
        return trusted_fold(data, meta, actual, str(model_path)), meta

    def check_files(self, name: str) -> ModelMetadata:
        """Every file of the published version `name`, checked as scoring would use them:
        metadata.json parses, model.keras is there with the sha256 metadata records, and a
        verified fold agrees with both. ModelError (exit 4) naming what is missing or damaged."""
        meta = self.read_metadata(name)
        model_path, data = self._checked_model(name, meta)
        check_fold(data, meta, str(model_path))
        return meta

    def _checked_model(self, name: str, meta: ModelMetadata) -> tuple[Location, bytes]:
        """vN's model file and its bytes, whose sha256 must be the one its metadata records."""
        model_path = self.root / name / MODEL_FILE
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
        if hashlib.sha256(data).hexdigest() != meta.model_sha256:
            raise ModelError(
                f"{model_path} does not match the sha256 in its metadata (truncated or "
                "modified); refusing to score with it: use another --model-version "
                "or retrain"
            )
        return model_path, data
