"""Compatibility: the protocol now lives in :mod:`mcstore.backends.base`."""

from __future__ import annotations

from .backends.base import Backend, FetchOutcome, FlushOutcome

__all__ = ["Backend", "FetchOutcome", "FlushOutcome"]
