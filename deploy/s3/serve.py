"""The compose profile s3's local S3 endpoint: moto in server mode, with its buckets made at start."""

from __future__ import annotations

import os
import signal
import sys
import threading

import boto3
from moto.server import ThreadedMotoServer

# moto keeps everything in memory: the buckets (and their objects) live as long as the container.
PORT = int(os.environ.get("S3_PORT", "5000"))
BUCKETS = [b.strip() for b in os.environ.get("S3_BUCKETS", "prices").split(",") if b.strip()]
# moto checks no signatures unless told to: any key pair is accepted, but the client needs one.
LOCAL = f"http://127.0.0.1:{PORT}"


def _client():
    return boto3.client(
        "s3",
        endpoint_url=LOCAL,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def health() -> int:
    """Exit status of the container health check: 0 when every bucket answers, 1 otherwise."""
    try:
        s3 = _client()
        for bucket in BUCKETS:
            s3.head_bucket(Bucket=bucket)
    except Exception as exc:  # any failure is simply "not healthy (yet)"
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


def serve() -> int:
    """Serve on 0.0.0.0:S3_PORT until SIGTERM/SIGINT, after creating S3_BUCKETS."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="0.0.0.0", port=PORT, verbose=False)
    server.start()
    s3 = _client()
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)
    print(f"S3 endpoint on port {PORT}, buckets: {', '.join(BUCKETS)}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(health() if sys.argv[1:] == ["--health"] else serve())
