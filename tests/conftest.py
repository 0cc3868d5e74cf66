"""Shared fixtures: offline Boston data, clean settings, one real 101-epoch model per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import BOSTON_NPZ, run_main


@pytest.fixture(scope="session", autouse=True)
def offline_keras_home(tmp_path_factory):
    """Copy ../shared/data's Boston file into a temporary KERAS_HOME so Keras's loader runs offline.

    When that folder is absent, Keras's normal download is used (KERAS_HOME left as it is).
    """
    saved = {k: v for k, v in os.environ.items() if k.startswith("BATCH_")}
    for key in saved:
        del os.environ[key]  # the developer's own settings must not leak into tests
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ["MPLBACKEND"] = "Agg"
    if BOSTON_NPZ.is_file():
        home = tmp_path_factory.mktemp("keras_home")
        (home / "datasets").mkdir()
        shutil.copy(BOSTON_NPZ, home / "datasets" / "boston_housing.npz")
        os.environ["KERAS_HOME"] = str(home)
    yield os.environ.get("KERAS_HOME")
    os.environ.update(saved)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, offline_keras_home):
    """The session's one real training with the tutorial's recipe (101 epochs), via the CLI entry."""
    from jobs.train import main

    models = tmp_path_factory.mktemp("registry") / "models"
    out = run_main(main, ["--models-dir", str(models)])
    assert out.code == 0, out.stderr
    return {"models": models, "summary": out.json}


@pytest.fixture
def models(trained, tmp_path) -> Path:
    """A private copy of the trained registry (v1 = production) that a test may change."""
    dest = tmp_path / "models"
    shutil.copytree(trained["models"], dest)
    return dest


@pytest.fixture
def settings(tmp_path):
    """Settings with defaults only (no .env, no BATCH_* from the environment), in tmp_path."""
    from batch.settings import Settings

    def make(**kwargs):
        kwargs.setdefault("models_dir", tmp_path / "models")
        kwargs.setdefault("output_dir", tmp_path / "output")
        return Settings(_env_file=None, **kwargs)

    return make


@pytest.fixture
def write_csv(tmp_path):
    def write(name: str, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.replace("\n", newline).encode(encoding))
        return path

    return write


@pytest.fixture(scope="session")
def scored_output(trained, tmp_path_factory):
    """An output folder built by four real scoring runs (jobs.score.main), oldest first:

    a success, an exit 3 (a missing input: no folder, only its outcome line), a second success
    (the run in LATEST) and an exit 5 (over the reject budget: failed/<id>, the newest folder).
    Tests that change it work on a copy (`copy_output`).
    """
    from jobs.score import main

    base = tmp_path_factory.mktemp("scored")
    inputs = base / "in"
    inputs.mkdir()
    (inputs / "north.csv").write_text(
        "suburb,rm,medv\n" + "".join(f"n{i},{5.5 + i * 0.1:.1f},{20 + i}\n" for i in range(20))
    )
    (inputs / "south.csv").write_text(
        "suburb,rm\n" + "".join(f"s{i},{6.0 + i * 0.05:.2f}\n" for i in range(30))
    )
    (inputs / "broken.csv").write_text(
        "suburb,rm\n" + "".join(f"b{i},{'n/a' if i % 2 else '6.1'}\n" for i in range(20))
    )
    out = base / "output"
    models = trained["models"]
    results = []
    for name, code in (("north.csv", 0), ("missing.csv", 3), ("south.csv", 0), ("broken.csv", 5)):
        res = run_main(
            main, ["--models-dir", models, "--output-dir", out, "--input", inputs / name]
        )
        assert res.code == code, res.stderr[-2000:]
        results.append(res.json)
    return {"output": out, "models": models, "summaries": results, "inputs": inputs}


@pytest.fixture
def copy_output(scored_output, tmp_path) -> Path:
    """A private copy of the scored output folder that a test may prune."""
    dest = tmp_path / "output"
    shutil.copytree(scored_output["output"], dest)
    return dest
