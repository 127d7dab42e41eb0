"""Compatibility: the SQLite backend now lives in :mod:`mcstore.backends.sqlite`."""

from __future__ import annotations

from .backends.sqlite import SCHEMA_VERSION, SQLiteBackend

__all__ = ["SCHEMA_VERSION", "SQLiteBackend"]
