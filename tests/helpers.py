"""Helpers shared by the tests (imported as tests.helpers): run the jobs, find the data, read errors."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The Boston Housing file beside the clone (a folder shared with the project's checkouts);
# when it is absent, tests fall back to Keras's own download.
SHARED_DATA = REPO.parent / "shared" / "data"
BOSTON_NPZ = SHARED_DATA / "boston_housing.npz"
BOSTON_CSV = SHARED_DATA / "boston.csv"
# A short training that still passes the sanity check (test MSE ~57.5 vs the mean's 83.7 on
# Boston): few epochs need a larger step than the tutorial's 0.005.
FAST_FIT = ("--epochs", 3, "--learning-rate", 0.1)


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def json(self) -> dict:
        lines = [ln for ln in self.stdout.strip().splitlines() if ln.strip()]
        return json.loads(lines[-1])


def run_main(main, argv) -> Result:
    """Call a jobs.*.main in-process, capturing what it prints."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code
    return Result(code, out.getvalue(), err.getvalue())


# As root, file permissions are only enforced once the override capabilities are dropped.
WITHOUT_DAC_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def run_cli(
    module: str,
    *args,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 300,
    prefix: tuple[str, ...] = (),
) -> Result:
    """Run `python -m module args` as a real subprocess from the repository root.

    prefix: a command that runs Python, e.g. WITHOUT_DAC_OVERRIDE.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", module, *[str(a) for a in args]],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def one_error_sentence(stderr: str) -> str:
    """The job's closing error line (every non-zero exit prints one)."""
    lines = [ln for ln in stderr.splitlines() if ": error: " in ln]
    assert lines, f"no error sentence in stderr:\n{stderr}"
    return lines[-1]


def assert_failed(res: Result, code: int, *words: str) -> str:
    """A failure with `code`: no traceback, one error sentence holding `words`, the JSON line."""
    assert res.code == code, (res.code, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    sentence = one_error_sentence(res.stderr)
    for w in words:
        assert w in sentence, sentence
    assert res.json["exit_code"] == code and res.json["status"] == "failed"
    return sentence


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A real tmpfs of `size` mounted at `path` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def kill_when(proc, ready, what: str, timeout: float = 120, poll: float = 0.02) -> None:
    """SIGKILL `proc` (a subprocess.Popen) as soon as `ready()` is true; fails when it ends
    first or `ready` never comes (`what` names the moment), and waits for the killed process."""
    import signal
    import time

    import pytest

    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                break
            assert proc.poll() is None, f"it finished before {what}, so it could not be killed"
            time.sleep(poll)
        else:
            pytest.fail(f"{what} never came")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
