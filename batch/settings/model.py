"""The Settings model: every setting with its type, default, range and description."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    Field,
    PlainValidator,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from batch.settings.outside import OutsideCallsAndScheduling
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


class Settings(OutsideCallsAndScheduling):
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
        0.005, gt=0, le=10_000, allow_inf_nan=False, description="optimizer learning rate"
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
    interval_groups: Literal["none", "rooms_decile"] = Field(
        "none",
        description="price band: none (one band for all rooms) or rooms_decile (calibrated "
        "per rooms decile of the calibration rows, small groups merged)",
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
    challenger: str | None = Field(
        None,
        description="shadow-score with this version too (production, latest or vN): challenger_* "
        "columns and the report's challenger section; none: off",
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
        ge=-1e308,
        le=1e308,
        allow_inf_nan=False,
        description="plausible rooms: value must be > this",
    )
    domain_max: float = Field(
        20.0,
        ge=-1e308,
        le=1e308,
        allow_inf_nan=False,
        description="plausible rooms: value must be <= this",
    )
    chunk_rows: int = Field(
        65_536,
        ge=1,
        le=10_000_000,
        description="rows read, validated, scored and written per batch",
    )
    max_batch_bytes: int = Field(
        32 << 20,
        ge=1 << 20,
        le=1 << 30,
        description="bytes a batch may hold (a batch ends at chunk_rows or at this size, "
        "whichever comes first); a CSV row longer than a quarter of this is refused (exit 3)",
    )
    max_columns: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="columns an input file may have; a wider file is refused (exit 3)",
    )
    progress_seconds: float = Field(
        5.0,
        ge=0.1,
        le=86_400,
        allow_inf_nan=False,
        description="seconds between progress log lines when not on a terminal",
    )
    output_formats: Literal["both", "parquet", "csv"] = Field(
        "both",
        description="prediction files a run writes: both (predictions.parquet and "
        "predictions.csv), parquet or csv; rejects.csv is always written",
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
    nominal_time: AwareDatetime | None = Field(
        None,
        description="the scheduled time this scoring run stands for (ISO 8601 with a UTC "
        "offset), sent as the lineage events' nominalTime; the scheduler passes each fire's "
        "time; unset: none",
    )
    logical_date: dt.date | None = Field(
        None,
        description="the day this run's input stands for (YYYY-MM-DD): fills a {date} in "
        "--input and is recorded in report.json, runs.jsonl and index.html; the scheduler "
        "passes each fire's date, --backfill each day's; unset: none",
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
        "nominal_time",
        "logical_date",
        "challenger",
        "retention",
        "retention_days",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("challenger", mode="before")
    @classmethod
    def _none_is_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "none":
            return None
        return value

    @field_validator("logical_date", mode="before")
    @classmethod
    def _plain_day(cls, value: object) -> object:
        if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError("expected a date as YYYY-MM-DD, e.g. 2026-11-01")
        return value.strip() if isinstance(value, str) else value

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

    @model_validator(mode="after")
    def _one_lineage_credential(self) -> Settings:
        # requests turns a URL's user:password into a Basic Authorization header that replaces
        # the API key's bearer token: with both, the key would silently never be sent.
        url = urlsplit(self.openlineage_url or "")
        if self.openlineage_api_key is not None and (url.username or url.password):
            raise ValueError(
                "the OpenLineage URL (--openlineage-url / BATCH_OPENLINEAGE_URL) carries a user "
                "and password and an API key (BATCH_OPENLINEAGE_API_KEY) is set too; the "
                "endpoint would get only the URL's password: give one of the two"
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


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()
