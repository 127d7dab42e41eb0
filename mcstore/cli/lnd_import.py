"""Reading the mission control history out of an lnd node's ``channel.sqlite``, read-only.

lnd's SQLite backend keeps its bbolt-style key-value buckets in one table::

    channeldb_kv(key BLOB NOT NULL, value BLOB, parent_id BIGINT, id INTEGER PRIMARY KEY,
                 sequence BIGINT)

A bucket is a row whose ``value`` is NULL; its children have ``parent_id`` = its ``id``, and
top-level buckets have ``parent_id IS NULL``. Mission control results are under the top-level
bucket ``missioncontrol-results``, then one bucket per namespace (lnd's is ``default``), then
one row per result with lnd's 49-byte key and TLV value: the bytes mcstore stores as they are.

The file is opened read-only and, when no lnd has it open (no ``-wal`` file), ``immutable``,
so that not even SQLite's ``-wal``/``-shm`` companions are created next to it
(:func:`~mcstore.backends.query_readonly` does that, and the PostgreSQL part below).

An lnd node on PostgreSQL (``db.backend=postgres``) keeps the same buckets in the same layout,
in its database's table ``channeldb_kv`` (``key bytea``, ``parent_id bigint``, ``id bigserial``);
pass its ``postgresql://`` URL instead of a file. It is read in one ``REPEATABLE READ READ ONLY``
transaction, so the history is one consistent view even while lnd writes, and nothing is written.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Final

from ..backends import LocationError, Query, query_readonly
from ..codec import decode_result
from ..errors import DecodeError
from ..model import KEY_LEN, PaymentResult
from .export import over_limits

__all__ = ["RESULTS_BUCKET", "BadRow", "LndHistory", "list_namespaces", "read_history"]

RESULTS_BUCKET: Final = b"missioncontrol-results"
"""lnd's top-level bucket of mission control results (``resultsKey`` in lnd)."""

_KV_TABLE: Final = "channeldb_kv"

MAX_VALUE_BYTES: Final = 1 << 17
"""The longest value of a result row read from lnd's database, in bytes (128 KiB): a value within
the import limits (:data:`~mcstore.cli.export.MAX_HOPS` hops, a failure message of
:data:`~mcstore.cli.export.MAX_FAILURE_MESSAGE_BYTES` bytes) is under 70 KiB. A longer one is
a bad row, and is never read into memory."""
_KEY_READ: Final = 64
"""Bytes of a row's key read: more than a key (49 bytes) has, so a longer key is seen as such."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row under a namespace bucket that is not a valid result, and why."""

    key: bytes
    reason: str


@dataclass(slots=True)
class LndHistory:
    """The results of one lnd mission control namespace, in key order, and the rows skipped."""

    namespace: str
    results: list[PaymentResult] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)


def _results_bucket(query: Query, has_kv_table: bool, path: str) -> int:
    if not has_kv_table:
        raise LocationError(
            path,
            f"not an lnd sqlite database (no {_KV_TABLE} table; lnd's bbolt channel.db is not supported)",
        )
    rows = query(
        f"SELECT id FROM {_KV_TABLE} WHERE parent_id IS NULL AND key = ? AND value IS NULL", (RESULTS_BUCKET,)
    )
    if not rows:
        raise LocationError(
            path, f"no mission control history (no top-level bucket {RESULTS_BUCKET.decode()!r})"
        )
    return int(rows[0][0])


def _namespace_buckets(query: Query, parent: int) -> dict[str, int]:
    rows = query(f"SELECT key, id FROM {_KV_TABLE} WHERE parent_id = ? AND value IS NULL ORDER BY key", (parent,))
    # Bucket names are bytes in lnd; show undecodable ones escaped rather than fail.
    return {bytes(key).decode("utf-8", "backslashreplace"): int(bucket) for key, bucket in rows}


def _as_bytes(cell: object) -> bytes:
    """A BLOB cell as bytes; lnd writes BLOBs, but a TEXT or number cell must not crash us."""
    if isinstance(cell, (bytes, memoryview)):
        return bytes(cell)
    return str(cell).encode("utf-8")


def _lnd_database(path: str) -> AbstractContextManager[tuple[Query, bool, str]]:
    """lnd's database, read-only: ``(query, has channeldb_kv, name for messages)``.

    ``path`` is a ``channel.sqlite`` file or a ``postgresql://`` URL
    (:func:`~mcstore.backends.query_readonly`). Failures to read are :class:`~mcstore.LocationError`.
    """
    return query_readonly(path, _KV_TABLE)


def list_namespaces(path: str) -> list[str]:
    """The mission control namespaces in lnd's ``channel.sqlite`` at ``path`` (or the lnd
    database at a ``postgresql://`` URL), sorted.

    Raises :class:`~mcstore.LocationError` if the file is missing, not SQLite,
    not lnd's sqlite backend, or has no mission control bucket.
    """
    with _lnd_database(path) as (query, has_kv_table, where):
        return sorted(_namespace_buckets(query, _results_bucket(query, has_kv_table, where)))


def read_history(path: str, namespace: str = "default") -> LndHistory:
    """Read and decode every result of ``namespace`` from lnd's ``channel.sqlite`` at ``path``
    (or the lnd database at a ``postgresql://`` URL).

    Rows that fail to decode (and nested buckets, which lnd never puts there) are listed in
    :attr:`LndHistory.bad_rows` and skipped. Never writes to the database. Raises
    :class:`~mcstore.LocationError` as :func:`list_namespaces` does, and when
    the namespace does not exist.
    """
    with _lnd_database(path) as (query, has_kv_table, where):
        buckets = _namespace_buckets(query, _results_bucket(query, has_kv_table, where))
        if namespace not in buckets:
            found = ", ".join(repr(name) for name in buckets) or "none"
            raise LocationError(where, f"no mission control namespace {namespace!r} (namespaces: {found})")
        history = LndHistory(namespace)
        # Neither a long key nor a long value is read whole: lengths first, then bytes within the limits.
        rows = query(
            f"SELECT substr(key, 1, {_KEY_READ}), length(key), "
            f"CASE WHEN length(value) <= {MAX_VALUE_BYTES} THEN value END, length(value) "
            f"FROM {_KV_TABLE} WHERE parent_id = ? ORDER BY key",
            (buckets[namespace],),
        )
        for raw_key, key_length, value, value_length in rows:
            key = _as_bytes(raw_key)
            problem = _row_problem(key_length, value_length)
            if problem is None:
                try:
                    result = decode_result(key, _as_bytes(value))
                except DecodeError as exc:
                    problem = str(exc)
                else:
                    failure = result.failure
                    message = failure.message if failure is not None else None
                    over = over_limits(len(result.route.hops), len(message) if message is not None else 0)
                    if over is None:
                        history.results.append(result)
                        continue
                    problem = f"{over[0]}: {over[1]}"
            history.bad_rows.append(BadRow(key, problem))
    return history


def _row_problem(key_length: int, value_length: int | None) -> str | None:
    """Why a row of lnd's results bucket with these lengths is not a result, or None."""
    if value_length is None:
        return "a nested bucket, not a result"
    if key_length > _KEY_READ:
        return f"a key of {key_length} bytes, not {KEY_LEN}"
    if value_length > MAX_VALUE_BYTES:
        return f"a value of {value_length} bytes, more than the limit of {MAX_VALUE_BYTES}"
    return None
