"""Helpers shared by the tests (imported as tests.helpers): run the jobs, find the data, read errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def run_cli(module: str, *args, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300) -> Result:
    """Run `python -m module args` as a real subprocess from the repository root."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", module, *[str(a) for a in args]],
                          cwd=cwd or REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def one_error_sentence(stderr: str) -> str:
    """The job's closing error line (every non-zero exit prints one)."""
    lines = [ln for ln in stderr.splitlines() if ": error: " in ln]
    assert lines, f"no error sentence in stderr:\n{stderr}"
    return lines[-1]
