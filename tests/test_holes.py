"""Tests for the holes that mutation testing found in the suite (issue 10 §5).

Each test names the mutant it kills; each was checked by applying that mutant once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing
from backend_fixtures import BackendFactory
from factories import result
from shutdown_checks import REPO_ROOT, child_env, sqlite_results

from mcstore import FlushError, MissionControlStore, PaymentResult, SQLiteBackend, StoreError, StoreState, open_store
from mcstore.testing import FaultyBackend, MemoryBackend, MemoryDatabase, live_store_tasks

BUDGET = 30.0  # real seconds


async def test_a_flush_that_fails_inside_its_transaction_rolls_back_and_the_next_succeeds(tmp_path: Path) -> None:
    # Mutant killed: the ROLLBACK in SQLiteBackend._write skipped. The flush fails after its
    # inserts, at the update of the kept count (a trigger RAISEs); the transaction must be
    # rolled back, or the next flush dies with "cannot start a transaction within a transaction".
    path = tmp_path / "mc.sqlite"
    async with open_store(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE fault(armed INTEGER NOT NULL)")
        conn.execute("INSERT INTO fault VALUES (0)")  # armed once the store is open
        for event in ("INSERT", "UPDATE"):
            conn.execute(
                f"CREATE TRIGGER fail_{event.lower()} BEFORE {event} ON mc_namespaces "
                "WHEN (SELECT armed FROM fault) BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
    backend = SQLiteBackend(path)
    with trio.fail_after(BUDGET):
        async with open_store(backend, max_records=0, flush_interval=60.0) as store:
            with sqlite3.connect(path) as conn:
                conn.execute("UPDATE fault SET armed = 1")
            store.add_result(result(1))
            store.add_result(result(2))
            with pytest.raises(FlushError, match="injected failure"):
                await store.flush()
            assert backend._conn is not None and not backend._conn.in_transaction  # rolled back
            assert store.stats().pending == 2 and store.stats().flush_failures == 1
            # Another connection can write at once: the failed flush holds no write lock.
            with sqlite3.connect(path, timeout=0.5) as conn:
                conn.execute("UPDATE fault SET armed = 0")
            assert sqlite_results(path) == []
            store.add_result(result(3))
            await store.flush()
            assert store.stats().pending == 0 and store.stats().stored == 3
    assert store.unpersisted == ()
    assert sqlite_results(path) == [result(1), result(2), result(3)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT stored FROM mc_namespaces").fetchall() == [(3,)]


async def test_the_kept_count_survives_flushes_prunes_clears_and_reopens(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None
) -> None:
    # Mutant killed: a flush that does not update mc_namespaces.stored. A clear writes the count
    # (0); the flushes after it must keep it exact, or the reopen reports (and prunes by) a
    # stale count. No fetch_all before the checks: it would repair the count.
    async with open_store(make_backend(), max_records=0, flush_interval=60.0) as store:
        for i in range(3):
            store.add_result(result(i))
        await store.flush()
        await store.clear()
        for i in range(10, 17):
            store.add_result(result(i))
        await store.flush()
        store.add_result(result(17))
        await store.flush()
    async with open_store(make_backend(), max_records=0) as store:
        assert store.stats().stored == 8
    async with open_store(make_backend(), max_records=5, flush_interval=60.0) as store:
        assert store.stats().stored == 5  # pruned at open from exactly 8
        for i in range(20, 23):
            store.add_result(result(i))
        await store.flush()  # prunes by the kept count: exactly max_records stay
        assert store.stats().stored == 5
        assert store.stats().pruned == 3
    async with open_store(make_backend(), max_records=5) as store:
        assert store.stats().stored == 5
        assert [r.id for r in await store.fetch_all()] == [16, 17, 20, 21, 22]
        assert store.stats().corrupted_removed == 0


async def test_aclose_from_a_task_outside_the_block_returns_after_every_store_task_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Mutant killed: aclose() returning before the store's tasks have ended (the wait on the
    # tasks skipped). The intake is still encoding, one chunk per checkpoint, results that a
    # clear() dropped when the close comes: no flush ends that work early.
    backend = FaultyBackend(MemoryBackend())
    seen: list[list[str]] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as outer:
            async with open_store(backend, max_records=0, flush_interval=1.0) as store:
                closed = trio.Event()

                async def close_from_outside() -> None:
                    await store.aclose()
                    # No checkpoint between aclose() returning and this look.
                    seen.append([t.name for t in live_store_tasks()])
                    closed.set()

                for i in range(20_000):
                    store.add_result(result(i))
                await trio.lowlevel.checkpoint()  # the intake starts encoding in chunks
                await store.clear()
                outer.start_soon(close_from_outside)
                await closed.wait()
    assert seen == [[]]
    assert store.unpersisted == ()


# -- the wall-clock limit on every test ---------------------------------------------------------

HANGING_TEST = '''
import pytest
import trio


@pytest.mark.trio
async def test_hangs_in_a_shielded_scope():
    # A shielded scope blocks the test's own fail_after: only a limit from outside Trio helps.
    with trio.fail_after(1):
        with trio.CancelScope(shield=True):
            await trio.sleep_forever()
'''


@pytest.mark.slow
def test_a_hanging_test_fails_within_the_wall_clock_limit_and_is_named(tmp_path: Path) -> None:
    # The project's pytest configuration (pyproject.toml: pytest-timeout, its method) with the
    # limit lowered to 3 s: the run fails, within the limit plus start-up, naming the test.
    (tmp_path / "test_hang.py").write_text(textwrap.dedent(HANGING_TEST))
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.path.join(REPO_ROOT, "pyproject.toml"),
         "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-o", "timeout=3", "-q", str(tmp_path / "test_hang.py")],
        capture_output=True, text=True, timeout=120, env=child_env(), cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, output
    assert "Timeout" in output and "test_hangs_in_a_shielded_scope" in output, output
    assert elapsed < 3 + 30, elapsed


# -- Ctrl-C during the close ------------------------------------------------------------------


@pytest.mark.usefixtures("default_sigint")
def test_a_second_ctrl_c_during_the_close_does_not_cut_it_short() -> None:
    # The first SIGINT stops the block; a second one arrives while the final flush runs. The
    # close still persists everything, and KeyboardInterrupt comes out once it has finished.
    # (Without _uninterrupted, Trio delivers the second one to the main task inside the
    # shielded close, which then stops half-way with the results in unpersisted.)
    database = MemoryDatabase()
    signals: list[str] = []

    async def second_ctrl_c(results: Sequence[PaymentResult]) -> None:
        if store_box and store_box[0].state is StoreState.CLOSING and not signals:
            signals.append("second")
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep(0.05)  # the final flush goes on meanwhile

    backend = FaultyBackend(MemoryBackend(database), before_flush=second_ctrl_c)
    store_box: list[MissionControlStore] = []

    async def main() -> None:
        async with open_store(backend, max_records=0, flush_interval=60.0) as store:
            store_box.append(store)
            for i in range(100):
                store.add_result(result(i))
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep_forever()

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    assert signals == ["second"]
    (store,) = store_box
    assert store.closed and store.unpersisted == ()
    assert [r.id for r in database.results()] == list(range(100))


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_on_a_failing_database_leaves_the_rest_in_unpersisted() -> None:
    # The other half of the Ctrl-C guarantee: when the final flush cannot succeed, the
    # KeyboardInterrupt still comes out as itself, and every accepted result is handed back.
    database = MemoryDatabase()
    backend = FaultyBackend(MemoryBackend(database), fail_always=True)
    store_box: list[MissionControlStore] = []

    async def main() -> None:
        async with open_store(backend, max_records=0, flush_interval=0.001, shutdown_timeout=0.2) as store:
            store_box.append(store)
            for i in range(50):
                store.add_result(result(i))
            await trio.sleep(0.01)  # the ticker's flushes fail meanwhile
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep_forever()

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    (store,) = store_box
    assert backend.faults_injected >= 2  # the ticker's flush and the final flush failed
    assert store.closed and [r.id for r in store.unpersisted] == list(range(50))
    assert database.rows() == {}


# -- issue 17: a Ctrl-C during the close must come out, and the close's task is protected ------


@pytest.mark.usefixtures("default_sigint")
@pytest.mark.parametrize("close", ["normal exit", "aclose()"])
def test_a_ctrl_c_during_the_close_comes_out_once_the_close_has_finished(close: str) -> None:
    # The only Ctrl-C comes while the final flush runs, after a normal exit of the block or
    # during an explicit aclose(): the close still persists everything, and the interrupt is
    # raised when it has finished, not swallowed. (Mutant killed: _uninterrupted dropping the
    # KeyboardInterrupt it kept; the test above has one from the block, which hides that.)
    database = MemoryDatabase()
    store_box: list[MissionControlStore] = []
    fired: list[bool] = []
    after: list[str] = []

    async def ctrl_c_in_the_final_flush(results: Sequence[PaymentResult]) -> None:
        if store_box[0].state is StoreState.CLOSING and not fired:
            fired.append(True)
            signal.raise_signal(signal.SIGINT)  # KI-protected here: Trio defers it to the main task
            # Until Trio has delivered it to the main task, which waits for this close.
            await trio.testing.wait_all_tasks_blocked()

    backend = FaultyBackend(MemoryBackend(database), before_flush=ctrl_c_in_the_final_flush)

    async def main() -> None:
        async with open_store(backend, max_records=0, flush_interval=60.0) as store:
            store_box.append(store)
            for i in range(100):
                store.add_result(result(i))
            if close == "aclose()":
                await store.aclose()
                after.append("aclose returned")
        after.append("block left")

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    assert fired == [True] and after == []
    (store,) = store_box
    assert store.closed and store.unpersisted == ()
    assert [r.id for r in database.results()] == list(range(100))


@pytest.mark.usefixtures("default_sigint")
def test_the_task_that_closes_a_backend_is_ki_protected() -> None:
    # The backend's own aclose (not a store method, so not protected itself) runs in the task
    # that _uninterrupted starts for it: that task must be protected, or a Ctrl-C there is
    # raised in the middle of the close. Here the open fails, and the close gets a Ctrl-C.
    # (Mutant killed: _uninterrupted's task without enable_ki_protection.)
    steps: list[object] = []

    class FailsToOpen(MemoryBackend):
        async def open(self, namespace: str, max_records: int) -> int:
            raise StoreError("cannot open")

        async def aclose(self) -> None:
            steps.append(trio.lowlevel.currently_ki_protected())
            signal.raise_signal(signal.SIGINT)
            steps.append("closed")
            await super().aclose()

    async def main() -> None:
        async with open_store(FailsToOpen()):
            pass

    with pytest.raises(KeyboardInterrupt) as raised:
        trio.run(main)
    assert steps == [True, "closed"]
    assert isinstance(raised.value.__context__, StoreError)  # raised once the close was over
