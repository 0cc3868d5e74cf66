"""Hostile trees: a link planted where the jobs write is refused (exit 7, one sentence naming it),
and nothing outside the roots changes (a decoy tree is hashed before and after); a full disk
(a real file-size limit) leaves no temporary file behind."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import BOSTON_CSV, FAST_FIT, REPO, Result, one_error_sentence, run_cli

TRAIN_DATA = ("--data", BOSTON_CSV)


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    """A small real registry (v1 = production), trained once for this module."""
    if not BOSTON_CSV.is_file():
        pytest.skip(f"{BOSTON_CSV} is not here")
    models = tmp_path_factory.mktemp("hostile") / "models"
    res = run_cli("jobs.train", "--models-dir", models, *TRAIN_DATA, *FAST_FIT)
    assert res.code == 0, res.stderr[-2000:]
    return models


def make_decoy(root: Path) -> Path:
    """Files and folders a hostile link points into; the jobs must never change them."""
    (root / "folder" / "deep").mkdir(parents=True)
    (root / "aliases.json").write_text('{"production": "v9"}\n')
    (root / "folder" / "keep.txt").write_text("precious\n")
    (root / "folder" / "deep" / "keep.bin").write_bytes(bytes(range(256)))
    (root / "v1").mkdir()
    return root


def tree_hash(root: Path) -> dict[str, str]:
    """Every entry under `root` (links not followed): its kind, mode and content hash."""
    found = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(here) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = "-> " + os.readlink(path)
            else:
                digest = "dir"
            found[str(path.relative_to(root))] = f"{stat.filemode(st.st_mode)} {digest}"
    return found


def plant(where: Path, decoy: Path, target: str) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    if where.is_dir() and not where.is_symlink():
        shutil.rmtree(where)
    where.unlink(missing_ok=True)
    where.symlink_to(decoy / target)


def score(models: Path, out: Path) -> Result:
    return run_cli(
        "jobs.score", "--models-dir", models, "--output-dir", out, "--input", REPO / "sample_inputs"
    )


# (the job, the root the link is planted in, the name planted, what in the decoy it points to)
CASES = [
    ("score", "output", ".staging", "folder"),
    ("score", "output", "runs", "folder"),
    ("score", "output", "failed", "folder"),
    ("score", "output", "LATEST", "aliases.json"),
    ("score", "output", ".lock", "aliases.json"),
    ("score", "output", "runs.jsonl", "aliases.json"),
    ("score", "output", "index.html", "aliases.json"),
    ("score", "output", "metrics", "folder"),
    ("score", "output", "ledger.jsonl", "aliases.json"),
    ("score", "output", "labels", "folder"),
    ("schedule", "output", ".scheduler.lock", "aliases.json"),
    ("schedule", "output", "heartbeat.json", "aliases.json"),
    ("train", "models", ".registry.lock", "aliases.json"),
    ("train", "models", "aliases.json", "aliases.json"),
    ("train", "models", "history.jsonl", "aliases.json"),
    ("train", "models", "v1", "v1"),
    ("promote", "models", "v1", "v1"),
]


@pytest.mark.parametrize(
    ("job", "root", "name", "target"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES]
)
def test_a_planted_link_is_refused_and_nothing_outside_changes(
    registry, tmp_path, job, root, name, target
):
    decoy = make_decoy(tmp_path / "decoy")
    models, out = tmp_path / "models", tmp_path / "output"
    shutil.copytree(registry, models)
    out.mkdir()
    link = (models if root == "models" else out) / name
    if target == "v1":  # the version moved elsewhere, a link left in its place
        shutil.rmtree(decoy / "v1")
        shutil.copytree(models / "v1", decoy / "v1")
    plant(link, decoy, target)
    before = tree_hash(decoy)

    if job == "score":
        res = score(models, out)
    elif job == "train":
        res = run_cli("jobs.train", "--models-dir", models, *TRAIN_DATA, *FAST_FIT)
    elif job == "promote":
        res = run_cli("jobs.models", "promote", "v1", "--models-dir", models)
    else:  # the scheduler refuses before its first fire
        res = run_cli(
            "jobs.schedule",
            "--models-dir", models,
            "--output-dir", out,
            "--input", REPO / "sample_inputs",
            "--schedule", "0 3 * * *",
            timeout=60,
        )  # fmt: skip

    assert tree_hash(decoy) == before
    assert res.code == 7, (res.code, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    sentence = one_error_sentence(res.stderr)
    assert f"{str(link)!r} is a symbolic link" in sentence, sentence
    assert "remove that link" in sentence, sentence
    assert link.is_symlink()  # refused, not replaced
    if name != "runs":
        assert not (out / "runs").exists()  # nothing published


def test_a_link_inside_staging_is_left_alone_and_the_run_goes_on(registry, tmp_path):
    decoy = make_decoy(tmp_path / "decoy")
    models, out = tmp_path / "models", tmp_path / "output"
    shutil.copytree(registry, models)
    (out / ".staging" / "20200101T000000Z-dead01").mkdir(parents=True)  # a killed run's folder
    plant(out / ".staging" / "20200101T000000Z-link01", decoy, "folder")
    before = tree_hash(decoy)

    res = score(models, out)

    assert res.code == 0, res.stderr[-3000:]
    assert tree_hash(decoy) == before
    assert sorted(p.name for p in (out / ".staging").iterdir()) == ["20200101T000000Z-link01"]
    assert "left alone" in res.stderr


def test_folders_and_lock_files_are_never_wider_than_0755_and_0644_whatever_the_umask(tmp_path):
    """The storage layer itself (not only the jobs' umask): created under umask 000."""
    code = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        os.umask(0)
        from batch.storage import fs, rundir
        out = rundir.OutputDir(Path({str(tmp_path / "out")!r}))
        out.lock("r1")
        out.staging("r1")
        fs.ensure_dir(Path({str(tmp_path / "metrics" / "deep")!r}))
        fs.append_line(Path({str(tmp_path / "out" / "runs.jsonl")!r}), "{{}}")
        fs.write_atomic(Path({str(tmp_path / "out" / "LATEST")!r}), "r1")
        out.unlock()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    made = [p for p in tmp_path.rglob("*")]
    assert len(made) >= 8
    for path in made:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & ~(0o755 if path.is_dir() else 0o644) == 0, (path, oct(mode))


def _limited(limit: int):
    """preexec_fn: writes past `limit` bytes fail with EFBIG (SIGXFSZ ignored), as on a full disk."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_limited(limit: int, *argv) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", *map(str, argv)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited(limit),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def leftovers(root: Path) -> list[str]:
    """Temporary files and staging folders a failed run left under `root`."""
    found = [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".staging-" in p.name]
    staging = root / ".staging"
    if staging.is_dir():
        found += list(staging.iterdir())
    return [str(p.relative_to(root)) for p in found]


@pytest.mark.parametrize("limit", [3_000, 100_000])
def test_a_full_disk_while_scoring_leaves_no_temporary_file(registry, tmp_path, limit):
    models, out = tmp_path / "models", tmp_path / "output"
    shutil.copytree(registry, models)
    big = tmp_path / "big.csv"
    big.write_text(
        "suburb,rm\n" + "".join(f"s{i},{4 + (i % 500) / 100:.2f}\n" for i in range(40_000))
    )

    res = run_limited(
        limit, "jobs.score", "--models-dir", models, "--output-dir", out, "--input", big
    )

    assert res.code == 7, (res.code, res.stderr[-3000:])
    sentence = one_error_sentence(res.stderr)
    assert "File too large" in sentence and "ulimit -f" in sentence, sentence
    assert "Traceback" not in res.stderr
    assert leftovers(out) == [] and leftovers(models) == []
    assert not (out / "runs").exists() and not (out / "LATEST").exists()


def test_a_full_disk_while_training_leaves_no_temporary_file(registry, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(registry, models)
    before = tree_hash(models)

    res = run_limited(30_000, "jobs.train", "--models-dir", models, *TRAIN_DATA, *FAST_FIT)

    assert res.code == 7, (res.code, res.stderr[-3000:])
    assert "ulimit -f" in one_error_sentence(res.stderr)
    assert leftovers(models) == []
    assert tree_hash(models) == before  # no v2, the aliases and their history as they were
