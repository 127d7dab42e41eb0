"""The read-only reader (``open_reader``) and the commands that stream through it, ``stats`` and
``export``: no lock, nothing written, one consistent snapshot per namespace, flat memory."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing
from click.testing import CliRunner
from factories import failed, result
from shutdown_checks import StorePlace

import mcstore
from mcstore import LocationError, StoreClosed, open_store
from mcstore.backends import PostgresReader, SQLiteReader, open_reader
from mcstore.backends.sqlite import SCHEMA_VERSION
from mcstore.cli.main import cli

BUDGET = 30.0


async def write(path: Path | str, namespace: str, ids: range) -> None:
    async with open_store(path, namespace=namespace, max_records=0) as store:
        for i in ids:
            store.add_result(failed(i) if i % 2 else result(i))


def listing(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# -- what the reader refuses ---------------------------------------------------------------------


async def test_reader_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite"
    with pytest.raises(LocationError, match=r"missing\.sqlite: no such file") as caught:
        await open_reader(path)
    assert caught.value.location == str(path) and caught.value.problem == "no such file"
    assert listing(tmp_path) == set()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("text", "not an SQLite database"),
        ("lnd", "not an mcstore database (no mc_results table; tables: channeldb_kv)"),
        ("newer", f"schema version {SCHEMA_VERSION + 1} is newer than {SCHEMA_VERSION}"),
    ],
)
async def test_reader_refuses_what_is_not_an_mcstore_database_it_can_read(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "db.sqlite"
    if content == "text":
        path.write_text("hello, this is not a database\n")
    else:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            if content == "lnd":
                conn.execute("CREATE TABLE channeldb_kv(key BLOB)")
            else:
                conn.execute("CREATE TABLE mc_results(namespace TEXT, key BLOB, value BLOB)")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(LocationError, match="^" + str(path).replace(".", r"\.") + ": ") as caught:
        await open_reader(path)
    assert problem in caught.value.problem
    assert path.read_bytes() == before


async def test_reader_rejects_a_location_of_another_type() -> None:
    with pytest.raises(TypeError, match="location must be a file path or a postgresql:// URL, got 42"):
        await open_reader(42)  # type: ignore[arg-type]


# -- reading beside a writer -----------------------------------------------------------------------


async def test_reader_takes_no_lock_and_reads_one_snapshot_while_a_store_writes(store_place: StorePlace) -> None:
    path = store_place.path
    await write(path, "b", range(3))
    await write(path, "gone", range(2))
    async with open_store(path, namespace="gone") as store:
        await store.clear()  # a namespace with a recorded count and no rows
    with trio.fail_after(BUDGET):
        async with open_store(path, namespace="a", max_records=0) as store:
            for i in range(10):
                store.add_result(result(i))
            await store.flush()
            # The store holds namespace "a" (its lock) and keeps writing: the reader needs neither.
            async with contextlib.aclosing(await open_reader(path)) as reader:
                assert reader.schema_version == SCHEMA_VERSION
                assert dict(await reader.namespaces()) == {"a": 10, "b": 3, "gone": 0}
                async with contextlib.aclosing(await reader.open_snapshot("a")) as snapshot:
                    first = await snapshot.next_batch(4)
                    for i in range(10, 20):
                        store.add_result(result(i))
                    await store.flush()  # commits while the snapshot is open
                    rest = await snapshot.next_batch(100)
                    assert await snapshot.count() == 10
                assert [mcstore.decode_result(k, v).id for k, v in first + rest] == list(range(10))
                assert (await reader.namespaces())["a"] == 20
                async with contextlib.aclosing(await reader.open_snapshot("nobody")) as snapshot:
                    assert await snapshot.next_batch(10) == []


async def test_closing_the_reader_closes_its_snapshots(store_place: StorePlace) -> None:
    path = store_place.path
    await write(path, "default", range(5))
    reader = await open_reader(path)
    assert isinstance(reader, SQLiteReader if store_place.kind == "sqlite" else PostgresReader)
    snapshot = await reader.open_snapshot("default")
    assert reader.snapshots_open == 1
    await reader.aclose()
    assert reader.snapshots_open == 0
    with pytest.raises(StoreClosed):
        await snapshot.next_batch(1)
    with pytest.raises(StoreClosed):
        await reader.open_snapshot("default")
    await reader.aclose()  # harmless again


async def test_no_snapshot_opens_while_the_reader_closes_the_open_ones(store_place: StorePlace) -> None:
    # A snapshot opened while aclose() waits for the open ones to close would outlive the reader.
    path = store_place.path
    await write(path, "default", range(5))
    reader = await open_reader(path)
    await reader.open_snapshot("default")
    late: list[BaseException | object] = []

    async def open_late() -> None:
        try:
            late.append(await reader.open_snapshot("default"))
        except StoreClosed as exc:
            late.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader.aclose)
        await trio.testing.wait_all_tasks_blocked()  # aclose() is closing the first snapshot
        nursery.start_soon(open_late)
    try:
        assert len(late) == 1 and isinstance(late[0], StoreClosed)
        assert reader.snapshots_open == 0
    finally:
        for snapshot in late:  # one that did open: close it, so that the test fails, not hangs
            if not isinstance(snapshot, BaseException):
                await snapshot.aclose()  # type: ignore[attr-defined]


async def test_check_integrity_is_quick_check_on_sqlite_and_nothing_on_a_server(
    store_place: StorePlace,
) -> None:
    from test_cli import _corrupt_a_page_of

    path = store_place.path
    await write(path, "default", range(5))
    async with contextlib.aclosing(await open_reader(path)) as reader:
        assert await reader.check_integrity() == []
    if store_place.kind != "sqlite":
        return
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes(x BLOB)")
        conn.executemany("INSERT INTO notes VALUES (?)", [(os.urandom(40),) for _ in range(50)])
    _corrupt_a_page_of(Path(path), "notes")
    async with contextlib.aclosing(await open_reader(path)) as reader:
        damage = await reader.check_integrity()
        assert damage and damage != ["ok"]
        async with contextlib.aclosing(await reader.open_snapshot("default")) as snapshot:
            assert len(await snapshot.next_batch(10)) == 5  # the namespace's own pages are sound


# -- the commands -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["stats", "export"])
def test_stats_and_export_show_a_progress_bar_of_the_snapshots_rows_when_asked(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "mc.sqlite"
    trio.run(write, path, "default", range(2500))
    out = ["-o", str(tmp_path / "out.jsonl"), "--force"] if command == "export" else []
    shown = CliRunner().invoke(cli, [command, str(path), *out, "--progress"])
    assert shown.exit_code == 0, shown.output
    assert "2500/2500" in shown.stderr and "100%" in shown.stderr
    hidden = CliRunner().invoke(cli, [command, str(path), *out, "--no-progress"])
    assert hidden.exit_code == 0, hidden.output
    assert "2500/2500" not in hidden.stderr


@pytest.mark.slow
def test_export_runs_in_constant_memory(tmp_path: Path) -> None:
    """Exporting 100x the rows costs no more memory (peak RSS of the whole command)."""
    key, value = mcstore.encode_result(failed(7))

    def build(path: Path, size: int) -> None:
        trio.run(write, path, "default", range(0))
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.executemany(
                "INSERT INTO mc_results VALUES ('default', ?, ?)",
                ((key[:8] + i.to_bytes(8, "big") + key[16:], value) for i in range(size)),
            )

    driver = (
        "import resource, sys\n"
        "from mcstore.cli.main import cli\n"
        "try:\n"
        "    cli(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)\n"
    )
    peaks = {}
    for size in (1_000, 100_000):
        path = tmp_path / f"{size}.sqlite"
        build(path, size)
        output = tmp_path / f"{size}.jsonl"
        proc = subprocess.run(
            [sys.executable, "-c", driver, "export", str(path), "-o", str(output), "--no-progress"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert proc.returncode == 0, proc.stderr
        peaks[size] = int(proc.stderr.strip().splitlines()[-1])
        with output.open() as f:
            lines = sum(1 for _ in f)
        assert lines == size
        last = json.loads(output.read_text().splitlines()[-1])
        assert last["id"] == size - 1
    growth = peaks[100_000] - peaks[1_000]
    assert growth < 8 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB for 100x the rows"


def test_stats_and_export_read_every_backend_through_the_reader(store_place: StorePlace) -> None:
    """The commands name no backend: a file and a postgresql:// URL are read alike."""
    trio.run(write, store_place.path, "default", range(30))
    exported = CliRunner().invoke(cli, ["export", store_place.path, "--no-progress"])
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line)["id"] for line in exported.stdout.splitlines()] == list(range(30))
    summary = CliRunner().invoke(cli, ["stats", store_place.path, "--no-progress"])
    assert summary.exit_code == 0, summary.output
    assert "Namespaces (1): 'default'" in summary.stdout
    rows = {line.split()[0]: line.split()[1] for line in summary.stdout.splitlines() if line.startswith(" ")}
    assert rows["records"] == "30" and rows["successes"] == "15" and rows["failures"] == "15"
