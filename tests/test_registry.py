"""Registry: atomic publish, concurrent trainers, aliases and the quality gate, verified loading."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from batch.errors import ModelError
from batch.registry import Registry
from tests.helpers import REPO, one_error_sentence, run_cli


def fake_metadata(test_mse: float) -> dict:
    return {"metrics": {"test_mse": test_mse, "loss": 1.0, "val_loss": 1.0, "test_mae": 1.0},
            "created_at": "2026-01-01T00:00:00+00:00", "weight": 1.0, "bias": 0.0}


def publish(registry: Registry, test_mse: float, promote: str = "auto") -> dict:
    with registry.staging() as staged:
        (staged / "model.keras").write_bytes(b"not a real model, the registry does not care")
        return registry.publish(staged, fake_metadata(test_mse), promote, tolerance=0.05)


def test_publish_interrupted_by_an_exception_leaves_nothing(tmp_path):
    registry = Registry(tmp_path / "m")
    with pytest.raises(RuntimeError):
        with registry.staging() as staged:
            (staged / "model.keras").write_bytes(b"half")
            raise RuntimeError("disk full, say")
    assert registry.versions() == []
    assert [p.name for p in (tmp_path / "m").iterdir() if not p.name.startswith(".registry")] == []


def test_abandoned_staging_folders_are_cleaned_but_live_ones_kept(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    (root / ".staging-dead").mkdir()
    (root / ".staging-dead.lock").write_text("")
    (root / ".staging-live").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from batch.locks import FileLock; "
         f"FileLock({str(root / '.staging-live.lock')!r}).acquire(); print('held', flush=True); "
         "time.sleep(60)"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        Registry(root).clean_abandoned()
        assert not (root / ".staging-dead").exists()
        assert (root / ".staging-live").exists()
        assert Registry(root).versions() == []  # staging folders are never versions
    finally:
        holder.kill()
        holder.wait()


def test_versions_numbered_in_order_and_gate(tmp_path):
    registry = Registry(tmp_path / "m")
    first = publish(registry, 50.0)
    assert first["version"] == "v1" and first["promoted"] and "first model" in first["reason"]
    worse = publish(registry, 52.0)  # within 5%
    assert worse["version"] == "v2" and worse["promoted"]
    assert worse["production_test_mse"] == 50.0 and worse["test_mse"] == 52.0
    much_worse = publish(registry, 55.0)  # 55 > 52 * 1.05
    assert much_worse["version"] == "v3" and not much_worse["promoted"]
    assert "not promoted" in much_worse["reason"]
    assert registry.aliases() == {"production": "v2"}
    forced = publish(registry, 99.0, promote="always")
    assert forced["promoted"] and registry.resolve("production") == "v4"
    skipped = publish(registry, 1.0, promote="never")
    assert not skipped["promoted"] and registry.resolve("production") == "v4"
    assert registry.versions() == ["v1", "v2", "v3", "v4", "v5"]
    assert registry.resolve("latest") == "v5" and registry.resolve("3") == "v3"
    meta = json.loads((tmp_path / "m" / "v3" / "metadata.json").read_text())
    assert meta["version"] == "v3" and len(meta["model_sha256"]) == 64


def test_resolve_errors_are_model_errors(tmp_path):
    registry = Registry(tmp_path / "m")
    with pytest.raises(ModelError, match="empty"):
        registry.resolve("production")
    publish(registry, 1.0, promote="never")
    with pytest.raises(ModelError, match="no production model"):
        registry.resolve("production")
    with pytest.raises(ModelError, match="v9"):
        registry.resolve("v9")


def test_two_trainers_started_together_get_distinct_versions(tmp_path):
    cmd = [sys.executable, "-m", "jobs.train", "--models-dir", str(tmp_path / "m"), "--epochs", "3"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    versions = sorted(json.loads(o[0].strip().splitlines()[-1])["version"] for o in outs)
    assert versions == ["v1", "v2"]
    registry = Registry(tmp_path / "m")
    assert registry.versions() == ["v1", "v2"]
    assert registry.resolve("production") in ("v1", "v2")
    assert not list((tmp_path / "m").glob(".staging-*"))


def test_trainer_killed_midway_leaves_no_visible_version(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "jobs.train", "--models-dir",
                             str(tmp_path / "m"), "--epochs", "100000"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "epoch 1/" not in (proc.stderr.readline() or ""):
        pass
    proc.kill()
    proc.wait()
    assert Registry(tmp_path / "m").versions() == []


def test_tampered_model_is_refused(models):
    registry = Registry(models)
    path = models / "v1" / "model.keras"
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(ModelError, match="sha256"):
        registry.load("v1")


def test_load_uses_safe_mode_and_gives_the_trained_weights(models, trained):
    model, meta = Registry(models).load("production")
    from batch.model import weight_and_bias

    assert weight_and_bias(model) == pytest.approx((meta["weight"], meta["bias"]))


def test_models_list_show_promote(models, tmp_path):
    registry = Registry(models)
    publish(registry, 999.0, promote="never")  # v2
    res = run_cli("jobs.models", "list", "--models-dir", models)
    assert res.code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["version", "created", "test_mse", "weight", "bias", "aliases"]
    assert lines[1].split()[0] == "v1" and lines[1].split()[-1] == "production"
    assert lines[2].split()[0] == "v2" and "999.0000" in lines[2]
    res = run_cli("jobs.models", "show", "v1", "--models-dir", models)
    assert res.code == 0 and json.loads(res.stdout)["version"] == "v1"
    assert json.loads(res.stdout)["aliases"] == ["production"]
    res = run_cli("jobs.models", "--models-dir", models, "promote", "v2")
    assert res.code == 0 and "v1 -> v2" in res.stdout
    assert registry.resolve("production") == "v2"


def test_models_unknown_version_exit_4(models):
    for cmd in (["show", "v42"], ["promote", "v42"]):
        res = run_cli("jobs.models", *cmd, "--models-dir", models)
        assert res.code == 4
        assert "v42" in one_error_sentence(res.stderr)


def test_models_list_on_empty_registry_says_how_to_train(tmp_path):
    res = run_cli("jobs.models", "list", "--models-dir", tmp_path / "none")
    assert res.code == 0 and "python -m jobs.train" in res.stdout


def test_models_bad_usage_exit_2(models):
    assert run_cli("jobs.models", "frobnicate").code == 2
    assert run_cli("jobs.models").code == 2
