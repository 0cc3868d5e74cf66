"""Every numeric setting has a documented range checked at start (exit 2 naming the setting and
the range); a damaged .env or an empty location is exit 2 in one sentence, never a traceback."""

from __future__ import annotations

import math

import pytest

from batch.core.errors import ConfigError
from batch.settings import Settings, allowed_range, env_name, flag_name, load_settings
from tests.helpers import assert_failed, run_cli

NUMERIC = sorted(
    name
    for name, info in Settings.model_fields.items()
    if any(t in str(info.annotation) for t in ("int", "float"))
)


def test_the_numeric_settings_are_found():
    assert {"chunk_rows", "epochs", "heartbeat_seconds", "http_timeout_s"} <= set(NUMERIC)


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_setting_has_a_range(name):
    span = allowed_range(name)
    assert span and "any" not in span, f"{name} has no upper and lower bound: {span}"


def _bounds(name: str) -> tuple[float, float]:
    low = high = None
    for rule in Settings.model_fields[name].metadata:
        low = getattr(rule, "ge", None) if getattr(rule, "ge", None) is not None else low
        low = getattr(rule, "gt", None) if getattr(rule, "gt", None) is not None else low
        high = getattr(rule, "le", None) if getattr(rule, "le", None) is not None else high
        high = getattr(rule, "lt", None) if getattr(rule, "lt", None) is not None else high
    return low, high


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("where", ["above", "below", "nan", "inf"])
def test_a_value_outside_the_range_names_the_setting_and_the_range(name, where):
    low, high = _bounds(name)
    value = {
        "above": high * 10 + 1 if high > 0 else 1,
        "below": low - 1 if low >= 0 else low * 10,
        "nan": math.nan,
        "inf": math.inf,
    }[where]
    if "int" in str(Settings.model_fields[name].annotation) and math.isfinite(value):
        value = int(value)
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, _env_file=None)
    sentence = str(caught.value)
    assert flag_name(name) in sentence and env_name(name) in sentence
    assert f"allowed: {allowed_range(name)}" in sentence, sentence


def test_the_bounds_themselves_are_accepted():
    for name in NUMERIC:
        low, high = _bounds(name)
        for value in (low, high):
            rules = Settings.model_fields[name].metadata
            if any(
                getattr(r, "gt", None) == value or getattr(r, "lt", None) == value for r in rules
            ):
                continue
            if name in ("domain_min", "domain_max"):
                continue  # checked together below
            load_settings({name: value}, _env_file=None)
    load_settings({"domain_min": -1e308, "domain_max": 1e308}, _env_file=None)


@pytest.mark.parametrize(
    "flag, value, setting",
    [
        ("--chunk-rows", "1e19", "BATCH_CHUNK_ROWS"),
        ("--chunk-rows", "20000000", "BATCH_CHUNK_ROWS"),
        ("--misfire-grace-seconds", "100000000000000000000", "BATCH_MISFIRE_GRACE_SECONDS"),
        ("--heartbeat-seconds", "1e-6", "BATCH_HEARTBEAT_SECONDS"),
        ("--http-timeout-s", "nan", "BATCH_HTTP_TIMEOUT_S"),
    ],
)
def test_out_of_range_flags_exit_2_through_the_cli(tmp_path, flag, value, setting):
    module = "jobs.schedule" if "misfire" in flag or "heartbeat" in flag else "jobs.score"
    res = run_cli(module, flag, value, "--output-dir", tmp_path / "out", cwd=tmp_path)
    assert res.code == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert setting in res.stderr and "allowed:" in res.stderr


def test_a_dotenv_that_is_not_utf8_is_exit_2_naming_file_and_line(tmp_path):
    (tmp_path / ".env").write_bytes(b"BATCH_EPOCHS=3\n# caf\xe9\nBATCH_SEED=1\n")
    res = run_cli("jobs.score", "--output-dir", tmp_path / "out", cwd=tmp_path)
    sentence = assert_failed(res, 2, ".env line 2", "UTF-8")
    assert "Traceback" not in res.stderr, sentence


def test_a_dotenv_line_that_is_no_setting_is_exit_2_naming_the_line(tmp_path):
    (tmp_path / ".env").write_text("BATCH_EPOCHS=3\nthis line is junk\n")
    res = run_cli("jobs.score", "--output-dir", tmp_path / "out", cwd=tmp_path)
    assert_failed(res, 2, ".env line 2")


@pytest.mark.parametrize("variable", ["BATCH_OUTPUT_DIR", "BATCH_MODELS_DIR"])
def test_an_empty_location_is_exit_2_not_the_working_directory(tmp_path, variable):
    res = run_cli("jobs.score", cwd=tmp_path, env={variable: ""})
    assert_failed(res, 2, variable, "empty location")
    assert list(tmp_path.iterdir()) == [], "nothing may be written into the working directory"


def test_blank_dask_workers_means_unset():
    assert load_settings({"dask_workers": ""}, _env_file=None).dask_workers is None


def test_the_api_key_is_never_shown():
    s = load_settings({"openlineage_api_key": "k3y-value-123"}, _env_file=None)
    assert "k3y-value-123" not in repr(s) and "k3y-value-123" not in s.model_dump_json()
    assert s.openlineage_api_key.get_secret_value() == "k3y-value-123"


def test_the_reference_shows_each_numeric_settings_range():
    from tests.helpers import REPO

    rows = {
        line.split("|")[2].strip(" `"): line
        for line in (REPO / "docs" / "reference.md").read_text().splitlines()
        if line.startswith("| `--") and "| `BATCH_" in line
    }
    for name in NUMERIC:
        assert f"(allowed: {allowed_range(name)})" in rows[env_name(name)], name
