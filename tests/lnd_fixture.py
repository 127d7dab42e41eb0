"""Builds a stand-in for an lnd node's ``channel.sqlite``, with lnd's key-value table schema.

lnd's sqlite backend keeps bbolt-style buckets in ``channeldb_kv``: a bucket is a row with a
NULL value, top-level rows have a NULL ``parent_id``, and children point at their bucket's
``id``. Mission control results sit under ``missioncontrol-results`` / ``<namespace>``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing

__all__ = ["KV_SCHEMA", "KV_SCHEMA_POSTGRES", "build_channel_db", "build_channel_db_postgres"]

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


# lnd's kvdb table on PostgreSQL (lnd's db.backend=postgres), as lnd creates it.
KV_SCHEMA_POSTGRES = (
    "CREATE TABLE channeldb_kv(key bytea NOT NULL, value bytea, "
    "parent_id bigint REFERENCES channeldb_kv(id) ON DELETE CASCADE, id bigserial PRIMARY KEY, sequence bigint)",
    "CREATE UNIQUE INDEX channeldb_kv_p ON channeldb_kv(parent_id, key) WHERE parent_id IS NOT NULL",
    "CREATE UNIQUE INDEX channeldb_kv_up ON channeldb_kv(key) WHERE parent_id IS NULL",
)


def build_channel_db_postgres(dsn: str, namespaces: Mapping[str, Sequence[tuple[bytes, bytes]]]) -> None:
    """As :func:`build_channel_db`, in the ``channeldb_kv`` table of the database (schema) of ``dsn``."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        for statement in KV_SCHEMA_POSTGRES:
            conn.execute(statement)

        def bucket(key: bytes, parent: int | None) -> int:
            row = conn.execute(
                "INSERT INTO channeldb_kv(key, value, parent_id, sequence) VALUES (%s, NULL, %s, 0) RETURNING id",
                (key, parent),
            ).fetchone()
            assert row is not None
            return int(row[0])

        graph = bucket(b"graph-edge", None)
        conn.execute("INSERT INTO channeldb_kv(key, value, parent_id) VALUES (%s, %s, %s)",
                     (b"\x00" * 8, b"not a mission control result", graph))
        top = bucket(b"missioncontrol-results", None)
        for namespace, rows in namespaces.items():
            parent = bucket(namespace.encode(), top)
            for key, value in rows:
                conn.execute(
                    "INSERT INTO channeldb_kv(key, value, parent_id) VALUES (%s, %s, %s)", (key, value, parent)
                )
