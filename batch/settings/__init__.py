"""All settings in one place: flags > BATCH_* environment > .env file > defaults.

Read with pydantic-settings; a bad value is a ConfigError naming its flag, its variable and
what is allowed (batch.settings.problems).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from batch.core.errors import ConfigError
from batch.core.redact import register_secrets
from batch.settings.lists import (
    COMPOSE_ONLY,
    SCHEDULE_FIELDS,
    SCORE_FIELDS,
    SECRET_FIELDS,
    SECRET_VARIABLES,
)
from batch.settings.model import ENV_PREFIX, Location, Settings, env_name, flag_name
from batch.settings.problems import (
    allowed_range,
    check_env_file,
    describe_validation_error,
    unknown_names,
    unknown_settings,
)
from batch.storage import fs
from batch.storage.lease import set_lease_seconds

__all__ = [
    "COMPOSE_ONLY",
    "ENV_PREFIX",
    "SCHEDULE_FIELDS",
    "SCORE_FIELDS",
    "SECRET_FIELDS",
    "SECRET_VARIABLES",
    "Location",
    "Settings",
    "allowed_range",
    "check_env_file",
    "describe_validation_error",
    "env_name",
    "flag_name",
    "load_settings",
    "unknown_names",
    "unknown_settings",
]


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
    set_lease_seconds(settings.s3_lease_seconds)
    # Below these no link is followed; an unset metrics_dir is <output>/metrics, checked too.
    fs.set_roots([settings.output_dir, settings.models_dir, settings.metrics_dir])
    key = settings.openlineage_api_key
    register_secrets(
        [key.get_secret_value() if key else None]
        + [os.environ.get(name) for name in SECRET_VARIABLES]
    )
    return settings
