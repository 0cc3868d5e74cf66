"""Secrets stay secret: distinct secrets are planted in every credential-bearing setting and
variable, the jobs run through the real CLI (train, a successful score, a failed score, an
unreachable lineage endpoint, an unreachable object store, one scheduler tick), and then every
byte they wrote -- outputs, registry, metrics, lineage file, stdout, stderr -- is searched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.helpers import FAST_FIT, REPO, run_cli
from tests.s3_helpers import free_port

SAMPLE_INPUTS = REPO / "sample_inputs"

SECRETS = {
    "lineage URL password": "Lin3age-pw-9f2c",
    "lineage URL user": "lineage-usr-7c1d",
    "lineage query token": "tok-Q7x9-abcdef",
    "API key": "apikey-Zz81-bearer-0042",
    "AWS secret key": "aws-secret-Wq4P-77ee",
    "AWS session token": "aws-session-Tt55-9090",
    "object-store endpoint password": "s3pw-88aa-kkkk",
}


class Receiver:
    """A lineage endpoint that records each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                requests.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def lineage_url(port: int, userinfo: bool = True) -> str:
    user, password = SECRETS["lineage URL user"], SECRETS["lineage URL password"]
    auth = f"{user}:{password}@" if userinfo else ""
    return f"http://{auth}127.0.0.1:{port}/?token={SECRETS['lineage query token']}"


def secret_env(lineage_port: int, lineage_file: Path, api_key: bool = False) -> dict[str, str]:
    """The lineage endpoint's credentials in one of its two forms (the jobs refuse both at once:
    a URL's user:password would replace the bearer token): user:password in the URL, or the API
    key. Both forms carry a token in the query string."""
    return {
        "BATCH_OPENLINEAGE_URL": lineage_url(lineage_port, userinfo=not api_key),
        **({"BATCH_OPENLINEAGE_API_KEY": SECRETS["API key"]} if api_key else {}),
        "BATCH_OPENLINEAGE_FILE": str(lineage_file),
        "AWS_ACCESS_KEY_ID": "AKIDLEAKTEST0000",
        "AWS_SECRET_ACCESS_KEY": SECRETS["AWS secret key"],
        "AWS_SESSION_TOKEN": SECRETS["AWS session token"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def forms(secret: str) -> set[str]:
    """The secret as written, and as a URL or JSON would encode it."""
    return {secret, urllib.parse.quote(secret), json.dumps(secret)[1:-1]}


def leaks(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    return [name for name, s in SECRETS.items() if any(f in text for f in forms(s))]


def every_file(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def scheduler_tick(models: Path, out: Path, env: dict[str, str]) -> tuple[str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.schedule",
            "--models-dir",
            str(models),
            "--output-dir",
            str(out),
            "--input",
            str(SAMPLE_INPUTS),
            "--schedule",
            "*/2 * * * * *",
            "--heartbeat-seconds",
            "1",
        ],
        cwd=REPO,
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    runs_log = out / "runs.jsonl"
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if runs_log.exists() and runs_log.read_text().strip():
                break
            time.sleep(0.3)
        assert proc.poll() is None, "the scheduler stopped early"
        assert runs_log.exists(), "no scheduled run finished within 90 s"
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    return stdout.decode(), stderr.decode()


def test_no_secret_reaches_any_byte_the_jobs_write(tmp_path):
    receiver = Receiver()
    dead_port = free_port()
    lineage_file = tmp_path / "lineage" / "events.jsonl"
    lineage_file.parent.mkdir()
    env = secret_env(receiver.port, lineage_file)
    key_env = secret_env(receiver.port, lineage_file, api_key=True)
    dead_env = {**env, "BATCH_OPENLINEAGE_URL": lineage_url(dead_port)}
    dead_key_env = {**key_env, "BATCH_OPENLINEAGE_URL": lineage_url(dead_port, userinfo=False)}
    store_password = SECRETS["object-store endpoint password"]
    dead_store = {
        **env,
        "AWS_ENDPOINT_URL": f"http://ops:{store_password}@127.0.0.1:{free_port()}",
    }
    models, out = tmp_path / "models", tmp_path / "output"
    streams: list[tuple[str, str]] = []
    try:
        runs = [
            ("train", run_cli("jobs.train", "--models-dir", models, *FAST_FIT, env=env), 0),
            (
                "score",
                run_cli("jobs.score", "--models-dir", models, "--output-dir", out, env=env),
                0,
            ),
            (
                "score with the API key",
                run_cli("jobs.score", "--models-dir", models, "--output-dir", out, env=key_env),
                0,
            ),
            (
                "failed score",
                run_cli(
                    "jobs.score",
                    "--models-dir",
                    models,
                    "--output-dir",
                    out,
                    "--max-reject-fraction",
                    0,
                    env=env,
                ),
                5,
            ),
            (
                "unreachable lineage",
                run_cli("jobs.score", "--models-dir", models, "--output-dir", out, env=dead_env),
                0,
            ),
            (
                "unreachable lineage with the API key",
                run_cli(
                    "jobs.score", "--models-dir", models, "--output-dir", out, env=dead_key_env
                ),
                0,
            ),
            (
                "unreachable object store",
                run_cli(
                    "jobs.score",
                    "--models-dir",
                    models,
                    "--output-dir",
                    "s3://prices/out",
                    env=dead_store,
                    timeout=120,
                ),
                7,
            ),
        ]
        for name, res, code in runs:
            assert res.code == code, f"{name}: exit {res.code}\n{res.stderr[-3000:]}"
            assert "Traceback" not in res.stderr, f"{name}:\n{res.stderr[-3000:]}"
            streams.append((res.stdout, res.stderr))
        streams.append(scheduler_tick(models, out, key_env))
    finally:
        receiver.close()

    # The endpoint was really used, with the key as a bearer token in the header only.
    assert receiver.requests, "the lineage endpoint received nothing"
    for _headers, body in receiver.requests:
        assert leaks(body) == [], "a secret is in a lineage event body"
    assert lineage_file.exists() and lineage_file.stat().st_size > 0

    written = every_file(tmp_path)
    assert any("report.json" in p for p in written) and any(".prom" in p for p in written)
    found = {path: leaks(data) for path, data in written.items()}
    for i, (stdout, stderr) in enumerate(streams):
        found[f"run {i} stdout"] = leaks(stdout.encode())
        found[f"run {i} stderr"] = leaks(stderr.encode())
    found = {where: names for where, names in found.items() if names}
    assert found == {}, f"secrets leaked: {found}"


def test_the_api_key_is_sent_as_a_bearer_token_and_only_there(tmp_path):
    receiver = Receiver()
    try:
        res = run_cli(
            "jobs.train",
            "--models-dir",
            tmp_path / "models",
            *FAST_FIT,
            "--openlineage-url",
            f"http://127.0.0.1:{receiver.port}",
            env={"BATCH_OPENLINEAGE_API_KEY": SECRETS["API key"]},
        )
    finally:
        receiver.close()
    assert res.code == 0, res.stderr
    assert len(receiver.requests) == 2
    for headers, body in receiver.requests:
        assert headers.get("Authorization") == f"Bearer {SECRETS['API key']}"
        assert SECRETS["API key"] not in body.decode()
    assert SECRETS["API key"] not in res.stdout + res.stderr


def test_a_url_password_and_an_api_key_together_are_refused_before_anything_is_sent(tmp_path):
    # The HTTP client would turn the URL's user:password into a Basic header that replaces the
    # bearer token: the key would silently never be sent. Both jobs refuse the pair up front.
    receiver = Receiver()
    url = f"http://{SECRETS['lineage URL user']}:{SECRETS['lineage URL password']}@127.0.0.1:{receiver.port}"
    env = {"BATCH_OPENLINEAGE_API_KEY": SECRETS["API key"]}
    try:
        results = [
            run_cli(
                "jobs.train", "--models-dir", tmp_path / "m", "--openlineage-url", url, env=env
            ),
            run_cli(
                "jobs.score", "--output-dir", tmp_path / "o", "--openlineage-url", url, env=env
            ),
        ]
    finally:
        receiver.close()
    for res in results:
        assert res.code == 2, res.stderr
        assert "give one of the two" in res.stderr
        assert "Traceback" not in res.stderr
        for secret in SECRETS.values():
            assert secret not in res.stdout + res.stderr
    assert receiver.requests == []
    assert not (tmp_path / "m").exists() and not (tmp_path / "o" / "runs").exists()
