"""A lineage endpoint that hangs or drips a byte a second costs a run at most its deadline:
the run succeeds, with one warning, well before the endpoint would have finished."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.helpers import REPO, run_cli


class Drip:
    """Accepts connections, reads the request, then answers one byte a second (or never)."""

    def __init__(self, hang: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hang = hang
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
            for byte in answer:
                if self.stop.wait(1.0):
                    return
                if not self.hang:
                    try:
                        conn.send(bytes([byte]))
                    except OSError:
                        return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("hang", [False, True], ids=["drip", "hang"])
def test_a_slow_endpoint_is_cut_at_the_deadline(models, tmp_path, hang):
    server = Drip(hang)
    try:
        began = time.monotonic()
        res = run_cli(
            "jobs.score",
            "--models-dir",
            models,
            "--output-dir",
            tmp_path / "out",
            "--input",
            REPO / "sample_inputs",
            "--openlineage-url",
            f"http://127.0.0.1:{server.port}",
            "--http-timeout-s",
            2,
        )
        took = time.monotonic() - began
    finally:
        server.close()
    assert res.code == 0, res.stderr[-2000:]
    assert "could not be sent" in res.stderr and "within 2 s" in res.stderr
    # Two events at most 2 s each (the run's budget is 6 s), plus the run itself.
    assert took < 30, took
    assert "Traceback" not in res.stderr
