"""jobs.runs and retention over damaged state (issue 20, item 4): a table of damaged inputs.

Each case damages a copy of a real output folder, then runs `jobs.runs list`, `show latest` and
`prune --keep 0` through the CLI: no traceback, exit 0, the run in LATEST kept, and nothing
outside the output folder changed (a decoy tree is hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import one_error_sentence, run_cli


def tree_hash(root: Path) -> str:
    """Every path, link target and file content under `root` (links not followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(root)).encode())
            if p.is_symlink():
                h.update(b"->" + os.readlink(p).encode())
            elif p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


def a_run(out: Path) -> Path:
    """A run folder that is not LATEST's (the older success)."""
    latest = (out / "LATEST").read_text().strip().rsplit("/", 1)[-1]
    return next(p for p in sorted((out / "runs").iterdir()) if p.name != latest)


def append(out: Path, data: bytes) -> None:
    with open(out / "runs.jsonl", "ab") as f:
        f.write(data)


def truncated_line(out: Path, decoy: Path) -> None:
    line = (out / "runs.jsonl").read_bytes().splitlines()[0]
    append(out, line[: len(line) // 2] + b"\n")


def wrong_types(out: Path, decoy: Path) -> None:
    line = json.loads((out / "runs.jsonl").read_bytes().splitlines()[0])
    line.update(rows_read="many", exit_code=[3], started_at=12)
    append(out, json.dumps(line).encode() + b"\n")


def binary_garbage(out: Path, decoy: Path) -> None:
    append(out, b"\x00\xff\xfe\x1b[2J garbage \x80\x81\n")


def damaged_report(out: Path, decoy: Path) -> None:
    (a_run(out) / "report.json").write_bytes(b'{"run_id": 12, "rows_read": "x"')


def missing_report(out: Path, decoy: Path) -> None:
    (a_run(out) / "report.json").unlink()


def symlinked_run_folder(out: Path, decoy: Path) -> None:
    """runs/<id> is a link to a run-looking folder outside the output folder."""
    run = a_run(out)
    target = decoy / "elsewhere-run"
    shutil.move(run, target)
    run.symlink_to(target, target_is_directory=True)


def symlinked_failed_folder(out: Path, decoy: Path) -> None:
    """failed/ itself is a link to a folder outside, holding a run-looking folder."""
    target = decoy / "failed-elsewhere"
    shutil.move(out / "failed", target)
    (out / "failed").symlink_to(target, target_is_directory=True)


CASES = {
    f.__name__: f
    for f in (
        truncated_line,
        wrong_types,
        binary_garbage,
        damaged_report,
        missing_report,
        symlinked_run_folder,
        symlinked_failed_folder,
    )
}


@pytest.fixture
def decoy(tmp_path) -> Path:
    root = tmp_path / "decoy"
    (root / "keep").mkdir(parents=True)
    (root / "keep" / "precious.txt").write_text("never removed\n")
    return root


def no_traceback(res, code: int = 0) -> None:
    assert res.code == code, (res.code, res.stdout, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]


@pytest.mark.parametrize("case", list(CASES))
def test_run_tools_survive_damaged_state(copy_output, decoy, case):
    out = copy_output
    CASES[case](out, decoy)
    before = tree_hash(decoy)
    latest = (out / "LATEST").read_text().strip()

    listed = run_cli("jobs.runs", "list", "--output-dir", out)
    no_traceback(listed)
    no_traceback(run_cli("jobs.runs", "list", "--json", "--output-dir", out))
    no_traceback(run_cli("jobs.runs", "show", "latest", "--output-dir", out))
    pruned = run_cli("jobs.runs", "prune", "--keep", "0", "--output-dir", out)
    # A planted link at failed/ itself is refused like every link the jobs did not make (exit 7,
    # nothing removed); a damaged run folder inside runs/ is handled and the prune goes on.
    no_traceback(pruned, 7 if case == "symlinked_failed_folder" else 0)

    assert tree_hash(decoy) == before, "prune changed something outside the output folder"
    assert (out / "LATEST").read_text().strip() == latest
    assert (out / latest.split("/", 1)[-1] if "/" in latest else out).exists()
    for path in out.rglob("*"):
        if path.is_symlink():
            assert case == "symlinked_failed_folder", f"{path} (a link) was left by prune"
    if case == "symlinked_run_folder":
        assert "is a link" in pruned.stderr, pruned.stderr
    if case == "symlinked_failed_folder":
        sentence = one_error_sentence(pruned.stderr)
        assert "failed" in sentence and "symbolic link" in sentence, sentence
        assert "remove that link" in sentence, sentence
    if case in ("truncated_line", "wrong_types", "binary_garbage"):
        assert "runs.jsonl" in listed.stderr and "line" in listed.stderr, listed.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("jobs.runs", "list"),
        ("jobs.runs", "show", "latest"),
        ("jobs.runs", "prune", "--keep", "1"),
        ("jobs.runs", "prune", "--keep", "1", "--dry-run"),
    ],
)
def test_an_output_location_that_is_a_file_is_exit_7(tmp_path, command):
    out = tmp_path / "output"
    out.write_text("not a folder\n")
    res = run_cli(*command, "--output-dir", out)
    no_traceback(res, 7)
    assert str(out) in one_error_sentence(res.stderr)
    assert out.read_text() == "not a folder\n"
