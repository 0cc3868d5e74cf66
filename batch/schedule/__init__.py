"""The nightly scheduler (APScheduler 3.x)."""
