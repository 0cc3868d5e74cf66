"""Settings precedence (flag > env > .env > default) and bad values (exit 2, one sentence)."""

from __future__ import annotations

import pytest

from batch.core.errors import ConfigError
from batch.settings import Settings, load_settings
from jobs import _cli, score, train
from tests.helpers import one_error_sentence, run_cli


def test_defaults_match_the_contract(settings):
    s = Settings(_env_file=None)
    assert (str(s.models_dir), str(s.output_dir), s.input, s.model_version) == (
        "models",
        "output",
        ["sample_inputs"],
        "production",
    )
    assert (s.schedule, s.timezone) == ("0 2 * * *", "UTC")
    assert (s.epochs, s.batch_size, s.learning_rate, s.validation_split, s.seed, s.optimizer) == (
        101,
        16,
        0.005,
        0.3,
        42,
        "rmsprop",
    )
    assert s.max_reject_fraction == 0.1 and s.promote_tolerance == 0.0
    assert s.interval_level == 0.9
    assert s.misfire_grace_seconds == 3600


def test_precedence_flag_over_env_over_dotenv_over_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("BATCH_EPOCHS=7\nBATCH_SEED=5\nBATCH_BATCH_SIZE=4\n")
    monkeypatch.setenv("BATCH_SEED", "6")
    monkeypatch.setenv("BATCH_BATCH_SIZE", "8")
    args = train.parser().parse_args(["--batch-size", "9"])
    s = _cli.settings_from_args(args, train.FIELDS)
    assert s.learning_rate == 0.005  # default
    assert s.epochs == 7  # .env
    assert s.seed == 6  # env over .env
    assert s.batch_size == 9  # flag over env


def test_input_from_env_is_comma_separated_and_flag_is_repeatable(monkeypatch):
    monkeypatch.setenv("BATCH_INPUT", "a.csv, dir/ ,b/*.parquet")
    assert load_settings(_env_file=None).input == ["a.csv", "dir/", "b/*.parquet"]
    args = score.parser().parse_args(["--input", "x.csv", "--input", "y/"])
    assert _cli.settings_from_args(args, score.FIELDS).input == ["x.csv", "y/"]


@pytest.mark.parametrize(
    "overrides, names",
    [
        ({"epochs": "-3"}, "--epochs / BATCH_EPOCHS"),
        ({"learning_rate": "abc"}, "--learning-rate / BATCH_LEARNING_RATE"),
        ({"max_reject_fraction": "1.5"}, "--max-reject-fraction"),
        ({"timezone": "Mars/Base"}, "--timezone"),
        ({"domain_min": "30"}, "domain_min"),
        ({"interval_level": "1"}, "--interval-level / BATCH_INTERVAL_LEVEL"),
        ({"interval_level": "0"}, "--interval-level / BATCH_INTERVAL_LEVEL"),
    ],
)
def test_bad_values_raise_config_error_naming_the_setting(overrides, names):
    with pytest.raises(ConfigError) as err:
        load_settings(overrides, _env_file=None)
    assert names in str(err.value)
    assert err.value.exit_code == 2


def test_bad_flag_value_exits_2_with_one_sentence():
    res = run_cli("jobs.train", "--epochs", "-3")
    assert res.code == 2
    line = one_error_sentence(res.stderr)
    assert "epochs" in line and "-3" in line
    assert "Traceback" not in res.stderr


def test_bad_env_value_exits_2_with_one_sentence():
    res = run_cli("jobs.train", env={"BATCH_LEARNING_RATE": "abc"})
    assert res.code == 2
    assert "learning_rate" in one_error_sentence(res.stderr)
    assert "BATCH_LEARNING_RATE" in res.stderr


def test_bad_dotenv_value_exits_2(tmp_path):
    (tmp_path / ".env").write_text("BATCH_MAX_REJECT_FRACTION=lots\n")
    res = run_cli("jobs.score", "--help", cwd=tmp_path)
    assert res.code == 0  # --help never reads settings
    res = run_cli(
        "jobs.score",
        "--models-dir",
        tmp_path / "m",
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert res.code == 2
    assert "max_reject_fraction" in one_error_sentence(res.stderr)


def test_unknown_flag_exits_2():
    res = run_cli("jobs.score", "--no-such-flag")
    assert res.code == 2
    assert "unrecognized arguments" in res.stderr


def test_reference_documents_every_setting():
    from batch.settings import env_name, flag_name
    from tests.helpers import REPO

    readme = (REPO / "docs" / "reference.md").read_text()  # the settings moved out of the README
    for name in Settings.model_fields:
        assert f"`{flag_name(name)}`" in readme, name
        assert f"`{env_name(name)}`" in readme, name
