"""The files mcstore makes: private modes, lock files that follow no symlink and never collide,
and an export that never writes over a file the store uses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner
from factories import result
from hypothesis import given
from hypothesis import strategies as st

from mcstore import StoreError, open_store
from mcstore.backends._lock import legacy_lock_path, lock_path_for
from mcstore.cli import cli


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- modes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o022], ids=["umask 000", "umask 022"])
async def test_the_database_its_companions_and_lock_files_are_private_whatever_the_umask(
    tmp_path: Path, mask: int
) -> None:
    path = tmp_path / "mc.sqlite"
    with umask(mask):
        async with open_store(path, max_records=0) as store, open_store(path, namespace="a/b"):
            store.add_result(result(1))
            await store.flush()
            made = sorted(os.listdir(tmp_path))
            modes = {name: mode(tmp_path / name) for name in made}
    assert made == sorted(
        ["mc.sqlite", "mc.sqlite-wal", "mc.sqlite-shm"]
        + [Path(lock_path_for(str(path), ns)).name for ns in ("default", "a/b")]
    )
    assert modes == dict.fromkeys(made, 0o600)


def test_export_output_is_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"

    async def write() -> None:
        async with open_store(path) as store:
            store.add_result(result(1))

    trio.run(write)
    output = tmp_path / "out.jsonl"
    with umask(0):
        done = CliRunner().invoke(cli, ["export", str(path), "-o", str(output)], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        assert mode(output) == 0o600
        output.write_text("old\n")
        output.chmod(0o644)
        done = CliRunner().invoke(cli, ["export", str(path), "-o", str(output), "--force"], catch_exceptions=False)
        assert done.exit_code == 0, done.output
    assert mode(output) == 0o600 and output.read_text().count("\n") == 1


# -- symlinks -----------------------------------------------------------------------------------


async def test_a_symlink_at_the_lock_path_is_refused_and_its_target_never_created(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    lock = lock_path_for(str(path), "default")
    victim = tmp_path / "victim"
    os.symlink(victim, lock)
    with pytest.raises(StoreError, match="symbolic link") as refused:
        async with open_store(path):
            pytest.fail("opened through a symlinked lock file")
    assert lock in str(refused.value)
    assert not victim.exists() and stat.S_ISLNK(os.lstat(lock).st_mode)
    victim.write_text("")  # a link to an existing file: refused too, the file untouched
    victim.chmod(0o644)
    with pytest.raises(StoreError, match="symbolic link"):
        async with open_store(path):
            pass
    assert victim.read_text() == "" and mode(victim) == 0o644


# -- lock names ---------------------------------------------------------------------------------


async def test_lock_names_collide_no_more(tmp_path: Path) -> None:
    # Under the old naming, the hashed name of "a/b" was the literal namespace
    # "hc14cddc033f64b9dea80ea67", and x.sqlite's "a.b" was x.sqlite.a's "b".
    x = tmp_path / "x.sqlite"
    assert legacy_lock_path(str(x), "a/b") == legacy_lock_path(str(x), "hc14cddc033f64b9dea80ea67")
    assert legacy_lock_path(str(x), "a.b") == legacy_lock_path(f"{x}.a", "b")
    async with open_store(x, namespace="a/b"), open_store(x, namespace="hc14cddc033f64b9dea80ea67"):
        pass
    async with open_store(x, namespace="a.b"), open_store(f"{x}.a", namespace="b"):
        pass
    # Nor does the hashed form of a namespace equal the name of a literal one (its own hash, in hex).
    async with open_store(x, namespace="a/b"), open_store(x, namespace=hashlib.sha256(b"a/b").hexdigest()):
        pass
    assert lock_path_for(str(x), "default") == f"{x}@default.lock"  # a plain namespace stays readable


@given(
    st.lists(
        st.tuples(st.text("ab.@~-_/", min_size=1, max_size=6), st.text("ab.@~-_/\u00e9", min_size=1, max_size=6)),
        min_size=2,
        max_size=8,
        unique=True,
    )
)
def test_distinct_databases_and_namespaces_get_distinct_lock_files(pairs: list[tuple[str, str]]) -> None:
    # "/" in the database name makes subdirectories: realpath keeps them distinct as paths.
    root = "/nonexistent-mcstore-dir"
    paths = {lock_path_for(f"{root}/{db}", namespace) for db, namespace in pairs}
    assert len({(os.path.realpath(f"{root}/{db}"), ns) for db, ns in pairs}) == len(paths)


# -- export never writes over a file the store uses ------------------------------------------------


def files(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Each file's inode and digest (none for the -shm, which every reader writes its marks into)."""
    return {
        p.name: (p.stat().st_ino, b"" if p.name.endswith("-shm") else hashlib.sha256(p.read_bytes()).digest())
        for p in directory.iterdir()
    }


@pytest.mark.parametrize(
    "target",
    [
        "mc.sqlite@default.lock",
        "mc.sqlite@other.lock",
        "mc.sqlite.default.lock",  # the name an older mcstore locks
        "mc.sqlite-wal",
        "mc.sqlite-shm",
        "mc.sqlite-journal",
    ],
)
def test_export_refuses_to_write_over_a_file_the_store_uses_even_with_force(tmp_path: Path, target: str) -> None:
    path = tmp_path / "mc.sqlite"

    async def hold_open() -> None:
        async with open_store(path) as store, open_store(path, namespace="other"):
            store.add_result(result(1))
            await store.flush()
            output = tmp_path / target
            if not output.exists():
                output.write_text("")
            before = files(tmp_path)
            inode = output.stat().st_ino
            done = await trio.to_thread.run_sync(
                lambda: CliRunner().invoke(cli, ["export", str(path), "-o", str(output), "--force"])
            )
            assert done.exit_code == 1, done.output
            assert str(output) in done.stderr and "refusing" in done.stderr
            assert output.stat().st_ino == inode
            assert files(tmp_path) == before

    trio.run(hold_open)
