"""Hardening outside the scorer: a damaged or locked registry, an unusable registry location,
signals during training, training settings Keras would refuse, strict JSON, the command line.

Real subprocesses, real files, a real tmpfs (full disk, read-only mount), real capabilities
(permission denied as root) and real signals; the state of models/ is checked every time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from batch.core.errors import EXIT_CODES
from tests.helpers import (
    FAST_FIT,
    REPO,
    WITHOUT_DAC_OVERRIDE,
    assert_failed,
    one_error_sentence,
    run_cli,
    tmpfs,
)


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as parsers other than Python's do."""

    def refuse(name: str):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def registry_state(root: Path) -> dict:
    """What a command must not change when it fails: the version folders and the alias file."""
    return {
        "versions": sorted(p.name for p in root.iterdir() if p.name.startswith("v")),
        "staging": sorted(p.name for p in root.glob(".staging-*")),
        "aliases": (root / "aliases.json").read_bytes()
        if (root / "aliases.json").exists()
        else None,
        "history": (root / "history.jsonl").read_bytes()
        if (root / "history.jsonl").exists()
        else None,
    }


def add_version(models: Path, name: str) -> Path:
    """A second published version: a copy of v1 under another number."""
    shutil.copytree(models / "v1", models / name)
    meta = json.loads((models / name / "metadata.json").read_text())
    meta["version"] = name
    (models / name / "metadata.json").write_text(json.dumps(meta))
    return models / name


def damage(path: Path, how: str) -> None:
    if how == "not JSON":
        path.write_text('{"weight": 0.5, "bias"')
    elif how == "wrong shape":
        path.write_text("[1, 2, 3]\n")
    elif how == "wrong types":
        meta = json.loads(path.read_text())
        meta["weight"] = "heavy"
        path.write_text(json.dumps(meta))
    elif how == "band of the wrong type":
        meta = json.loads(path.read_text())
        meta["interval"]["scale"] = [1, 2]
        path.write_text(json.dumps(meta))
    elif how == "empty":
        path.write_text("")
    else:
        raise AssertionError(how)


# -- a damaged registry (exit 4) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "how", ["not JSON", "wrong shape", "wrong types", "band of the wrong type", "empty"]
)
def test_scoring_with_a_damaged_metadata_json_exits_4_naming_it(models, tmp_path, write_csv, how):
    path = write_csv("a.csv", "rm\n6\n")
    meta = models / "v1" / "metadata.json"
    damage(meta, how)
    out = tmp_path / "out"
    res = run_cli(
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        out,
        "--input",
        path,
        "--model-version",
        "v1",
    )
    sentence = assert_failed(res, 4, str(meta), "damaged")
    assert "\n" not in sentence
    assert not (out / "runs").exists() or not list((out / "runs").iterdir())
    assert not (out / "LATEST").exists()


@pytest.mark.parametrize(
    "text", ["{broken", '["v1"]', '{"production": 1}', '{"production": "newest"}']
)
def test_scoring_with_a_damaged_aliases_json_exits_4_naming_it(models, tmp_path, write_csv, text):
    path = write_csv("a.csv", "rm\n6\n")
    (models / "aliases.json").write_text(text)
    out = tmp_path / "out"
    res = run_cli("jobs.score", "--models-dir", models, "--output-dir", out, "--input", path)
    assert_failed(res, 4, str(models / "aliases.json"))
    assert not (out / "LATEST").exists()


def test_models_list_lists_every_readable_version_and_marks_the_damaged(models):
    add_version(models, "v2")
    add_version(models, "v3")
    damage(models / "v2" / "metadata.json", "wrong types")
    res = run_cli("jobs.models", "list", "--models-dir", models)
    assert res.code == 0, res.stderr
    assert "Traceback" not in res.stderr
    rows = {
        line.split()[0]: line for line in res.stdout.splitlines() if line[:2] in ("v1", "v2", "v3")
    }
    assert set(rows) == {"v1", "v2", "v3"}
    assert "production" in rows["v1"] and "DAMAGED" not in rows["v1"]
    assert "DAMAGED" in rows["v2"]
    assert "DAMAGED" not in rows["v3"] and "-" not in rows["v3"].split()[2]
    notes = [line for line in res.stdout.splitlines() if line.startswith("damaged:")]
    assert len(notes) == 1 and str(models / "v2" / "metadata.json") in notes[0]


def test_models_list_with_a_damaged_alias_file_still_lists_the_versions(models):
    (models / "aliases.json").write_text("[]")
    res = run_cli("jobs.models", "list", "--models-dir", models)
    assert res.code == 0 and "Traceback" not in res.stderr
    assert any(
        line.startswith("v1") and line.rstrip().endswith("?") for line in res.stdout.splitlines()
    ), res.stdout
    assert (
        f"damaged: the registry's alias file cannot be used: aliases.json at {models / 'aliases.json'}"
        in res.stdout
    )


def test_models_show_and_promote_a_damaged_version_exit_4(models):
    add_version(models, "v2")
    damage(models / "v2" / "metadata.json", "wrong shape")
    before = registry_state(models)
    for args in (["show", "v2"], ["promote", "v2"]):
        res = run_cli("jobs.models", *args, "--models-dir", models)
        assert res.code == 4 and "Traceback" not in res.stderr, res.stderr
        assert str(models / "v2" / "metadata.json") in one_error_sentence(res.stderr)
    assert registry_state(models) == before


@pytest.mark.parametrize("what", ["production metadata", "aliases.json"])
def test_training_checks_the_registry_before_fitting(models, what):
    if what == "aliases.json":
        bad = models / "aliases.json"
        bad.write_text('{"production": {"version": "v1"}}')
    else:
        bad = models / "v1" / "metadata.json"
        damage(bad, "not JSON")
    before = registry_state(models)
    res = run_cli("jobs.train", "--models-dir", models, *FAST_FIT)
    assert_failed(res, 4, str(bad))
    assert "training data" not in res.stderr, "it loaded the data (and fitted) first"
    assert registry_state(models) == before


def test_a_damaged_version_that_no_alias_names_does_not_stop_training(models):
    add_version(models, "v2")
    damage(models / "v2" / "metadata.json", "wrong types")
    res = run_cli("jobs.train", "--models-dir", models, *FAST_FIT, "--no-promote")
    assert res.code == 0, res.stderr[-3000:]
    assert res.json["version"] == "v3"
    assert "metadata of v2" in res.stderr  # the warning names it


# -- a held registry lock (exit 6 after the timeout) ---------------------------------------------


def hold_registry_lock(root: Path, seconds: float) -> subprocess.Popen:
    """A real process holding the registry lock for `seconds`, then exiting."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from batch.model.registry import Registry\n"
            f"with Registry(Path({str(root)!r}))._lock():\n"
            "    print('held', flush=True)\n"
            f"    time.sleep({seconds})\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_registry_lock_gives_up_after_the_timeout_with_exit_6(models):
    holder = hold_registry_lock(models, 120)
    try:
        before = registry_state(models)
        res = run_cli(
            "jobs.models", "promote", "v1", "--models-dir", models, "--registry-lock-timeout", "1"
        )
        assert res.code == 6, res.stderr
        sentence = one_error_sentence(res.stderr)
        assert f"pid {holder.pid}" in sentence and "registry_lock_timeout" in sentence
        # The wait was announced, naming the holder, before giving up.
        assert f"is locked by pid {holder.pid}" in res.stderr and "waiting up to 1 s" in res.stderr
        res = run_cli(
            "jobs.train",
            "--models-dir",
            models,
            *FAST_FIT,
            env={"BATCH_REGISTRY_LOCK_TIMEOUT": "1"},
        )
        assert_failed(res, 6, f"pid {holder.pid}")
        assert "training data" not in res.stderr
        assert registry_state(models) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_released_within_the_timeout_is_waited_for(models):
    add_version(models, "v2")
    holder = hold_registry_lock(models, 2)
    try:
        res = run_cli("jobs.models", "promote", "v2", "--models-dir", models)
        assert res.code == 0, res.stderr
        assert "waiting up to 60 s" in res.stderr
        assert json.loads((models / "aliases.json").read_text())["production"] == "v2"
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_waiting_for_the_registry_lock_exits_130_within_10_s(models, sig):
    """A wait on another command's lock is a wait like any other: a stop signal ends it."""
    add_version(models, "v2")
    holder = hold_registry_lock(models, 120)
    before = registry_state(models)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.models", "promote", "v2", "--models-dir", str(models)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO), BATCH_REGISTRY_LOCK_TIMEOUT="600"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("waiting up to" in ln for ln in lines):
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        assert any("waiting up to 600 s" in ln for ln in lines), "".join(lines)
        began = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        took = time.monotonic() - began
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        holder.kill()
        holder.wait()
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr[-3000:]
    assert took < 10, took
    assert "Traceback" not in stderr
    assert "interrupted" in one_error_sentence(stderr)
    assert registry_state(models) == before  # production still v1: nothing was promoted


# -- the registry location (exit 7) ---------------------------------------------------------------


def test_training_into_a_registry_that_is_a_file_exits_7(tmp_path):
    target = tmp_path / "models"
    target.write_text("x")
    res = run_cli("jobs.train", "--models-dir", target, *FAST_FIT)
    assert_failed(res, 7, str(target), "Not a directory", "nothing was published")
    assert target.read_text() == "x"


def test_training_into_a_read_only_registry_exits_7_before_fitting(models, tmp_path):
    with tmpfs(tmp_path / "ro", "20m") as root:
        shutil.copytree(models, root / "models")
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        before = registry_state(root / "models")
        res = run_cli("jobs.train", "--models-dir", root / "models", *FAST_FIT)
        assert_failed(res, 7, str(root / "models"), "Read-only file system")
        assert "training data" not in res.stderr
        assert registry_state(root / "models") == before


def test_training_into_a_full_registry_exits_7_and_leaves_no_staging(models, tmp_path):
    # Room for the registry as it is (tmpfs stores files in whole 4 KiB pages) and a little
    # more, not for a second version's files (the model alone takes several pages).
    pages = sum(-(-p.stat().st_size // 4096) for p in models.rglob("*") if p.is_file())
    size = f"{(pages + 2) * 4}k"
    with tmpfs(tmp_path / "disk", size) as root:
        shutil.copytree(models, root / "models")
        before = registry_state(root / "models")
        res = run_cli("jobs.train", "--models-dir", root / "models", *FAST_FIT)
        sentence = assert_failed(res, 7, str(root / "models"), "No space left on device")
        assert "nothing was published" in sentence
        assert registry_state(root / "models") == before
        assert not list((root / "models").glob(".staging-*"))


def test_training_without_write_permission_exits_7(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("runs as root only (a non-root user simply cannot write there either)")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop root's override of permissions")
    root = tmp_path / "models"
    root.mkdir()
    root.chmod(0o500)
    res = run_cli("jobs.train", "--models-dir", root, *FAST_FIT, prefix=WITHOUT_DAC_OVERRIDE)
    assert_failed(res, 7, str(root), "Permission denied")
    assert list(root.iterdir()) == []


# -- signals during training (exit 130) -----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_mid_fit_exits_130_and_publishes_nothing(models, sig):
    before = registry_state(models)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.train",
            "--models-dir",
            str(models),
            "--epochs",
            "100000",
            "--log-every-epochs",
            "1",
        ],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("epoch 3/" in ln for ln in lines):
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        assert any("epoch 3/" in ln for ln in lines), "the fit did not start:\n" + "".join(lines)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert strict_json(out.strip().splitlines()[-1]) == {"status": "interrupted", "exit_code": 130}
    assert registry_state(models) == before


# -- training settings (exit 2 before fitting) and strict JSON ------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--seed", 2**32], ["--seed", "4294967295"]),
        (["--seed", -1], ["--seed"]),
        (["--batch-size", 2**63], ["--batch-size"]),
        (["--learning-rate", "inf"], ["--learning-rate"]),
        (["--learning-rate", "nan"], ["--learning-rate"]),
        (["--promote-tolerance", "inf"], ["--promote-tolerance"]),
        (["--validation-split", 1], ["--validation-split"]),
        (["--validation-split", 0.999], ["--validation-split 0.999", "0 of the 404"]),
        (["--registry-lock-timeout", -1], ["--registry-lock-timeout"]),
    ],
)
def test_training_settings_keras_would_refuse_exit_2_before_fitting(tmp_path, flags, words):
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", *flags)
    assert_failed(res, 2, *words)
    assert "epoch " not in res.stderr  # refused before the fit
    assert not (tmp_path / "m").exists() or not [
        p for p in (tmp_path / "m").iterdir() if p.name.startswith("v")
    ]


def test_a_split_that_holds_out_no_row_exits_2(tmp_path):
    # 1 - 1e-17 is 1.0 in floating point: Keras would find no validation row and refuse.
    res = run_cli(
        "jobs.train", "--models-dir", tmp_path / "m", "--validation-split", 1e-17, *FAST_FIT
    )
    assert_failed(res, 2, "--validation-split 1e-17", "holds out no row", "404")
    assert "epoch " not in res.stderr


def test_every_json_of_a_training_without_validation_rows_is_strict(tmp_path):
    models = tmp_path / "m"
    res = run_cli("jobs.train", "--models-dir", models, "--validation-split", 0, *FAST_FIT)
    assert res.code == 0, res.stderr[-3000:]
    summary = strict_json(res.stdout.strip().splitlines()[-1])
    assert summary["metrics"]["val_loss"] is None
    meta = strict_json((models / "v1" / "metadata.json").read_text())
    assert meta["metrics"]["val_loss"] is None and meta["hyperparameters"]["validation_split"] == 0
    for line in (models / "history.jsonl").read_text().splitlines():
        strict_json(line)
    strict_json((models / "aliases.json").read_text())
    # The registry still reads it: the version is listed and scores.
    listing = run_cli("jobs.models", "list", "--models-dir", models)
    assert listing.code == 0 and "DAMAGED" not in listing.stdout


# -- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["jobs.train", "jobs.score"])
def test_an_unknown_flag_exits_2_with_the_json_summary_line(module):
    res = run_cli(module, "--epocs", "3")
    assert res.code == 2
    assert "Traceback" not in res.stderr
    assert "--epocs" in one_error_sentence(res.stderr)
    summary = strict_json(res.stdout.strip().splitlines()[-1])
    assert summary["status"] == "failed" and summary["exit_code"] == 2
    assert "--epocs" in summary["error"]


@pytest.mark.parametrize(
    "args",
    [
        ["jobs.models", "list", "--bogus"],
        ["jobs.runs", "--bogus"],
        ["jobs.schedule", "--bogus"],
        ["jobs.models", "frobnicate"],
    ],
)
def test_usage_errors_of_the_other_commands_exit_2_in_one_sentence(args):
    res = run_cli(*args)
    assert res.code == 2 and "Traceback" not in res.stderr
    one_error_sentence(res.stderr)


def test_an_unknown_batch_name_warns_with_the_setting_it_likely_meant(tmp_path):
    (tmp_path / ".env").write_text("BATCH_LEARNING_RATES=0.1\nBATCH_UID=1000\n")
    res = run_cli(
        "jobs.models",
        "list",
        "--models-dir",
        tmp_path / "m",
        cwd=tmp_path,
        env={"BATCH_EPOCS": "3", "BATCH_HOST_OUTPUT_DIR": "./out", "BATCH_SCHEDULE": "0 2 * * *"},
    )
    assert res.code == 0, res.stderr
    warnings = [ln for ln in res.stderr.splitlines() if ": warning: " in ln]
    assert len(warnings) == 2, warnings
    assert any("BATCH_EPOCS" in w and "did you mean BATCH_EPOCHS?" in w for w in warnings)
    assert any(
        "BATCH_LEARNING_RATES" in w and "did you mean BATCH_LEARNING_RATE?" in w for w in warnings
    )


@pytest.mark.parametrize(
    "module", ["jobs.train", "jobs.score", "jobs.models", "jobs.runs", "jobs.schedule"]
)
def test_every_help_lists_the_exit_codes(module):
    res = run_cli(module, "--help")
    assert res.code == 0
    text = " ".join(res.stdout.split())
    assert "Exit codes: 0 success" in text
    for code in (2, 6):
        assert f"{code} {' '.join(EXIT_CODES[code].split())}" in text
    if module in ("jobs.train", "jobs.models"):
        assert f"7 {EXIT_CODES[7]}" in text and "registry" in EXIT_CODES[7]
