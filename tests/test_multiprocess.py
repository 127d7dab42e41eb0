"""Concurrency with a second process: one open store per namespace, across processes.

Each test runs on both real backends. On SQLite the namespace lock is an ``flock`` on a sidecar
file; on PostgreSQL a session-level advisory lock. Either holds between processes as well as
within one, and is dropped when its holder dies. Opening a namespace that another process holds
raises :class:`~mcstore.StoreLocked` at once (no waiting on SQLite's busy timeout), while
another namespace of the same storage can be opened and written meanwhile; once the holder is
killed, the namespace opens again within a second.
"""

from __future__ import annotations

import os
import sys
import time

import factories
import pytest
import trio
from factories import PROBE_RESULT
from shutdown_checks import LOCKED_STATUS, SCRIPTS_DIR, StorePlace, child_env, reopen_after_kill
from test_crash import Writer

from mcstore import StoreLocked, open_store

PROBE = os.path.join(SCRIPTS_DIR, "open_probe.py")
AT_ONCE = 1.0
"""Seconds within which a refused open must come back (well under SQLite's 5 s busy timeout),
and within which a killed holder's namespace must open again."""


async def run_probe(path: str, namespace: str) -> tuple[int, str]:
    done = await trio.run_process(
        [sys.executable, PROBE, path, namespace], capture_stdout=True, check=False, env=child_env()
    )
    return done.returncode, done.stdout.decode().strip()


@pytest.mark.slow
async def test_another_process_is_refused_the_namespace_this_one_holds(store_place: StorePlace) -> None:
    path = store_place.path
    mine = [factories.result(i) for i in range(1, 6)]
    with trio.fail_after(60):
        async with open_store(path, namespace="alpha", flush_interval=60.0) as store:
            for result in mine[:3]:
                store.add_result(result)
            await store.flush()
            status, output = await run_probe(path, "alpha")
            assert status == LOCKED_STATUS, output
            assert float(output.split()[1]) < AT_ONCE, output
            status, output = await run_probe(path, "beta")
            assert (status, output) == (0, "opened")
            # Still ours, and still writable, after the other process used the file.
            for result in mine[3:]:
                store.add_result(result)
            await store.flush()
        status, output = await run_probe(path, "alpha")  # released on close
        assert (status, output) == (0, "opened")
    assert store_place.results("alpha") == sorted([*mine, PROBE_RESULT], key=lambda r: r.key)
    assert store_place.results("beta") == [PROBE_RESULT]
    assert store_place.integrity() == "ok"


@pytest.mark.slow
async def test_this_process_is_refused_a_namespace_another_process_writes(store_place: StorePlace) -> None:
    path = store_place.path
    mine = [factories.result(i) for i in range(1, 21)]
    with trio.fail_after(60):
        writer = await Writer.start(path, 1, 0, namespace="alpha")
        try:
            await writer.wait_ready()
            started = time.monotonic()
            with pytest.raises(StoreLocked):
                async with open_store(path, namespace="alpha"):
                    pytest.fail("opened a namespace that another process holds")
            assert time.monotonic() - started < AT_ONCE
            # Another namespace of the same file, written while the writer writes "alpha".
            async with open_store(path, namespace="beta", flush_interval=1e-3) as store:
                for result in mine:
                    store.add_result(result)
                    await trio.sleep(0.005)
                await store.flush()
                assert await store.fetch_all() == mine
        finally:
            await writer.kill()
        # The dead writer's lock was released (by the kernel, or by the server when the session
        # ended): the namespace opens within a second, its data intact.
        killed = time.monotonic()
        async with reopen_after_kill(path, namespace="alpha", max_records=0) as store:
            reopened = time.monotonic() - killed
            ids = [result.id for result in await store.fetch_all()]
    assert reopened < AT_ONCE
    assert ids == list(range(1, max(ids, default=0) + 1))
    assert max(ids, default=0) >= writer.acknowledged > 0
    assert store_place.results("beta") == mine
    assert store_place.integrity() == "ok"
