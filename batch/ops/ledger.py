"""The ledger: every input a published run scored (file, sha256, run_id), outliving prune.

`<output>/ledger.jsonl` lives beside `runs/`, not in it: `jobs.runs prune` removes run folders
and their outcome lines and never the ledger, so `--new-only` after a prune still knows what
was scored. One LedgerLine per input, appended once the run is published (a run that was
refused or interrupted scored nothing for the record). A damaged line is skipped with one
warning; its input then counts as not scored, which costs a re-score, never a lost file.
"""

from __future__ import annotations

import datetime as dt
import logging

from batch.core.documents import DocumentError, LedgerLine, dump, parse_ledger_line
from batch.core.documents.report import ReportInput
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)

LEDGER = "ledger.jsonl"


def record(
    output_dir: Location,
    run_id: str,
    inputs: list[ReportInput],
    when: dt.datetime,
    logical_date: str | None = None,
) -> None:
    """Append the inputs a published run scored (one write per line: concurrent runs never mix),
    with the run's logical date (a backfill's memory of the days done, which outlives prune)."""
    stamp = when.astimezone(dt.UTC).isoformat(timespec="seconds")
    for item in inputs:
        line = LedgerLine(
            path=item.path,
            sha256=item.sha256,
            run_id=run_id,
            scored_at=stamp,
            logical_date=logical_date,
        )
        fs.append_line(output_dir / LEDGER, dump(line))


def read(output_dir: Location) -> list[LedgerLine]:
    """Every readable line of the ledger (none when it does not exist yet); a damaged line is
    skipped with a warning."""
    path = output_dir / LEDGER
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            lines.append(parse_ledger_line(raw, str(path), number))
        except DocumentError as exc:
            log.warning("%s; skipped", exc)
    return lines


def scored_hashes(output_dir: Location) -> set[str]:
    """sha256 of every input the ledger records as scored."""
    return {line.sha256 for line in read(output_dir)}
