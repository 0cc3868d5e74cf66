"""A run's output folder: runs/, failed/, LATEST, the run lock and the staging area.

The layout every tool relies on (the scorer, `jobs.runs`, retention, the history page): a run is
built in `.staging/<run_id>/` and appears complete as `runs/<run_id>/` with `_SUCCESS` inside (a
run over its reject budget as `failed/<run_id>/`, diagnosis files only), and `LATEST` names the
newest successful run. Every fault of the output location is one sentence, exit 7 (`writing`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from batch.core.documents import DocumentError, parse_report
from batch.core.errors import EnvironmentFault, LockHeld, location_fault
from batch.storage import fs
from batch.storage.location import Location
from batch.storage.locks import describe_holder

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
LATEST = "LATEST"
STAGING = ".staging"  # runs in progress: output/.staging/<run_id>/
REPORT_JSON = "report.json"
DIAGNOSIS_FILES = (REPORT_JSON, "report.html", "rejects.csv")  # kept for a failed run


# -- the output location's faults: one sentence, exit 7 ------------------------------------------


def location_error(
    path: Location | str, exc: OSError, outcome: str = "nothing was published"
) -> EnvironmentFault:
    """The EnvironmentFault for an output location that cannot be used (full, read-only, ...)."""
    stored = fs.classify(exc, path)
    if stored is not None:  # an object store's refusal: its sentence names the fix
        return EnvironmentFault(
            f"the output location {str(path)!r} cannot be used: {stored}; {outcome}"
        )
    return location_fault("output location", path, "--output-dir", exc, outcome)


@contextmanager
def writing(path: Location | str, outcome: str = "nothing was published") -> Iterator[None]:
    """Turn an OS error while using `path` into the one-sentence EnvironmentFault (exit 7).

    `outcome` says what the failure left undone (a run: "nothing was published").
    """
    try:
        yield
    except OSError as exc:
        raise location_error(path, exc, outcome) from None
    except Exception as exc:  # botocore/aiohttp errors that s3fs passes through as they are
        stored = fs.classify(exc, path)
        if stored is None:
            raise
        raise location_error(path, stored, outcome) from None


# -- the output directory ------------------------------------------------------------------------


# The ids the other jobs take the output lock with (a scoring run takes it with its run_id), and
# what a refused job is told holds it.
LABELS_LOCK_ID = "labels"
PRUNE_LOCK_ID = "prune"
HOLDERS = {
    LABELS_LOCK_ID: "a labels join",
    PRUNE_LOCK_ID: "a runs prune",
}


class OutputDir:
    """BATCH_OUTPUT_DIR: runs/, failed/, LATEST, the run lock, the staging folders of live runs."""

    def __init__(self, root: Location) -> None:
        self.root = root
        self.runs = self.root / "runs"
        self.failed = self.root / "failed"
        self._lock = fs.lock(self.root / ".lock")

    def lock(self, run_id: str) -> None:
        """Take the output lock or raise LockHeld naming the holder (EnvironmentFault: unusable)."""
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        with writing(self.root):
            fs.ensure_dir(self.root)
            got = self._lock.acquire(blocking=False, holder=me)
        if not got:
            with writing(self.root):
                who = self._lock.holder()
            desc = describe_holder(who)
            job = HOLDERS.get(str(who.get("run_id")), "another scoring run")
            raise LockHeld(
                f"{job} ({desc}) holds {self.root}; it was left alone — "
                "wait for it to finish, then run again"
            )

    def unlock(self) -> None:
        self._lock.release()

    def clean_leftovers(self) -> None:
        """Remove the folders of runs that were killed (safe: we hold the lock).

        Only what a run made is removed: never through a link (a link at .staging is refused,
        one inside it is left alone), never outside .staging (real paths compared).
        """
        staging = self.root / STAGING
        with writing(self.root):
            fs.refuse_link(staging)
            if not staging.is_dir():
                return
            for tmp in staging.iterdir():
                if fs.is_link(tmp) or not fs.is_inside(tmp, staging):
                    log.warning("left alone: %s is a link the scorer did not make", tmp)
                    continue
                log.info("removing %s left by a run that did not finish", tmp)
                # Killed while copying into runs/ or failed/? (only where publishing copies)
                fs.remove_unmarked(self.runs / tmp.name, SUCCESS)
                fs.remove_unmarked(self.failed / tmp.name, REPORT_JSON)
                if tmp.is_dir():
                    fs.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)

    def staging(self, run_id: str) -> Location:
        """A new, empty folder to build run `run_id` in."""
        path = self.root / STAGING / run_id
        with writing(self.root):
            fs.make_dir(path)
        return path

    def publish(self, staged: Location, run_id: str) -> Location:
        """_SUCCESS last, then the folder appears complete as runs/<id>; then LATEST moves.

        LATEST is prepared before the publish and switched after it, so once the run is visible
        nothing is left that could fail and report it as not published. On a local disk the
        publish is one rename; in object storage (no rename) the staged objects are copied with
        _SUCCESS last, so readers that honour _SUCCESS never see a partial run.
        """
        final = self.runs / run_id
        with writing(self.root):
            self._lock.verify()  # a run whose lease lapsed must not publish over its successor
            latest = fs.staged_write(self.root / LATEST, run_id + "\n")
            try:
                marker = (json.dumps({"run_id": run_id}) + "\n").encode()
                fs.publish_folder(staged, final, SUCCESS, marker)
            except BaseException:
                latest.discard()
                raise
        try:  # the run is published: from here on a failure is only logged
            latest.commit()
            fs.fsync_dir(self.runs)
            fs.fsync_dir(self.root)
        except OSError as exc:
            log.warning("run %s is published but LATEST could not be updated (%s)", run_id, exc)
        return final

    def publish_failed(self, staged: Location, run_id: str) -> Location:
        """A run over its reject budget: only the diagnosis files, under failed/<id> (report.json
        written last: the folder's marker)."""
        final = self.failed / run_id
        with writing(self.root):
            report = (staged / REPORT_JSON).read_bytes()
            fs.publish_folder(
                staged, final, REPORT_JSON, report, include=lambda name: name in DIAGNOSIS_FILES
            )
        return final

    def successful_runs(self) -> list[Location]:
        if not self.runs.is_dir():
            return []
        return sorted(p for p in self.runs.iterdir() if (p / SUCCESS).is_file())

    def scored_hashes(self) -> set[str]:
        """sha256 of every input file a successful run has scored (for --new-only)."""
        hashes: set[str] = set()
        for run in self.successful_runs():
            path = run / REPORT_JSON
            try:
                report = parse_report(path.read_bytes(), str(path))
            except OSError as exc:
                log.warning(
                    "cannot read %s (%s); its inputs count as not scored", path, exc.strerror or exc
                )
                continue
            except DocumentError as exc:
                log.warning("%s; its inputs count as not scored", exc)
                continue
            hashes.update(i.sha256 for i in report.inputs if i.sha256)
        return hashes

    def latest(self) -> str | None:
        try:
            return (self.root / LATEST).read_text().strip() or None
        except OSError:
            return None
