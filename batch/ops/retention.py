"""Retention: which runs to remove (--keep N, --older-than DAYS; never LATEST), and removing
them."""

from __future__ import annotations

import datetime as dt
import errno
import logging
from dataclasses import dataclass, field

from batch.core.errors import ConfigError
from batch.ops import history, history_page
from batch.ops.history import RunEntry
from batch.storage import fs
from batch.storage.location import Location
from batch.storage.rundir import PRUNE_LOCK_ID, OutputDir

log = logging.getLogger(__name__)


# The same bounds as the retention settings (BATCH_RETENTION, BATCH_RETENTION_DAYS).
MAX_KEEP = 1_000_000
MAX_DAYS = 36_500


@dataclass
class PrunePlan:
    """What a prune removes: run folders (runs/<id>, failed/<id>) and folder-less log lines."""

    folders: list[RunEntry] = field(default_factory=list)
    log_lines: list[RunEntry] = field(default_factory=list)
    kept: list[RunEntry] = field(default_factory=list)


def plan_prune(
    runs: list[RunEntry],
    latest: str | None,
    keep: int | None,
    older_than_days: float | None,
    now: dt.datetime,
) -> PrunePlan:
    """Decide what to remove from `runs` (newest first, as history.collect returns them).

    A run folder goes when it is not among the `keep` newest folders, or when it started more
    than `older_than_days` ago; the run in LATEST always stays. Lines of runs.jsonl without a
    folder (runs that stopped before a report) go when they are older than the cutoff: the
    oldest folder that `keep` keeps, or now minus `older_than_days`, whichever is later. A
    damaged line (its time unknown) stays until it is repaired or removed by hand.
    """
    if keep is None and older_than_days is None:
        raise ConfigError("prune needs --keep N and/or --older-than DAYS; nothing was removed")
    if keep is not None and not 0 <= keep <= MAX_KEEP:
        raise ConfigError(f"invalid value {keep} for --keep: allowed: 0 to {MAX_KEEP}")
    # `not 0 <= x <= max` also refuses nan (every comparison with nan is false) and inf.
    if older_than_days is not None and not 0 <= older_than_days <= MAX_DAYS:
        raise ConfigError(
            f"invalid value {older_than_days} for --older-than: allowed: 0 to {MAX_DAYS} days"
        )
    plan = PrunePlan()
    cutoffs: list[dt.datetime] = []
    if older_than_days is not None:
        cutoffs.append(now - dt.timedelta(days=older_than_days))
    folders = [r for r in runs if r.run_dir]
    if keep is not None and keep > 0 and len(folders) >= keep:
        cutoffs.append(folders[keep - 1].started)
    elif keep == 0 and folders:
        cutoffs.append(folders[0].started + dt.timedelta(microseconds=1))
    cutoff = max(cutoffs) if cutoffs else None
    position = 0
    for run in runs:
        old = cutoff is not None and run.started < cutoff
        if run.run_dir:
            position += 1
            beyond_keep = keep is not None and position > keep
            too_old = older_than_days is not None and old
            if (beyond_keep or too_old) and run.run_id != latest:
                plan.folders.append(run)
                continue
        elif old and run.outcome is not None:
            plan.log_lines.append(run)
            continue
        plan.kept.append(run)
    return plan


def _is_link(location: Location) -> bool:
    """Whether `location` is a symbolic link (an object store has none)."""
    is_symlink = getattr(location, "is_symlink", None)
    return bool(is_symlink()) if is_symlink is not None else False


def _inside(root: Location, location: Location) -> bool:
    """Whether `location`'s folder is inside `root` once every link is resolved."""
    base, parent = str(root.resolve()).rstrip("/"), str(location.parent.resolve())
    return parent == base or parent.startswith(base + "/")


def remove_run_folder(root: Location, folder: Location, run_id: str | None) -> None:
    """Remove one run folder of `root`: a link goes as a link, never what it points to, and
    nothing whose folder resolves outside `root` (runs/ made a link elsewhere) is touched."""
    if not _inside(root, folder):
        log.warning(
            "not removing run %s: %s lies outside the output folder %s once its links are "
            "resolved; remove the link by hand",
            run_id,
            folder,
            root,
        )
        return
    if _is_link(folder):
        log.info("removing run %s: %s is a link, removed without what it points to", run_id, folder)
        folder.unlink()
        return
    log.info("removing run %s (%s)", run_id, folder)
    fs.rmtree(folder)


def prune(
    output_dir: Location,
    keep: int | None = None,
    older_than_days: float | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> PrunePlan:
    """Remove old runs under the output lock (LockHeld, exit 6, while a run is in progress).

    Returns what was removed (with dry_run: what would be). The outcome log keeps the lines of
    the runs that remain, and index.html is rebuilt.
    """
    root = output_dir
    now = now or dt.datetime.now(dt.UTC)
    out = OutputDir(root)
    if fs.is_file_not_folder(root):  # the caller's `writing` makes it exit 7, one sentence
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(root))
    if not root.is_dir():
        return PrunePlan()
    out.lock(PRUNE_LOCK_ID)
    try:
        runs = history.collect(root)
        plan = plan_prune(runs, out.latest(), keep, older_than_days, now)
        if dry_run:
            return plan
        if not (plan.folders or plan.log_lines):
            return plan
        # The log is read before anything is removed: an unreadable log stops the prune with
        # nothing removed, and is never rewritten as if it were empty.
        removed_ids = {r.run_id for r in plan.folders}
        removed_lines = {r.log_number for r in plan.log_lines}
        entries = [
            e
            for e in history.read_log(root)
            if not (e.line is not None and e.line.run_dir and e.line.run_id in removed_ids)
            and e.number not in removed_lines
        ]
        for run in plan.folders:
            assert run.run_dir is not None
            remove_run_folder(root, root / run.run_dir, run.run_id)
        history.rewrite_log(root, entries)
        history_page.write_index(root, now)
        return plan
    finally:
        out.unlock()
