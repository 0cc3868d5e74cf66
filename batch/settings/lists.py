"""Which settings each command takes, which are secrets, and the BATCH_* names compose reads."""

from __future__ import annotations

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
    "challenger",
    "feature_column",
    "target_column",
    "max_reject_fraction",
    "on_drift",
    "new_only",
    "domain_min",
    "domain_max",
    "chunk_rows",
    "max_batch_bytes",
    "max_columns",
    "progress_seconds",
    "output_formats",
    "engine",
    "dask_address",
    "dask_workers",
    "metrics_dir",
    "openlineage_url",
    "openlineage_api_key",
    "openlineage_file",
    "nominal_time",
    "logical_date",
    "http_timeout_s",
    "s3_timeout_s",
    "s3_lease_seconds",
    "log_level",
]
# What the scheduler adds: its own timing and the retention it applies after each run.
SCHEDULE_FIELDS = [
    "schedule",
    "timezone",
    "misfire_grace_seconds",
    "min_schedule_interval_s",
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
