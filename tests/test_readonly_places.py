"""Databases in read-only places: readers read them and leave nothing behind, writers fail at open.

Root ignores file permissions, and the tests run as root here; so the commands run in a child
process without root's power to override them (``setpriv`` drops ``CAP_DAC_OVERRIDE`` and its
kin from the bounding set: uid 0 then obeys the permission bits of the files it owns, as any
user does). ``scripts/powerless_cli.py`` runs them all in one child, and first the test checks that the
child really cannot write a read-only file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from factories import PEER, SOURCE, failed, result
from shutdown_checks import SCRIPTS_DIR, child_env

from mcstore import FlushError, StoreError, encode_result, open_store
from mcstore.backends import open_reader, sqlite_read
from mcstore.cli.export import result_to_json_line
from mcstore.cli.ingest import store_all
from mcstore.testing import FaultyBackend, MemoryBackend

HELPER = os.path.join(SCRIPTS_DIR, "powerless_cli.py")
DROPPED = "-dac_override,-dac_read_search,-fowner,-linux_immutable"
"""Root's capabilities that override file permissions (and file attributes)."""
RESULTS = [result(1), failed(2), result(3)]


def powerless(argv: list[str]) -> list[str]:
    """``argv`` as a process that file permissions apply to, root or not."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv (util-linux), to drop root's permission overrides, is missing")
    return ["setpriv", f"--bounding-set={DROPPED}", *argv]


def run_powerless(commands: list[list[str]], probe: Path) -> list[dict[str, Any]]:
    """Run ``commands`` (see scripts/powerless_cli.py) in one child without root's powers; also check
    that the child cannot append to ``probe``, a read-only file."""
    check = [sys.executable, "-c", f"open({str(probe)!r}, 'a')"]
    denied = subprocess.run(powerless(check), capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, "the child can write a read-only file"
    done = subprocess.run(
        powerless([sys.executable, HELPER, json.dumps(commands)]), capture_output=True, text=True, timeout=120,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    outcomes: list[dict[str, Any]] = json.loads(done.stdout)["outcomes"]
    return outcomes


def listing(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@contextlib.contextmanager
def read_only(place: str, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A database in a read-only directory ("directory"), or a read-only database in a writable
    one ("file"); yields the database and a read-only file to probe with."""
    directory = tmp_path / place
    directory.mkdir()
    db = directory / "mc.sqlite"
    trio.run(lambda: store_all(str(db), RESULTS, max_records=0))
    for lock in directory.glob("*.lock"):
        lock.unlink()  # leftovers of the writer: a copied or restored database has none
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(result_to_json_line(result(4)) + "\n")
    db.chmod(0o444)
    if place == "directory":
        directory.chmod(0o555)
    try:
        yield db, db
    finally:
        directory.chmod(0o755)
        db.chmod(0o644)


@pytest.mark.parametrize("place", ["directory", "file"])
def test_readers_read_a_read_only_database_and_leave_nothing_behind(tmp_path: Path, place: str) -> None:
    with read_only(place, tmp_path) as (db, probe):
        before = listing(db.parent)
        stats, export, querymc, queryprob = run_powerless(
            [
                ["stats", str(db)],
                ["export", str(db)],
                ["querymc", str(db), "--json"],
                ["queryprob", str(db), SOURCE.hex(), PEER.hex(), "1000", "--capacity-sat", "100000"],
            ],
            probe,
        )
        after = listing(db.parent)
    for outcome in (stats, export, querymc, queryprob):
        assert outcome["exit_code"] == 0, outcome
    assert "Namespaces (1): 'default'" in stats["stdout"]
    assert export["stdout"] == "".join(result_to_json_line(r) + "\n" for r in RESULTS)
    assert json.loads(querymc["stdout"])["pairs"]
    assert after == before  # no -wal, no -shm, the file unchanged


@pytest.mark.parametrize("place", ["directory", "file"])
def test_writers_on_a_read_only_database_fail_at_open_naming_it(tmp_path: Path, place: str) -> None:
    with read_only(place, tmp_path) as (db, probe):
        before = listing(db.parent)
        new_db = db.parent / "new.sqlite"
        commands = [
            ["import", str(db), str(tmp_path / "more.jsonl")],
            ["reset", str(db), "--yes"],
            ["demo", "--db", str(db), "--payments", "5", "--seed", "1"],
            ["open_store", str(db)],
        ]
        if place == "directory":  # a new database in a read-only directory
            commands += [["demo", "--db", str(new_db), "--payments", "5", "--seed", "1"], ["open_store", str(new_db)]]
        outcomes = run_powerless(commands, probe)
        after = listing(db.parent)
    why = "is not writable" if place == "directory" else "the file is read-only"
    for command, outcome in zip(commands, outcomes, strict=True):
        assert outcome["exit_code"] == 1, (command, outcome)
        target = command[command.index("--db") + 1] if "--db" in command else command[1]
        message = outcome["stderr"].strip()
        assert len(message.splitlines()) == 1, (command, message)  # one line, no store log of failed flushes
        assert f"cannot write {target!r}" in message and why in message, (command, message)
        # At once: not after a flush failed and the close retried it until shutdown_timeout (5 s).
        assert outcome["seconds"] < 2.5, (command, outcome)
    assert after == before


async def test_a_reader_without_locks_fails_if_the_file_changes_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only place is read `immutable` (no locks): a writer with more rights that starts
    # meanwhile and checkpoints changes the file under the reader. The reader must notice.
    path = tmp_path / "mc.sqlite"
    await store_all(str(path), [result(i) for i in range(1, 11)], max_records=0)
    monkeypatch.setattr(sqlite_read, "_writable_here", lambda _path: False)
    async with contextlib.aclosing(await open_reader(path)) as reader:
        async with contextlib.aclosing(await reader.open_snapshot("default")) as snapshot:
            assert len(await snapshot.next_batch(5)) == 5
            with contextlib.closing(sqlite3.connect(path)) as writer:
                writer.execute("INSERT INTO mc_results VALUES ('default', ?, ?)", encode_result(result(99)))
                writer.commit()
                writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            with pytest.raises(StoreError, match="changed while it was read"):
                await snapshot.next_batch(5)


# -- a failed flush's retry: within MAX_RETRY_BACKOFF, whatever flush_interval ---------------------


async def test_a_failed_flush_is_retried_within_30_s_even_with_a_day_long_interval(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # mcstore import flushes with a day-long interval; its failed flush logged "retry in 8.64e+04 s".
    backend = FaultyBackend(MemoryBackend())
    backend.fail_next = 1
    with caplog.at_level(logging.ERROR, logger="mcstore"):
        async with open_store(backend, flush_interval=86_400.0) as store:
            store.add_result(result(1))
            await trio.testing.wait_all_tasks_blocked()  # the ticker now waits out the day-long interval
            with pytest.raises(FlushError, match="injected"):
                await store.flush()
            await trio.sleep(29.9)
            assert store.stats().pending == 1
            await trio.sleep(0.2)  # the ticker's retry, 30 s after the failure
            assert store.stats().pending == 0
    assert "kept for retry in 30 s" in caplog.text
