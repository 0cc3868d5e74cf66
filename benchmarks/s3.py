"""Case (e): a local S3 endpoint (moto in server mode) the scorer reads its input from and writes to."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import say

BUCKET = "bench"
REGION = "us-east-1"
# moto checks no signatures unless told to: any key pair is accepted, but the client needs one.
KEY, SECRET = "bench", "bench"


def unavailable(python: str, env: dict[str, str]) -> str | None:
    """Why (e) cannot run with this interpreter (moto[server] or boto3 missing), or None."""
    try:
        import boto3  # noqa: F401  (uploads and downloads from the benchmark process)
    except ImportError:
        return "(e) skipped: boto3 is not installed here (it comes with the test extra's moto)"
    probe = subprocess.run(
        [python, "-c", "import moto.server, flask"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return (
            "(e) skipped: moto[server] is not installed for the cases' interpreter (install "
            "the development lock, whose test extra has it)"
        )
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalS3:
    """`python -m moto.server` on 127.0.0.1, one bucket, inputs uploaded once, runs fetched back.

    The endpoint runs beside the measured child (not inside its process tree, so not in its RSS),
    and uses CPU while the scorer reads and writes: on a 2-core machine the two share the cores.
    """

    def __init__(self, python: str, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.uploaded: dict[Path, str] = {}
        try:
            self._wait()
            self.client = self._client()
            self.client.create_bucket(Bucket=BUCKET)
        except BaseException:
            self.stop()
            raise
        say(f"S3 endpoint (moto) on {self.endpoint}, bucket {BUCKET}; log {log}")

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto server did not start (exit {self.proc.poll()}); see {self._log.name}"
                    ) from None
                time.sleep(0.1)

    def _client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The cases' environment pointing the AWS libraries at this endpoint."""
        return {
            **base,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def input_url(self, src: Path) -> str:
        """s3:// URL of a local input, uploaded the first time it is asked for (not measured)."""
        if src not in self.uploaded:
            key = f"inputs/{src.name}"
            t0 = time.monotonic()
            self.client.upload_file(str(src), BUCKET, key)
            say(
                f"  uploaded {src.name} ({src.stat().st_size / 1e6:,.0f} MB) to s3://{BUCKET}/"
                f"{key} in {time.monotonic() - t0:.1f}s"
            )
            self.uploaded[src] = f"s3://{BUCKET}/{key}"
        return self.uploaded[src]

    def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` in the bucket."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def fetch(self, prefix: str, dest: Path) -> Path:
        """Download the objects under `prefix` into `dest` (same relative layout); `dest`."""
        for key in self.keys(prefix):
            target = dest / key[len(prefix) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(BUCKET, key, str(target))
        return dest

    def delete(self, prefix: str) -> None:
        """Remove every object under `prefix` (a case's outputs, once checked)."""
        keys = self.keys(prefix)
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=BUCKET,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )

    def stop(self) -> None:
        """Stop the endpoint (its objects were in its memory and temporary files)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
