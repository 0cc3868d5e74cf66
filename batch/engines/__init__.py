"""Scoring engines: `local` (one process) and `dask` (a cluster); they share engines.base."""

from __future__ import annotations

from batch.core.errors import ConfigError
from batch.engines.base import Engine
from batch.settings import Settings


def check_available(name: str) -> None:
    """ConfigError when the engine's libraries are missing (checked before any work starts)."""
    if name == "dask":
        try:
            import batch.engines.dask  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"--engine dask needs Dask ({exc}); install the extra with "
                "pip install -e '.[dask]' or use --engine local"
            ) from None


def open_engine(settings: Settings) -> Engine:
    """The engine the settings name, ready to run (close it, or use it in a with block)."""
    if settings.engine == "dask":
        check_available("dask")
        from batch.engines.dask import DaskEngine

        return DaskEngine(settings.dask_address, settings.dask_workers, settings.progress_seconds)
    from batch.engines.local import LocalEngine

    return LocalEngine(settings.progress_seconds)
