"""Registry: atomic publish, concurrent trainers, the quality gate, alias history and rollback."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest

from batch.core.documents import AliasMove, dump
from batch.core.errors import ModelError
from batch.model.moves import rollback_target
from batch.model.registry import Registry
from tests.helpers import FAST_FIT, REPO, one_error_sentence, run_cli
from tests.model_helpers import fake_metadata


def recorded_mse(registry: Registry):
    """Stands in for the trainer's evaluation of production on the candidate's rows: these fake
    versions all share one test split, so their recorded test MSE is that evaluation."""
    return lambda version: registry.metadata(version).metrics.test_mse


def publish(
    registry: Registry, test_mse: float, promote: str = "auto", tolerance: float = 0.05, **extra
) -> dict:
    with registry.staging() as staged:
        (staged / "model.keras").write_bytes(b"not a real model, the registry does not care")
        return registry.publish(
            staged,
            fake_metadata(test_mse, **extra),
            promote,
            tolerance=tolerance,
            evaluate=recorded_mse(registry),
            evaluated_on="fake rows",
        )


def test_publish_interrupted_by_an_exception_leaves_nothing(tmp_path):
    registry = Registry(tmp_path / "m")
    with pytest.raises(RuntimeError), registry.staging() as staged:
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
        [
            sys.executable,
            "-c",
            "import sys, time; from batch.storage.locks import FileLock; "
            f"FileLock({str(root / '.staging-live.lock')!r}).acquire(); print('held', flush=True); "
            "time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
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
    cmd = [
        sys.executable,
        "-m",
        "jobs.train",
        "--models-dir",
        str(tmp_path / "m"),
        *[str(a) for a in FAST_FIT],
    ]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    versions = sorted(json.loads(o[0].strip().splitlines()[-1])["version"] for o in outs)
    assert versions == ["v1", "v2"]
    registry = Registry(tmp_path / "m")
    assert registry.versions() == ["v1", "v2"]
    assert registry.resolve("production") in ("v1", "v2")
    assert not list((tmp_path / "m").glob(".staging-*"))


def test_trainer_killed_midway_leaves_no_visible_version(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.train",
            "--models-dir",
            str(tmp_path / "m"),
            "--epochs",
            "100000",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    from batch.model.network import weight_and_bias

    assert weight_and_bias(model) == pytest.approx((meta.weight, meta.bias))


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


def test_default_gate_promotes_a_tie_and_never_a_worse_one(tmp_path):
    registry = Registry(tmp_path / "m")
    assert publish(registry, 50.0, tolerance=0.0)["promoted"]
    tie = publish(registry, 50.0, tolerance=0.0)
    assert tie["promoted"] and "at least as good as production v1" in tie["reason"]
    worse = publish(registry, 50.001, tolerance=0.0)
    assert not worse["promoted"] and "worse than production v2" in worse["reason"]
    assert worse["production_test_mse"] == 50.0 and registry.resolve("production") == "v2"


def test_a_production_that_cannot_be_evaluated_is_not_replaced_silently(tmp_path):
    registry = Registry(tmp_path / "m")
    publish(registry, 50.0)

    def broken(version):
        raise ModelError(f"{version}'s model file does not match its sha256")

    with registry.staging() as staged:
        (staged / "model.keras").write_bytes(b"x")
        decision = registry.publish(staged, fake_metadata(1.0), "auto", 0.0, evaluate=broken)
    assert not decision["promoted"] and "could not be evaluated" in decision["reason"]
    assert "promote v2" in decision["reason"] and registry.resolve("production") == "v1"


def test_every_alias_move_is_one_history_line_with_its_fields(tmp_path):
    registry = Registry(tmp_path / "m")
    publish(registry, 50.0)  # v1: gate, first model
    publish(registry, 49.0)  # v2: gate, better
    publish(registry, 60.0, promote="always")  # v3: train --promote
    publish(registry, 1.0, promote="never")  # v4: no move
    registry.promote("v4")  # by hand
    registry.promote("v4")  # already production: no move, no line
    registry.rollback()  # v4 -> v3
    lines = (tmp_path / "m" / "history.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [(e["from"], e["to"]) for e in events] == [
        (None, "v1"),
        ("v1", "v2"),
        ("v2", "v3"),
        ("v3", "v4"),
        ("v4", "v3"),
    ]
    assert [e["command"] for e in events] == [
        "train (quality gate)",
        "train (quality gate)",
        "train --promote",
        "models promote",
        "models rollback",
    ]
    for e in events:
        assert set(e) == {
            "schema_version",
            "time",
            "alias",
            "from",
            "to",
            "reason",
            "command",
            "actor",
            "to_mse",
            "from_mse",
            "mse_on",
        }
        assert e["alias"] == "production" and "@" in e["actor"] and e["reason"]
        assert dt.datetime.fromisoformat(e["time"]).utcoffset() == dt.timedelta(0)
    assert (events[1]["to_mse"], events[1]["from_mse"], events[1]["mse_on"]) == (
        49.0,
        50.0,
        "fake rows",
    )
    assert (events[3]["to_mse"], events[3]["from_mse"]) == (1.0, 60.0)
    assert "own test split" in events[3]["mse_on"]
    assert [dump(move) for move in registry.history()] == lines


def test_rollback_walks_back_the_promotions_one_by_one():
    def move(frm, to, command="models promote", alias="production"):
        return AliasMove.model_validate(
            {
                "time": "2026-01-01T00:00:00+00:00",
                "alias": alias,
                "from": frm,
                "to": to,
                "reason": "a test",
                "command": command,
                "actor": "me@here",
                "to_mse": None,
                "from_mse": None,
                "mse_on": None,
            }
        )

    events = [
        move(None, "v1", "train (quality gate)"),
        move("v1", "v2"),
        move("v2", "v3"),
        move(None, "v9", alias="staging"),
    ]
    assert rollback_target(events, "production", "v3") == "v2"
    events.append(move("v3", "v2", "models rollback"))
    assert rollback_target(events, "production", "v2") == "v1"
    events.append(move("v2", "v1", "models rollback --force"))
    with pytest.raises(ModelError, match="nothing to roll back to"):
        rollback_target(events, "production", "v1")
    with pytest.raises(ModelError, match="nothing to roll back to"):
        rollback_target([], "production", "v1")
    with pytest.raises(ModelError, match="changed outside"):
        rollback_target(events, "production", "v7")


def test_a_torn_history_line_is_skipped_and_does_not_swallow_the_next(tmp_path, caplog):
    registry = Registry(tmp_path / "m")
    publish(registry, 50.0)
    path = tmp_path / "m" / "history.jsonl"
    with open(path, "a") as fh:
        fh.write('{"time": "2026-01-01T00:00:00+00:00", "alias": "prod')  # a crash mid-write
    publish(registry, 40.0)
    events = registry.history()
    assert [e.to for e in events] == ["v1", "v2"]
    assert "not JSON" in caplog.text


def test_models_promote_rollback_history_through_the_commands(models):
    """promote -> rollback -> history, as an operator runs them, on a real trained v1."""
    registry = Registry(models)
    publish(registry, 70.0, promote="never", baseline_mse=90.0)  # v2
    res = run_cli("jobs.models", "promote", "v2", "--models-dir", models)
    assert res.code == 0, res.stderr
    assert "production: v1 -> v2" in res.stdout
    res = run_cli("jobs.models", "rollback", "--models-dir", models)
    assert res.code == 0, res.stderr
    assert "production: v2 -> v1" in res.stdout and registry.resolve("production") == "v1"
    res = run_cli("jobs.models", "history", "--json", "--models-dir", models)
    assert res.code == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(e["from"], e["to"], e["command"]) for e in events] == [
        (None, "v1", "train (quality gate)"),  # the session's training
        ("v1", "v2", "models promote"),
        ("v2", "v1", "models rollback"),
    ]
    for e in events:
        assert {"time", "alias", "from", "to", "reason", "actor", "to_mse", "from_mse"} <= set(e)
    assert events[1]["to_mse"] == 70.0
    assert events[1]["from_mse"] == pytest.approx(registry.metadata("v1").metrics.test_mse)
    res = run_cli("jobs.models", "history", "--models-dir", models)
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:6] == ["time", "alias", "from", "to", "from_mse", "to_mse"]
    assert len(lines) == 4 and "rolled back" in lines[3] and "promoted by hand" in lines[2]
    res = run_cli("jobs.models", "rollback", "--models-dir", models)
    assert res.code == 4
    assert "nothing to roll back to" in one_error_sentence(res.stderr)
    assert len(registry.history()) == 3


def test_promoting_a_version_that_fails_the_sanity_check_needs_force(models):
    registry = Registry(models)
    publish(registry, 85.0, promote="never", baseline_mse=90.0)  # v2: 85 >= 0.9 x 90
    res = run_cli("jobs.models", "promote", "v2", "--models-dir", models)
    assert res.code == 4
    line = one_error_sentence(res.stderr)
    assert "v2 fails the sanity check" in line and "--force" in line
    assert registry.resolve("production") == "v1" and len(registry.history()) == 1
    res = run_cli("jobs.models", "promote", "v2", "--force", "--models-dir", models)
    assert res.code == 0, res.stderr
    event = registry.history()[-1]
    assert event.command == "models promote --force" and "sanity check" in event.reason
    assert registry.resolve("production") == "v2"
    # Rolling back onto a failing version needs --force too.
    publish(registry, 10.0, promote="never", baseline_mse=90.0)  # v3
    assert run_cli("jobs.models", "promote", "v3", "--models-dir", models).code == 0
    res = run_cli("jobs.models", "rollback", "--models-dir", models)
    assert res.code == 4 and "--force" in one_error_sentence(res.stderr)
    assert run_cli("jobs.models", "rollback", "--force", "--models-dir", models).code == 0
    assert registry.resolve("production") == "v2"


def test_show_leaves_out_the_training_sample_unless_full(models):
    res = run_cli("jobs.models", "show", "v1", "--models-dir", models)
    assert res.code == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["training_sample"] == {"points": 404, "omitted": "use 'show --full' to print them"}
    assert len(res.stdout.splitlines()) < 150
    full = json.loads(run_cli("jobs.models", "show", "v1", "--full", "--models-dir", models).stdout)
    assert len(full["training_sample"]["rm"]) == 404


# -- the registry's documents, read through their typed models ------------------------------------


def test_alias_file_carries_its_schema_version_which_is_no_alias(tmp_path):
    registry = Registry(tmp_path / "m")
    publish(registry, 50.0)
    path = tmp_path / "m" / "aliases.json"
    assert json.loads(path.read_text()) == {"production": "v1", "schema_version": 1}
    assert registry.aliases() == {"production": "v1"} and registry.aliases_of("v1") == [
        "production"
    ]
    path.write_text('{"production": "v1"}\n')  # written before documents had a version
    assert registry.aliases() == {"production": "v1"}
    path.write_text('{"production": "v1", "schema_version": 2}\n')
    with pytest.raises(ModelError, match="newer") as refused:
        registry.aliases()
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    path.write_text('{"production": "v1", "Production": "v1"}\n')  # a typo is no second alias
    with pytest.raises(ModelError, match="'Production' is not a field"):
        registry.resolve("production")


def test_metadata_from_an_older_or_newer_product_is_migrated_or_refused(tmp_path):
    registry = Registry(tmp_path / "m")
    publish(registry, 50.0)
    path = tmp_path / "m" / "v1" / "metadata.json"
    written = json.loads(path.read_text())
    assert written["schema_version"] == 1 and written["version"] == "v1"
    older = {k: v for k, v in written.items() if k not in ("schema_version", "interval", "fold")}
    path.write_text(json.dumps(older))
    meta = registry.metadata("v1")
    assert meta.version == "v1" and meta.interval is None and meta.fold is None
    path.write_text(json.dumps({**written, "schema_version": 2}))
    with pytest.raises(ModelError, match="schema_version 2, newer") as refused:
        registry.metadata("v1")
    assert str(path) in str(refused.value)
    path.write_text(json.dumps({**written, "model_sha256": "not a hash"}))
    with pytest.raises(ModelError, match="field 'model_sha256' must be a sha256"):
        registry.load_fold("v1")


def test_a_history_line_that_is_json_but_no_move_is_refused(tmp_path):
    registry = Registry(tmp_path / "m")
    publish(registry, 50.0)
    path = tmp_path / "m" / "history.jsonl"
    (line,) = path.read_text().splitlines()
    older = {k: v for k, v in json.loads(line).items() if k != "schema_version"}
    path.write_text(json.dumps(older) + "\n")  # written before documents had a version
    assert [m.to for m in registry.history()] == ["v1"]
    with open(path, "a") as fh:
        fh.write(json.dumps({**older, "to": "newest"}) + "\n")
    with pytest.raises(ModelError, match="line 2 is damaged: field 'to'"):
        registry.history()
    with pytest.raises(ModelError, match="line 2"):
        registry.rollback()
