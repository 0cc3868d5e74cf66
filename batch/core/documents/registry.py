"""The registry's own files: models/aliases.json and one line of models/history.jsonl."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from batch.core.documents._base import Document, NonNegativeFloat, UtcTime, VersionName


class Aliases(Document):
    """models/aliases.json: which version each alias names.

    The product writes one alias, production; any other key is refused (a typo such as
    "Production" must not pass for an alias that is not set).
    """

    kind: ClassVar[str] = "aliases.json"
    fix: ClassVar[str] = (
        "restore it, or delete it and run 'python -m jobs.models promote vN' to point "
        "production at a version again"
    )
    sort_keys: ClassVar[bool] = True  # as the store's update_json writes it (Registry._move)

    production: VersionName = Field(description="the version scoring uses by default")


class AliasMove(Document):
    """One line of models/history.jsonl: an alias moved (promote, rollback, the quality gate).

    Every key is written by every move since the history began; `from`, the MSEs and `mse_on`
    are null when there was nothing to record (no earlier version, a gate without numbers).
    """

    kind: ClassVar[str] = "history.jsonl line"
    fix: ClassVar[str] = (
        "restore the line from a backup or remove it (rollback replays these lines)"
    )
    indent: ClassVar[int | None] = None
    line: ClassVar[bool] = True

    time: UtcTime
    alias: str
    from_: VersionName | None = Field(alias="from", description="the version it named before")
    to: VersionName
    reason: str
    command: str = Field(description="what moved it: 'models promote', 'train (quality gate)' ...")
    actor: str = Field(description="user@host of the process")
    to_mse: NonNegativeFloat | None
    from_mse: NonNegativeFloat | None
    mse_on: str | None = Field(description="which rows both MSEs were measured on")
