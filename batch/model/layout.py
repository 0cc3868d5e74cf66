"""The registry's layout on disk or in a bucket, and its documents read through their models.

models/
  vN/model.keras, vN/metadata.json (ModelMetadata, written last: the version's marker)
  aliases.json (Aliases), history.jsonl (one AliasMove a line)
  .registry.lock, .staging-* (a trainer's private folders)

Every reader here parses through batch.core.documents, so a damaged or newer document is
refused with one sentence (ModelError, exit 4) and never half-read.
"""

from __future__ import annotations

import json
import logging
import re

from batch.core.documents import (
    Aliases,
    AliasMove,
    DocumentError,
    ModelMetadata,
    dump,
    parse_alias_move,
    parse_aliases,
    parse_metadata,
)
from batch.core.errors import EnvironmentFault, ModelError, location_fault
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^v(\d+)$")
STAGING_PREFIX = ".staging-"
MODEL_FILE = "model.keras"
META_FILE = "metadata.json"
ALIASES_FILE = "aliases.json"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".registry.lock"
PRODUCTION = "production"
# The version a trainer's metadata names until the registry numbers it (numbering starts at v1).
UNNUMBERED = "v0"


def version_numbers(root: Location) -> list[int]:
    """The numbers of every vN folder under `root` (published or not), unsorted."""
    if not root.is_dir():
        return []
    return [int(m.group(1)) for p in root.iterdir() if (m := VERSION_RE.match(p.name))]


def read_metadata(root: Location, name: str) -> ModelMetadata:
    """metadata.json of the published version `name`; ModelError naming the file if unusable."""
    path = root / name / META_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"the metadata of {name} ({path}) cannot be read ({reason(exc)}), so {name} is "
            "damaged; restore the file from a backup, or use another version (--model-version, "
            "'python -m jobs.models promote vN')"
        ) from None
    try:
        return parse_metadata(data, str(path))
    except DocumentError as exc:
        raise ModelError(f"the metadata of {name} cannot be used: {exc}") from None


def read_aliases(root: Location) -> dict[str, str]:
    """aliases.json as alias -> vN (empty when there is none); ModelError naming it if unusable."""
    path = root / ALIASES_FILE
    try:
        if not path.exists():
            return {}
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"the registry's alias file {path} cannot be read ({reason(exc)}); {Aliases.fix}"
        ) from None
    try:
        aliases = parse_aliases(data, str(path))
    except DocumentError as exc:
        raise ModelError(f"the registry's alias file cannot be used: {exc}") from None
    return {PRODUCTION: aliases.production}


def aliases_text(current: object, version: str, where: str) -> object:
    """The alias file's new JSON value pointing production at `version`, after checking the
    current one (None: no file yet) through the model, so damage is refused, never overwritten.

    The store writes the value as json.dumps(indent=2, sort_keys=True), which is exactly
    dump(Aliases(...)) for this all-text document.
    """
    if current is not None:
        try:
            parse_aliases(json.dumps(current), where)
        except DocumentError as exc:
            raise ModelError(f"the registry's alias file cannot be used: {exc}") from None
    return json.loads(dump(Aliases.model_validate({"production": version})))


def read_history(root: Location) -> list[AliasMove]:
    """Every recorded alias move, oldest first.

    A line that is not JSON (a write torn by a crash) is skipped with a warning; a JSON line
    that is not a move (an edit, a newer version's line) is refused with ModelError, as is a
    history that cannot be read: unreadable is never reported as "no moves".
    """
    path = root / HISTORY_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ModelError(
            f"the registry's history {path} cannot be read ({reason(exc)}); "
            "nothing was changed — check the location and run again"
        ) from None
    moves = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError:
            log.warning("skipping line %d of %s: not JSON (an interrupted write?)", number, path)
            continue
        try:
            moves.append(parse_alias_move(line, str(path), number))
        except DocumentError as exc:
            raise ModelError(f"the registry's history cannot be used: {exc}") from None
    return moves


def reason(exc: BaseException) -> str:
    """The OS's words for an error (or the exception's own), on one line."""
    return getattr(exc, "strerror", None) or " ".join(str(exc).split())


def location_error(
    root: Location, exc: OSError, outcome: str = "nothing was published"
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
