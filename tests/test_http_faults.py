"""An OpenLineage endpoint that resets the connection or answers 500 costs a run one warning per
event, never the run; a stop signal while the run waits on a hanging endpoint ends it within
10 s with exit 130, nothing published and the lock free. Real servers on 127.0.0.1, the real
CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fault_helpers import metrics_show_no_success
from tests.helpers import REPO, one_error_sentence, run_cli


class Endpoint:
    """A lineage endpoint that misbehaves: 'reset' (RST after reading the request), '500', or
    'hang' (reads the request, never answers). Counts the requests it got."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
            except OSError:
                return
            self.requests += 1
            if self.mode == "reset":  # SO_LINGER 0: close() sends RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.mode == "500":
                body = b'{"error": "internal"}'
                conn.sendall(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )
            else:
                self.stop.wait(120)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _score(models: Path, out: Path, metrics: Path, *extra: object):
    return run_cli(
        "jobs.score",
        "--models-dir", models, "--output-dir", out, "--metrics-dir", metrics,
        "--input", REPO / "sample_inputs", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["reset", "500"])
def test_a_failing_lineage_endpoint_is_a_warning_never_a_failed_run(models, tmp_path, mode):
    endpoint = Endpoint(mode)
    try:
        res = _score(
            models, tmp_path / "out", tmp_path / "m", "--openlineage-url", endpoint.url,
            "--http-timeout-s", 3,
        )  # fmt: skip
    finally:
        endpoint.close()
    assert res.code == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert endpoint.requests >= 1
    warnings = [ln for ln in res.stderr.splitlines() if " WARNING " in ln]
    lineage = [ln for ln in warnings if "OpenLineage" in ln and "could not be sent" in ln]
    assert lineage and len(lineage) <= 2, warnings  # one per event (START, COMPLETE) at most
    run_id = res.json["run_id"]
    assert (tmp_path / "out" / "runs" / run_id / "_SUCCESS").is_file()
    assert (tmp_path / "out" / "LATEST").read_text().strip() == run_id
    # The lock is free: the next run goes ahead.
    assert _score(models, tmp_path / "out", tmp_path / "m").code == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_waiting_on_lineage_ends_the_run_within_10_s(models, tmp_path, stop):
    endpoint = Endpoint("hang")
    out, metrics = tmp_path / "out", tmp_path / "m"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [
        "--models-dir", models, "--output-dir", out, "--metrics-dir", metrics,
        "--input", REPO / "sample_inputs", "--openlineage-url", endpoint.url,
        "--http-timeout-s", 60,
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.score", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while endpoint.requests == 0:  # the run now waits on the START event
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        began = time.monotonic()
        proc.send_signal(stop)
        stdout, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - began
    finally:
        endpoint.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, stderr[-3000:])
    assert took < 10, took
    assert "Traceback" not in stderr
    assert "interrupted" in one_error_sentence(stderr)
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())
    assert not (out / "LATEST").exists()
    assert not (out / ".staging").exists() or not any((out / ".staging").iterdir())
    metrics_show_no_success(metrics, 130)
    assert _score(models, out, tmp_path / "m2").code == 0  # the lock is free
