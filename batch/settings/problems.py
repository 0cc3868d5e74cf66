"""Explaining bad settings: unknown BATCH_* names, a damaged .env, a value outside its range.

Every problem becomes one sentence naming the flag, the variable and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from batch.core.errors import ConfigError
from batch.settings.lists import COMPOSE_ONLY, SECRET_FIELDS
from batch.settings.model import ENV_PREFIX, Settings, env_name, flag_name


def unknown_names(names: Iterable[str]) -> list[tuple[str, str | None]]:
    """(name, the setting it most likely meant or None) for each BATCH_* name that is no setting.

    Names are compared case-insensitively, as pydantic-settings reads them.
    """
    import difflib

    known = {env_name(field) for field in Settings.model_fields}
    found = []
    for name in sorted(set(names)):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in COMPOSE_ONLY:
            continue
        match = difflib.get_close_matches(upper, sorted(known | COMPOSE_ONLY), n=1, cutoff=0.6)
        found.append((name, match[0] if match else None))
    return found


def unknown_settings(env_file: Path = Path(".env")) -> list[tuple[str, str | None]]:
    """unknown_names() of the BATCH_* names in the environment and in the .env file."""
    names = [k for k in os.environ if k.upper().startswith(ENV_PREFIX)]
    if env_file.is_file():
        try:
            from dotenv import dotenv_values

            names += [k for k in dotenv_values(env_file) if k.upper().startswith(ENV_PREFIX)]
        except (OSError, UnicodeDecodeError, ValueError):
            pass  # pydantic-settings reports an unreadable .env itself
    return unknown_names(names)


def check_env_file(env_file: Path) -> None:
    """A .env that is not UTF-8 text, or has a line that is no `NAME=value`, is a ConfigError
    naming the file and line (pydantic-settings would fail with a traceback, or skip the line)."""
    try:
        raw = env_file.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot read {env_file}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{env_file} line {line} is not UTF-8 text; save the file as UTF-8"
        ) from None
    import io

    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            raise ConfigError(
                f"{env_file} line {line} is not a NAME=value setting; fix or remove that line"
            )


def _number(value: float) -> str:
    if abs(value) >= 1e15:
        return f"{value:g}"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def allowed_range(field: str) -> str | None:
    """The documented range of a numeric setting ("1 to 10000000", "above 0 to 36500"), or None."""
    info = Settings.model_fields.get(field)
    if info is None:
        return None
    low = high = None
    for rule in info.metadata:
        for attr, words in (("ge", ""), ("gt", "above ")):
            if getattr(rule, attr, None) is not None:
                low = f"{words}{_number(getattr(rule, attr))}"
        for attr, words in (("le", ""), ("lt", "below ")):
            if getattr(rule, attr, None) is not None:
                high = f"{words}{_number(getattr(rule, attr))}"
    if low is None and high is None:
        return None
    return f"{low or 'any'} to {high or 'any'}"


def describe_validation_error(exc: ValidationError) -> str:
    from batch.core.redact import redact

    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        message = err["msg"].removeprefix("Value error, ")
        if field:
            value = err.get("input")
            shown = "(hidden)" if field in SECRET_FIELDS else redact(repr(value))
            if len(shown) > 80:
                shown = shown[:77] + "..."
            span = allowed_range(field)
            if span and "allowed" not in message:
                message += f" (allowed: {span})"
            parts.append(
                f"invalid value {shown} for {field} "
                f"({flag_name(field)} / {env_name(field)}): {message}"
            )
        else:
            parts.append(f"invalid settings: {message}")
    return "; ".join(parts) + "."
