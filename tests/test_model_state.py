"""Model state refused at the door (issue 20, item 5): promote and rollback refuse a version
whose files are missing or damaged, and scoring refuses damaged band parameters and a verified
fold that disagrees with metadata.json. Every case through the real CLI: exit 4, one sentence."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import one_error_sentence, run_cli


def second_version(models: Path) -> Path:
    """v2: a copy of v1 (production), so there is a version to promote and to roll back from."""
    v2 = models / "v2"
    shutil.copytree(models / "v1", v2)
    meta = json.loads((v2 / "metadata.json").read_text())
    meta["version"] = "v2"
    (v2 / "metadata.json").write_text(json.dumps(meta))
    return v2


def edit_metadata(version: Path, change) -> None:
    path = version / "metadata.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def refused(res, *words: str) -> str:
    assert res.code == 4, (res.code, res.stdout, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    sentence = one_error_sentence(res.stderr)
    for w in words:
        assert w in sentence, sentence
    return sentence


def aliases(models: Path) -> dict:
    return json.loads((models / "aliases.json").read_text())


def corrupt_model(v: Path) -> None:
    data = bytearray((v / "model.keras").read_bytes())
    data[-10] ^= 0xFF
    (v / "model.keras").write_bytes(bytes(data))


def other_weight(v: Path) -> None:
    edit_metadata(v, lambda m: m["fold"].update(weight=m["fold"]["weight"] + 1e-3))


def other_sha(v: Path) -> None:
    edit_metadata(v, lambda m: m["fold"].update(model_sha256="0" * 64))


def both_weights(v: Path) -> None:
    """metadata.json's weight and its fold agree with each other, not with model.keras."""

    def change(m):
        m["weight"] += 1e-3
        m["fold"]["weight"] = m["weight"]

    edit_metadata(v, change)


DAMAGE = {
    "model file missing": (lambda v: (v / "model.keras").unlink(), ["model.keras", "missing"]),
    "metadata missing": (lambda v: (v / "metadata.json").unlink(), ["metadata.json missing"]),
    "metadata not JSON": (lambda v: (v / "metadata.json").write_text("{trunc"), ["metadata"]),
    "model file changed": (corrupt_model, ["sha256"]),
    "fold weight differs": (other_weight, ["fold", "weight"]),
    "fold names another file": (other_sha, ["fold", "sha256"]),
    "archive differs from both": (both_weights, ["fold", "model.keras"]),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_promote_refuses_a_damaged_version_naming_what_is_wrong(models, damage):
    v2 = second_version(models)
    harm, words = DAMAGE[damage]
    harm(v2)
    before = (models / "aliases.json").read_bytes()
    for extra in ([], ["--force"]):
        res = run_cli("jobs.models", "promote", "v2", *extra, "--models-dir", models)
        refused(res, "v2", *words)
    assert (models / "aliases.json").read_bytes() == before


@pytest.mark.parametrize(
    "damage", ["model file missing", "metadata missing", "fold weight differs"]
)
def test_rollback_refuses_a_damaged_target(models, damage):
    second_version(models)
    assert run_cli("jobs.models", "promote", "v2", "--models-dir", models).code == 0
    assert aliases(models)["production"] == "v2"
    harm, words = DAMAGE[damage]
    harm(models / "v1")
    res = run_cli("jobs.models", "rollback", "--models-dir", models)
    refused(res, "v1", *words)
    assert aliases(models)["production"] == "v2"


def score_with(models: Path, tmp_path: Path):
    data = tmp_path / "in.csv"
    data.write_text("rm,medv\n6.0,20\n7.0,30\n")
    out = tmp_path / "out"
    res = run_cli("jobs.score", "--models-dir", models, "--output-dir", out, "--input", data)
    return res, out


BAND = {
    "floor nan": lambda m: m["interval"]["scale"].update(floor=float("nan")),
    "slope inf": lambda m: m["interval"]["scale"].update(slope_above=float("inf")),
    "negative slope": lambda m: m["interval"]["scale"].update(slope_below=-1.0),
    "negative quantile": lambda m: m["interval"].update(quantile=-2.0),
    "negative floor": lambda m: m["interval"]["scale"].update(floor=-0.5),
}


@pytest.mark.parametrize("damage", list(BAND))
def test_scoring_refuses_non_finite_or_negative_band_parameters(models, tmp_path, damage):
    edit_metadata(models / "v1", BAND[damage])
    res, out = score_with(models, tmp_path)
    refused(res, "metadata")
    assert not (out / "runs").exists() or not list((out / "runs").iterdir())


@pytest.mark.parametrize("damage", ["fold weight differs", "fold names another file"])
def test_scoring_refuses_a_fold_that_disagrees_with_metadata(models, tmp_path, damage):
    DAMAGE[damage][0](models / "v1")
    res, out = score_with(models, tmp_path)
    refused(res, "v1 is damaged", "fold")
    assert not (out / "runs").exists() or not list((out / "runs").iterdir())


def test_an_intact_version_still_promotes_and_scores(models, tmp_path):
    second_version(models)
    sha = hashlib.sha256((models / "v2" / "model.keras").read_bytes()).hexdigest()
    assert json.loads((models / "v2" / "metadata.json").read_text())["model_sha256"] == sha
    assert run_cli("jobs.models", "promote", "v2", "--models-dir", models).code == 0
    res, _ = score_with(models, tmp_path)
    assert res.code == 0, res.stderr[-3000:]
