"""Builds a stand-in for an lnd node's ``channel.sqlite``, with lnd's key-value table schema.

lnd's sqlite backend keeps bbolt-style buckets in ``channeldb_kv``: a bucket is a row with a
NULL value, top-level rows have a NULL ``parent_id``, and children point at their bucket's
``id``. Mission control results sit under ``missioncontrol-results`` / ``<namespace>``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing

__all__ = ["KV_SCHEMA", "build_channel_db"]

KV_SCHEMA = (
    "CREATE TABLE channeldb_kv(key BLOB NOT NULL, value BLOB, parent_id BIGINT, "
    "id INTEGER PRIMARY KEY, sequence BIGINT)"
)


def _bucket(conn: sqlite3.Connection, key: bytes, parent: int | None) -> int:
    cursor = conn.execute(
        "INSERT INTO channeldb_kv(key, value, parent_id, sequence) VALUES (?, NULL, ?, 0)", (key, parent)
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _put(conn: sqlite3.Connection, key: bytes, value: bytes, parent: int) -> None:
    conn.execute(
        "INSERT INTO channeldb_kv(key, value, parent_id, sequence) VALUES (?, ?, ?, NULL)",
        (key, value, parent),
    )


def build_channel_db(
    path: str,
    namespaces: Mapping[str, Sequence[tuple[bytes, bytes]]],
    *,
    wal: bool = True,
    results_bucket: bool = True,
) -> None:
    """Write ``path`` with lnd's ``channeldb_kv`` table holding ``namespaces``' raw rows.

    Other top-level buckets, as a real node has, come first, so that the ids are not trivially
    1, 2, 3. ``wal`` sets lnd's journal mode; ``results_bucket=False`` leaves out the mission
    control bucket altogether (a node that never paid).
    """
    with closing(sqlite3.connect(path)) as conn:
        if wal:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(KV_SCHEMA)
        graph = _bucket(conn, b"graph-edge", None)
        _put(conn, b"\x00" * 8, b"not a mission control result", graph)
        _bucket(conn, b"payments-root-bucket", None)
        if results_bucket:
            top = _bucket(conn, b"missioncontrol-results", None)
            for namespace, rows in namespaces.items():
                bucket = _bucket(conn, namespace.encode(), top)
                for key, value in rows:
                    _put(conn, key, value, bucket)
        conn.commit()
