"""Reading the mission control history out of an lnd node's ``channel.sqlite``, read-only.

lnd's SQLite backend keeps its bbolt-style key-value buckets in one table::

    channeldb_kv(key BLOB NOT NULL, value BLOB, parent_id BIGINT, id INTEGER PRIMARY KEY,
                 sequence BIGINT)

A bucket is a row whose ``value`` is NULL; its children have ``parent_id`` = its ``id``, and
top-level buckets have ``parent_id IS NULL``. Mission control results are under the top-level
bucket ``missioncontrol-results``, then one bucket per namespace (lnd's is ``default``), then
one row per result with lnd's 49-byte key and TLV value: the bytes mcstore stores as they are.

The file is opened read-only and, when no lnd has it open (no ``-wal`` file), ``immutable``,
so that not even SQLite's ``-wal``/``-shm`` companions are created next to it.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from typing import Final

from ..codec import decode_result
from ..errors import DecodeError
from ..model import PaymentResult
from .readonly import DatabaseFileError, connect_readonly

__all__ = ["RESULTS_BUCKET", "BadRow", "LndHistory", "list_namespaces", "read_history"]

RESULTS_BUCKET: Final = b"missioncontrol-results"
"""lnd's top-level bucket of mission control results (``resultsKey`` in lnd)."""

_KV_TABLE: Final = "channeldb_kv"


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


def _results_bucket(conn: sqlite3.Connection, path: str) -> int:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if _KV_TABLE not in tables:
        raise DatabaseFileError(
            path,
            f"not an lnd sqlite database (no {_KV_TABLE} table; lnd's bbolt channel.db is not supported)",
        )
    row = conn.execute(
        f"SELECT id FROM {_KV_TABLE} WHERE parent_id IS NULL AND key = ? AND value IS NULL",
        (RESULTS_BUCKET,),
    ).fetchone()
    if row is None:
        raise DatabaseFileError(
            path, f"no mission control history (no top-level bucket {RESULTS_BUCKET.decode()!r})"
        )
    return int(row[0])


def _namespace_buckets(conn: sqlite3.Connection, parent: int) -> dict[str, int]:
    rows = conn.execute(
        f"SELECT key, id FROM {_KV_TABLE} WHERE parent_id = ? AND value IS NULL ORDER BY key", (parent,)
    ).fetchall()
    # Bucket names are bytes in lnd; show undecodable ones escaped rather than fail.
    return {bytes(key).decode("utf-8", "backslashreplace"): int(bucket) for key, bucket in rows}


def _as_bytes(cell: object) -> bytes:
    """A BLOB cell as bytes; lnd writes BLOBs, but a TEXT or number cell must not crash us."""
    if isinstance(cell, bytes):
        return cell
    return str(cell).encode("utf-8")


def _connect(path: str) -> sqlite3.Connection:
    return connect_readonly(path, immutable_if_idle=True)


def list_namespaces(path: str) -> list[str]:
    """The mission control namespaces in lnd's ``channel.sqlite`` at ``path``, sorted.

    Raises :class:`~mcstore.readonly.DatabaseFileError` if the file is missing, not SQLite,
    not lnd's sqlite backend, or has no mission control bucket.
    """
    with closing(_connect(path)) as conn:
        try:
            return sorted(_namespace_buckets(conn, _results_bucket(conn, path)))
        except sqlite3.Error as exc:
            raise DatabaseFileError(path, f"cannot read: {exc}") from None


def read_history(path: str, namespace: str = "default") -> LndHistory:
    """Read and decode every result of ``namespace`` from lnd's ``channel.sqlite`` at ``path``.

    Rows that fail to decode (and nested buckets, which lnd never puts there) are listed in
    :attr:`LndHistory.bad_rows` and skipped. Never writes to the file. Raises
    :class:`~mcstore.readonly.DatabaseFileError` as :func:`list_namespaces` does, and when
    the namespace does not exist.
    """
    with closing(_connect(path)) as conn:
        try:
            buckets = _namespace_buckets(conn, _results_bucket(conn, path))
            if namespace not in buckets:
                found = ", ".join(repr(name) for name in buckets) or "none"
                raise DatabaseFileError(
                    path, f"no mission control namespace {namespace!r} (namespaces: {found})"
                )
            history = LndHistory(namespace)
            cursor = conn.execute(
                f"SELECT key, value FROM {_KV_TABLE} WHERE parent_id = ? ORDER BY key",
                (buckets[namespace],),
            )
            for raw_key, value in cursor:
                key = _as_bytes(raw_key)
                if value is None:
                    history.bad_rows.append(BadRow(key, "a nested bucket, not a result"))
                    continue
                try:
                    history.results.append(decode_result(key, _as_bytes(value)))
                except DecodeError as exc:
                    history.bad_rows.append(BadRow(key, str(exc)))
        except sqlite3.Error as exc:
            raise DatabaseFileError(path, f"cannot read: {exc}") from None
    return history
