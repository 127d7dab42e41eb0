"""mcstore: a durable Trio store for Lightning mission control results, byte-compatible with lnd.

Start with :func:`open_store`::

    async with mcstore.open_store("mc.sqlite") as store:
        store.add_result(result)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version

# First: chooses the compiled or the pure core before anything below imports it. COMPILED is
# True when the compiled core (model and codec, built by mypyc) is in use; False for pure
# Python (no compiler at install time, or MCSTORE_PURE=1). `mcstore --version` prints it.
from ._select import COMPILED
from .backends import Backend, FetchOutcome, FlushOutcome, LocationError, PostgresBackend, SQLiteBackend
from .codec import decode_result, encode_result
from .errors import DecodeError, FlushError, StoreBusy, StoreClosed, StoreError, StoreFenced, StoreLocked
from .model import FAILURE_CODE_NAMES, Hop, PaymentFailure, PaymentResult, Route
from .store import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_RECORDS,
    DEFAULT_SHUTDOWN_TIMEOUT,
    MAX_RECORDS,
    MissionControlStore,
    ResultIterator,
    StoreState,
    StoreStats,
    open_store,
)

try:
    __version__: str = _installed_version("mcstore")
except PackageNotFoundError:  # a source tree on sys.path, never installed: the library still works
    __version__ = "0+unknown"
"""The installed distribution's version: pyproject.toml holds the one source of it ("0+unknown"
in a checkout that was never installed)."""

__all__ = [
    "COMPILED",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "FAILURE_CODE_NAMES",
    "MAX_RECORDS",
    "Backend",
    "DecodeError",
    "FetchOutcome",
    "FlushError",
    "FlushOutcome",
    "Hop",
    "LocationError",
    "MissionControlStore",
    "PaymentFailure",
    "PaymentResult",
    "PostgresBackend",
    "ResultIterator",
    "Route",
    "SQLiteBackend",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "StoreFenced",
    "StoreLocked",
    "StoreState",
    "StoreStats",
    "__version__",
    "decode_result",
    "encode_result",
    "open_store",
]
