"""All settings in one place: flags > BATCH_* environment > .env file > defaults.

Read with pydantic-settings; a bad value is a ConfigError naming its flag and variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from batch.core.errors import ConfigError
from batch.core.redact import register_secrets
from batch.storage import fs

ENV_PREFIX = "BATCH_"


def _location(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        # Path("") is the working directory: an empty setting must never mean "write here".
        raise ValueError("an empty location is not allowed; leave the setting out for its default")
    return fs.path(value)


# A folder setting: a local path (pathlib.Path) or an s3://bucket/prefix URL
# (batch.storage.fs.ObjectPath).
Location = Annotated[Any, PlainValidator(_location)]


class Settings(BaseSettings):
    """Every setting of every job; each job reads the ones that apply to it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # -- shared ------------------------------------------------------------------------------
    models_dir: Location = Field(
        Path("models"), description="model registry directory (a local path or s3://bucket/prefix)"
    )
    registry_lock_timeout: float = Field(
        60.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="seconds a command waits for another one holding the model registry's lock "
        "before it gives up (exit 6)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="log verbosity on stderr"
    )
    feature_column: str | None = Field(
        None,
        description="rooms column name; default: the first of rm, rooms, avg_rooms (any case)",
    )

    # -- training ----------------------------------------------------------------------------
    data: str = Field(
        "boston", description="training data: 'boston' (Keras's copy) or a CSV/Parquet path"
    )
    target_column: str = Field(
        "medv",
        description="true-price column (any case): in --data files, and in scored inputs "
        "for the report's MSE/MAE",
    )
    epochs: int = Field(101, ge=1, le=100_000, description="training epochs")
    # Keras hands the batch size to TensorFlow as a 64-bit integer.
    batch_size: int = Field(16, ge=1, le=2**63 - 1, description="training mini-batch size")
    learning_rate: float = Field(
        0.005, gt=0, le=10, allow_inf_nan=False, description="optimizer learning rate"
    )
    optimizer: Literal["rmsprop", "adam", "sgd"] = Field(
        "rmsprop", description="optimizer: rmsprop, adam or sgd"
    )
    validation_split: float = Field(
        0.3, ge=0, lt=1, description="share of the training rows held out for val_loss"
    )
    # NumPy's seed (which Keras sets) is a 32-bit unsigned integer.
    seed: int = Field(
        42,
        ge=0,
        le=2**32 - 1,
        description="random seed, 0 to 4294967295 (same data + seed = same weights)",
    )
    promote_tolerance: float = Field(
        0.0,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="quality gate: promote when test MSE <= production's x (1 + tolerance), "
        "both on the new version's test rows",
    )
    interval_level: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="price band: share of true prices the calibrated band should contain",
    )
    log_every_epochs: int = Field(
        10,
        ge=1,
        le=100_000,
        description="one progress log line per N epochs when not on a terminal",
    )

    # -- scoring -----------------------------------------------------------------------------
    output_dir: Location = Field(
        Path("output"),
        description="where runs/, failed/ and LATEST go (a local path or s3://bucket/prefix)",
    )
    input: Annotated[list[str], NoDecode] = Field(
        ["sample_inputs"],
        description="input file, directory or glob (flag repeatable; env: comma-separated)",
    )
    model_version: str = Field(
        "production", description="model to score with: production, latest or vN"
    )
    max_reject_fraction: float = Field(
        0.1,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="fail the run (exit 5) when more rows than this are rejected",
    )
    new_only: bool = Field(
        False, description="skip input files whose content a successful run already scored"
    )
    on_drift: Literal["warn", "fail"] = Field(
        "warn",
        description="a run whose input differs markedly from the training data: warn "
        "(publish with warnings) or fail (exit 8, nothing published)",
    )
    domain_min: float = Field(
        0.0,
        ge=-1e6,
        le=1e6,
        allow_inf_nan=False,
        description="plausible rooms: value must be > this",
    )
    domain_max: float = Field(
        20.0,
        ge=-1e6,
        le=1e6,
        allow_inf_nan=False,
        description="plausible rooms: value must be <= this",
    )
    chunk_rows: int = Field(
        262_144,
        ge=1,
        le=10_000_000,
        description="rows read, validated, scored and written per batch",
    )
    progress_seconds: float = Field(
        5.0,
        ge=0.1,
        le=86_400,
        allow_inf_nan=False,
        description="seconds between progress log lines when not on a terminal",
    )
    engine: Literal["local", "dask"] = Field(
        "local", description="scoring engine: local (one process) or dask (a Dask cluster)"
    )
    dask_address: str | None = Field(
        None,
        description="Dask scheduler to connect to (e.g. tcp://scheduler:8786); none: local cluster",
    )
    dask_workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="worker processes of the local Dask cluster; default: CPU cores",
    )
    metrics_dir: Location = Field(
        None,
        description="Prometheus textfile metrics folder (batch_score.prom); "
        "default: <output-dir>/metrics",
    )

    # -- lineage (scoring and training) ------------------------------------------------------
    openlineage_url: str | None = Field(
        None,
        description="OpenLineage HTTP endpoint (e.g. http://marquez:5000) for run events; "
        "unset: no events",
    )
    openlineage_api_key: SecretStr | None = Field(
        None,
        description="API key sent to the OpenLineage endpoint as a bearer token "
        "(prefer the environment variable to the flag: flags show in the process list)",
    )
    openlineage_file: Path | None = Field(
        None,
        description="file that OpenLineage run events are appended to, one JSON per line; "
        "unset: no file",
    )

    # -- deadlines on outside calls -----------------------------------------------------------
    http_timeout_s: float = Field(
        10.0,
        ge=0.1,
        le=3_600,
        allow_inf_nan=False,
        description="seconds an HTTP call (the OpenLineage endpoint) may take in all, "
        "connecting included, before it is cut",
    )
    s3_timeout_s: float = Field(
        30.0,
        ge=0.1,
        le=3_600,
        allow_inf_nan=False,
        description="seconds an object-store call may take to connect, and to answer each "
        "read, before it is cut",
    )

    # -- scheduling --------------------------------------------------------------------------
    schedule: str = Field(
        "0 2 * * *", description="cron expression (5 fields; 6 fields = seconds first)"
    )
    timezone: str = Field("UTC", description="time zone of the cron expression")
    misfire_grace_seconds: int = Field(
        3600,
        ge=1,
        le=604_800,
        description="a fire late by up to this many seconds still runs",
    )
    heartbeat_seconds: float = Field(
        60.0,
        ge=1,
        le=3_600,
        allow_inf_nan=False,
        description="how often the scheduler rewrites its heartbeat file",
    )
    retention: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="after each scheduled run keep only the N newest runs "
        "(runs/ and failed/; never LATEST); unset: keep all",
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        le=36_500,
        allow_inf_nan=False,
        description="after each scheduled run remove runs older than this many "
        "days (never LATEST); unset: keep all",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _split_input(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("input")
    @classmethod
    def _non_empty_input(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one input path is needed")
        return value

    @field_validator(
        "feature_column",
        "dask_address",
        "dask_workers",
        "metrics_dir",
        "openlineage_url",
        "openlineage_api_key",
        "openlineage_file",
        "retention",
        "retention_days",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("openlineage_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL such as http://marquez:5000")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            # The message says all there is; zoneinfo's own error would only repeat the name.
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Berlin)"
            ) from None
        return value

    @model_validator(mode="after")
    def _domain_is_an_interval(self) -> Settings:
        if not self.domain_min < self.domain_max:
            raise ValueError(
                f"domain_min ({self.domain_min}) must be below domain_max ({self.domain_max})"
            )
        return self

    @property
    def metrics_folder(self) -> fs.Location:
        """Where the textfile metrics go: --metrics-dir, else <output-dir>/metrics."""
        # The folder fields are Any to pydantic (see Location); this says what they hold.
        folder: fs.Location = (
            self.metrics_dir if self.metrics_dir is not None else self.output_dir / "metrics"
        )
        return folder


# Settings whose value is a credential: never shown, logged or written.
SECRET_FIELDS = frozenset({"openlineage_api_key"})

# Credentials the libraries underneath read from the environment (the object store's); their
# values are masked wherever text is written, should one ever be quoted.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")

# The settings of a scoring run, in the order its flags are listed (jobs.score, and what the
# scheduler passes on to each run).
SCORE_FIELDS = [
    "models_dir",
    "output_dir",
    "input",
    "model_version",
    "feature_column",
    "target_column",
    "max_reject_fraction",
    "on_drift",
    "new_only",
    "domain_min",
    "domain_max",
    "chunk_rows",
    "progress_seconds",
    "engine",
    "dask_address",
    "dask_workers",
    "metrics_dir",
    "openlineage_url",
    "openlineage_api_key",
    "openlineage_file",
    "http_timeout_s",
    "s3_timeout_s",
    "log_level",
]
# What the scheduler adds: its own timing and the retention it applies after each run.
SCHEDULE_FIELDS = [
    "schedule",
    "timezone",
    "misfire_grace_seconds",
    "heartbeat_seconds",
    "retention",
    "retention_days",
]


# BATCH_* names that docker compose reads (docker-compose.yml, .env.example) and the jobs do not:
# they are not settings, and not typos either.
COMPOSE_ONLY = frozenset(
    {
        "BATCH_UID",
        "BATCH_GID",
        "BATCH_HOST_MODELS_DIR",
        "BATCH_HOST_OUTPUT_DIR",
        "BATCH_HOST_INPUT_DIR",
        "BATCH_KERAS_CACHE",
        "BATCH_IMAGE",
        "BATCH_HEALTHCHECK_INTERVAL",
        "BATCH_S3_PORT",
    }
)


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


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


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


def load_settings(overrides: dict[str, Any] | None = None, **kwargs: Any) -> Settings:
    """Settings from flags (overrides) over env/.env/defaults; a bad value raises ConfigError."""
    env_file = kwargs.get("_env_file", Settings.model_config.get("env_file"))
    if isinstance(env_file, str | Path):
        check_env_file(Path(env_file))
    try:
        settings = Settings(**(overrides or {}), **kwargs)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid value for --input / {env_name('input')}: {exc}") from None
    fs.set_deadline(settings.s3_timeout_s)
    key = settings.openlineage_api_key
    register_secrets(
        [key.get_secret_value() if key else None]
        + [os.environ.get(name) for name in SECRET_VARIABLES]
    )
    return settings


def _number(value: float) -> str:
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
