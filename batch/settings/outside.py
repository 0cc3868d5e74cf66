"""Settings of outside calls and the scheduler: deadlines, the object-store lease, the cron
schedule, the heartbeat and retention (a base of batch.settings.model.Settings, which adds the
rest and reads them all from flags, BATCH_* variables and .env)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class OutsideCallsAndScheduling(BaseSettings):
    """The deadline and scheduling fields of Settings (see there for how they are read)."""

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
    s3_lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3_600,
        allow_inf_nan=False,
        description="seconds the output lock's lease lasts on object storage: renewed every "
        "quarter of it; a run that could not renew it for that long stops with exit 6 and "
        "publishes nothing, and a killed run's lock is free after it",
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
    min_schedule_interval_s: int = Field(
        60,
        ge=1,
        le=86_400,
        description="the least time between two fires of the schedule; a schedule firing "
        "more often is refused",
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
