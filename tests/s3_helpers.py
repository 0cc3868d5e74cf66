"""A real S3 protocol server for the tests: moto in server mode on 127.0.0.1 at a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The credentials the tests use; moto's IAM is seeded with them (see moto_server), so a
# different key is refused like a real store refuses it.
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server(auth: bool = True) -> Iterator[dict[str, str]]:
    """Start `python -m moto.server` and yield the AWS_* environment that points at it.

    With auth, moto checks every request's signature against its IAM: the first few requests
    (creating a user, its access key and an allow-all policy) are let through unauthenticated
    (INITIAL_NO_AUTH_ACTION_COUNT), everything after must be signed with that user's key.
    """
    import boto3

    port = free_port()
    env = dict(os.environ)
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        key, secret = "AKIDEXAMPLE0000000000", "test-secret"
        if auth:
            iam = boto3.client(
                "iam",
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="bootstrap",
                aws_secret_access_key="bootstrap",
            )
            iam.create_user(UserName="batch")
            made = iam.create_access_key(UserName="batch")["AccessKey"]
            key, secret = made["AccessKeyId"], made["SecretAccessKey"]
            iam.put_user_policy(
                UserName="batch",
                PolicyName="all",
                PolicyDocument=(
                    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", '
                    '"Resource": "*"}]}'
                ),
            )
        yield {
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(env: dict[str, str]):
    """A boto3 S3 client with the test credentials (for arranging and checking, never the job)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def keys(env: dict[str, str], bucket: str, prefix: str = "") -> list[str]:
    """Every key under a prefix."""
    s3 = client(env)
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(found)


@contextmanager
def moto_process(
    port: int | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """A moto server without auth (any key works) as (its process, the AWS_* environment), for
    tests that stop, pause (SIGSTOP) or restart the store; always resumed and ended on the way out.
    """
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield (
            proc,
            {
                "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE0000000000",
                "AWS_SECRET_ACCESS_KEY": "test-secret",
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            },
        )
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait()
