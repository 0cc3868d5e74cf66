"""What every job shares: settings flags, logging to stderr, the JSON summary line, exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TextIO

from batch.core.errors import BatchError
from batch.settings import Settings, env_name, flag_name, load_settings, unknown_settings

log = logging.getLogger("jobs")

BOOL_FIELDS = {"new_only"}
LIST_FIELDS = {"input"}


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter out of the output (must run before TF is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def add_settings_flags(parser: argparse.ArgumentParser, fields: Iterable[str]) -> None:
    """One flag per setting; an unset flag has no default, so env/.env/defaults decide."""
    group = parser.add_argument_group("settings (flag > environment > .env > default)")
    for name in fields:
        info = Settings.model_fields[name]
        default = info.default
        if isinstance(default, list):
            default = ",".join(default)
        help_text = f"{info.description} [env {env_name(name)}, default {default}]"
        if name in BOOL_FIELDS:  # --new-only / --no-new-only (the latter beats BATCH_NEW_ONLY)
            group.add_argument(
                flag_name(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        elif name in LIST_FIELDS:
            group.add_argument(
                flag_name(name),
                dest=name,
                action="append",
                metavar="PATH",
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                flag_name(name),
                dest=name,
                metavar=name.upper(),
                default=argparse.SUPPRESS,
                help=help_text,
            )


class JobParser(argparse.ArgumentParser):
    """argparse for the jobs: a usage error (say an unknown flag) exits 2 in one sentence and,
    for jobs that print one, still ends stdout with the JSON summary line."""

    def __init__(self, *args: Any, summary_line: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.summary_line = summary_line

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sentence = f"{message}; see '{self.prog} --help'"
        error_sentence(self.prog, sentence)
        if self.summary_line:
            print_summary({"status": "failed", "exit_code": 2, "error": sentence})
        sys.exit(2)


def warn_unknown_settings(prog: str, env_file: Path = Path(".env")) -> None:
    """A warning on stderr for each BATCH_* name (environment or .env) that is not a setting."""
    for name, meant in unknown_settings(env_file):
        hint = f"; did you mean {meant}?" if meant else ""
        print(
            f"{prog}: warning: {name} is not a setting and is ignored{hint}",
            file=sys.stderr,
            flush=True,
        )


def settings_from_args(args: argparse.Namespace, fields: Iterable[str]) -> Settings:
    overrides = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    return load_settings(overrides)


class _JobsHandler(logging.StreamHandler[TextIO]):
    """The jobs' stderr handler; its own class so that a second setup replaces only it.

    Every line it writes, ours or a library's (tracebacks included), passes the one redaction
    rule: a URL's user-info and credential query values, and registered secrets, are masked;
    control characters are escaped so an input value cannot drive the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        from batch.core.quoting import escape
        from batch.core.redact import redact

        return escape(redact(super().format(record)), keep_newlines=True)


def setup_logging(level: str) -> None:
    handler = _JobsHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    # Called again (tests), replace only our own handler, never pytest's or a caller's.
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _JobsHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in (
        "tensorflow",
        "absl",
        "h5py",
        "matplotlib",
        "PIL",
        "apscheduler",
        "distributed",
        "bokeh",
        "tornado",
        "openlineage",
        # botocore's DEBUG lines carry request headers: never let them reach the log.
        "botocore",
        "aiobotocore",
        "s3fs",
        "fsspec",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Its retry lines repeat what batch.ops.lineage says once when an endpoint is down.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def tighten_umask() -> None:
    """Files and folders follow the process umask, but are never group- or world-writable:
    under umask 000 a world-writable .staging would let any local user plant links in it."""
    current = os.umask(0o022)
    os.umask(current | 0o022)


def stop_on_sigterm() -> None:
    """SIGTERM and SIGINT unwind like Ctrl-C (a run in progress removes its temporary output),
    except while a run or model is being published (see batch.core.interrupts)."""
    from batch.core import interrupts

    interrupts.install()


def error_sentence(prog: str, message: str) -> None:
    from batch.core.quoting import safe_sentence
    from batch.core.redact import redact

    print(f"{prog}: error: {safe_sentence(redact(message))}", file=sys.stderr, flush=True)


def run(
    prog: str,
    fields: Iterable[str],
    args: argparse.Namespace,
    job: Callable[[Settings], dict[str, Any]],
    summary_line: bool = True,
) -> int:
    """Settings -> logging -> job -> exit code; the job's JSON summary is stdout's last line."""
    code = 1
    tighten_umask()
    try:
        code = _run(prog, fields, args, job, summary_line)
        return code
    finally:
        from batch.core import interrupts

        interrupts.finish(code)


def _run(
    prog: str,
    fields: Iterable[str],
    args: argparse.Namespace,
    job: Callable[[Settings], dict[str, Any]],
    summary_line: bool,
) -> int:
    try:
        warn_unknown_settings(prog)
        settings = settings_from_args(args, fields)
        setup_logging(settings.log_level)
        summary = job(settings)
    except BatchError as exc:
        error_sentence(prog, str(exc))
        if summary_line:
            failed = {"status": "failed", "exit_code": exc.exit_code, "error": str(exc)}
            failed.update(getattr(exc, "summary", {}) or {})
            print_summary(failed)
        return exc.exit_code
    except BrokenPipeError:
        # Our reader went away (`| head`): what the job did stands; say nothing more on stdout.
        silence_stdout()
        return 0
    except KeyboardInterrupt:
        error_sentence(prog, "interrupted by a signal; an unfinished run was not published")
        if summary_line:
            print_summary({"status": "interrupted", "exit_code": 130})
        return 130
    except Exception:
        log.exception("unexpected failure (a bug)")
        error_sentence(prog, "unexpected failure (a bug); the traceback above says where")
        if summary_line:
            print_summary({"status": "failed", "exit_code": 1, "error": "unexpected failure"})
        return 1
    if summary_line:
        print_summary(summary)
    return int(summary.get("exit_code", 0)) if isinstance(summary, dict) else 0


def print_summary(summary: dict[str, Any]) -> None:
    """The JSON summary line on stdout; a closed stdout (`| head`) is ignored, never an error:
    the run's exit code stays the run's own."""
    from batch.core.jsontext import dumps
    from batch.core.redact import redact

    # The JSON text is redacted whole: a URL inside it ends at the quote that closes its string.
    try:
        sys.stdout.write(redact(dumps(summary)) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def print_text(text: str) -> None:
    """Print a job's output (a table, a document); BrokenPipeError when the reader has gone."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone, so that nothing later (the
    interpreter's own flush at exit included) fails writing to the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no stdout descriptor at all: nothing left to silence
        pass
