"""The JSON documents the product writes and reads back, as typed, versioned models.

Pure: text in, models out (`parse_*`), and models back to the exact text the product writes
(`dump`). Every parser raises DocumentError, one sentence naming the document, where it is and
the first offending field. A document without `schema_version` was written before documents
had one and is read as version 1; one with a newer version is refused.
"""

from __future__ import annotations

from typing import TypeVar

from batch.core.documents._base import (
    SCHEMA_VERSION,
    Document,
    DocumentError,
    dump,
    parse,
)
from batch.core.documents.labels import LabelsLine, LabelsResult
from batch.core.documents.metadata import ModelMetadata
from batch.core.documents.registry import Aliases, AliasMove
from batch.core.documents.report import RunReport
from batch.core.documents.runs import LedgerLine, RunLine, SchedulerHeartbeat

__all__ = [
    "DOCUMENTS",
    "SCHEMA_VERSION",
    "AliasMove",
    "Aliases",
    "Document",
    "DocumentError",
    "LabelsLine",
    "LabelsResult",
    "LedgerLine",
    "ModelMetadata",
    "RunLine",
    "RunReport",
    "SchedulerHeartbeat",
    "dump",
    "parse_alias_move",
    "parse_aliases",
    "parse_heartbeat",
    "parse_labels_line",
    "parse_labels_result",
    "parse_ledger_line",
    "parse_line",
    "parse_metadata",
    "parse_report",
    "parse_run_line",
]

L = TypeVar("L", AliasMove, RunLine, LedgerLine, LabelsLine)

# Every document, with where it lives (for the reference page, tools/schemas).
DOCUMENTS: tuple[tuple[type[Document], str], ...] = (
    (ModelMetadata, "models/vN/metadata.json"),
    (Aliases, "models/aliases.json"),
    (AliasMove, "models/history.jsonl (one per line)"),
    (RunReport, "output/runs/<run id>/report.json, output/failed/<run id>/report.json"),
    (RunLine, "output/runs.jsonl (one per line)"),
    (SchedulerHeartbeat, "output/heartbeat.json"),
    (LedgerLine, "output/ledger.jsonl (one per line)"),
    (LabelsResult, "output/labels/<run id>.json"),
    (LabelsLine, "output/labels/history.jsonl (one per line)"),
)


def parse_metadata(data: bytes | str, where: str) -> ModelMetadata:
    """A version's metadata.json."""
    return parse(ModelMetadata, data, where)


def parse_aliases(data: bytes | str, where: str) -> Aliases:
    """The registry's aliases.json."""
    return parse(Aliases, data, where)


def parse_report(data: bytes | str, where: str) -> RunReport:
    """A run's report.json."""
    return parse(RunReport, data, where)


def parse_heartbeat(data: bytes | str, where: str) -> SchedulerHeartbeat:
    """The scheduler's heartbeat.json."""
    return parse(SchedulerHeartbeat, data, where)


def parse_line(kind: type[L], line: bytes | str, where: str, number: int | None = None) -> L:
    """One line of a JSON-lines file as `kind` (AliasMove or RunLine); `number` (1-based) is
    only for the message."""
    return parse(kind, line, where if number is None else f"{where} line {number}")


def parse_alias_move(line: bytes | str, where: str, number: int | None = None) -> AliasMove:
    """One line of history.jsonl."""
    return parse_line(AliasMove, line, where, number)


def parse_ledger_line(line: bytes | str, where: str, number: int | None = None) -> LedgerLine:
    """One line of ledger.jsonl."""
    return parse_line(LedgerLine, line, where, number)


def parse_run_line(line: bytes | str, where: str, number: int | None = None) -> RunLine:
    """One line of runs.jsonl."""
    return parse_line(RunLine, line, where, number)


def parse_labels_result(data: bytes | str, where: str) -> LabelsResult:
    """A run's labels/<run_id>.json."""
    return parse(LabelsResult, data, where)


def parse_labels_line(line: bytes | str, where: str, number: int | None = None) -> LabelsLine:
    """One line of labels/history.jsonl."""
    return parse_line(LabelsLine, line, where, number)
