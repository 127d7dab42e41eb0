"""Issue 21, item 5: would an integer namespace id, instead of the TEXT namespace in every
primary-key entry, pay?

Raw sqlite3 with the store's pragmas (WAL, synchronous=FULL) and a WITHOUT ROWID table keyed
(namespace, key) as ``mc_results`` is, once with ``namespace TEXT`` ('default') and once with
``ns INTEGER`` (1): 20k encoded 3-hop results inserted with multi-row INSERTs in transactions
of 100 and of 1000 rows, then read back in key order; four alternating repetitions, medians,
and the file's size after a checkpoint. Run from the repository root::

    python benchmarks/results/issue21-after/schema_ab.py
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())

import mcstore  # noqa: E402
from benchmarks.common import make_results  # noqa: E402

ROWS = [mcstore.encode_result(r) for r in make_results(0, 20_000)]


def _connect(path: str, column: str) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    name = column.split()[0]
    conn.execute(
        f"CREATE TABLE r({column} NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
        f"PRIMARY KEY({name}, key)) WITHOUT ROWID"
    )
    return conn


def one(kind: str, batch: int) -> tuple[float, float, int]:
    """(insert seconds, select seconds, file bytes) for ``kind`` 'text' or 'int'."""
    path = os.path.join(tempfile.gettempdir(), f"schema-ab-{kind}.sqlite")
    column, ns = ("namespace TEXT", "default") if kind == "text" else ("ns INTEGER", 1)
    conn = _connect(path, column)
    sql = "INSERT OR IGNORE INTO r VALUES " + ",".join(["(?1, ?, ?)"] * batch)
    t0 = time.perf_counter()
    for start in range(0, len(ROWS), batch):
        params: list[object] = [ns]
        for key, value in ROWS[start : start + batch]:
            params += (key, value)
        conn.execute("BEGIN")
        conn.execute(sql, params)
        conn.execute("COMMIT")
    inserted = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = conn.execute(f"SELECT key, value FROM r WHERE {column.split()[0]} = ? ORDER BY key", (ns,)).fetchall()
    selected = time.perf_counter() - t0
    assert len(rows) == len(ROWS)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return inserted, selected, os.path.getsize(path)


def main() -> None:
    for batch in (100, 1000):
        runs: dict[str, list[tuple[float, float, int]]] = {"text": [], "int": []}
        for rep in range(4):
            for kind in ("text", "int") if rep % 2 == 0 else ("int", "text"):
                runs[kind].append(one(kind, batch))
        for kind, values in runs.items():
            print(
                f"batch {batch:4d} {kind:4s}: insert {statistics.median(v[0] for v in values):.3f} s, "
                f"select {statistics.median(v[1] for v in values) * 1000:.1f} ms, file {values[0][2]} B"
            )


if __name__ == "__main__":
    main()
