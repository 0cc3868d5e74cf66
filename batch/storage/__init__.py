"""Locations and the stores behind them: local disk and object storage."""
