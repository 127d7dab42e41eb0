"""A throwaway PostgreSQL server for tests and benchmarks, or an existing one from the environment.

The one place that starts a server for mcstore's own tests and benchmarks::

    with pg_server() as server:          # raises ServerUnavailable, with a reason, if it cannot
        dsn = server.dsn                 # postgresql://mcstore@127.0.0.1:PORT/mcstore_test
        server.restart()                 # pg_ctl restart -m fast (only for a server started here)

If ``MCSTORE_PG_DSN`` is set, :func:`pg_server` uses that server instead, and starts nothing
(:attr:`PostgresServer.can_restart` is then false). Otherwise it runs ``initdb`` and ``pg_ctl``
from Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``, off the PATH) in a
new directory under ``/tmp`` (socket paths are limited to about 107 bytes), listening on
127.0.0.1 only, on a free port, with authentication ``trust``. As root it runs them as the
package's ``postgres`` user through ``runuser``, because the server refuses to run as root.
Leaving the block stops the server and deletes its directory. The server keeps ``fsync`` on:
durability tests depend on it.

This module needs no driver; :func:`scratch_schema` (a fresh schema per test, through the DSN's
``search_path``) needs psycopg, the ``postgres`` extra.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import quote

__all__ = ["DSN_ENV", "PostgresServer", "ServerUnavailable", "pg_server", "scratch_schema", "with_search_path"]

DSN_ENV: Final = "MCSTORE_PG_DSN"
"""Environment variable: the DSN of an existing server to use instead of starting one."""

_USER: Final = "mcstore"
_DATABASE: Final = "mcstore_test"
_START_TIMEOUT: Final = 60


class ServerUnavailable(Exception):
    """No PostgreSQL server could be found or started; the message says why."""


class PostgresServer:
    """A running server: its DSN, and (for a server started here) restart and stop."""

    def __init__(self, dsn: str, *, bindir: str | None = None, directory: str | None = None) -> None:
        self.dsn: Final = dsn
        """``postgresql://`` URL of the test database, reached over TCP on loopback."""
        self._bindir = bindir
        self._directory = directory

    @property
    def can_restart(self) -> bool:
        """True for a server started by :func:`pg_server`, false for ``MCSTORE_PG_DSN``."""
        return self._directory is not None

    @property
    def log_path(self) -> str | None:
        """The server's log file, for a server started here."""
        return None if self._directory is None else os.path.join(self._directory, "server.log")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is terminated; returns once it accepts again."""
        if self._directory is None or self._bindir is None:
            raise ServerUnavailable(f"cannot restart a server that was not started here ({DSN_ENV} is set)")
        _pg_ctl(self._bindir, self._directory, "restart", "-m", "fast")

    def stop(self) -> None:
        """Stop a server started here and delete its directory. Harmless if called twice."""
        directory, self._directory = self._directory, None
        if directory is None or self._bindir is None:
            return
        try:
            _pg_ctl(self._bindir, directory, "stop", "-m", "immediate")
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def find_bindir() -> str | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, or ``initdb`` on the PATH."""
    candidates = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(d, "initdb"))]
    if candidates:
        return max(candidates, key=lambda d: [int(p) if p.isdigit() else 0 for p in d.split("/")[-2].split(".")])
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_START_TIMEOUT, check=False)
    if done.returncode != 0:
        raise ServerUnavailable(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}")


def _pg_ctl(bindir: str, directory: str, *args: str) -> None:
    data = os.path.join(directory, "data")
    log = os.path.join(directory, "server.log")
    _run(_as_server_user([os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60", *args]),
         f"pg_ctl {args[0]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_bindir() -> str:
    """The server binaries' directory; raise :class:`ServerUnavailable` if they (or ``runuser``, as
    root) are missing."""
    bindir = find_bindir()
    if bindir is None:
        raise ServerUnavailable("PostgreSQL server binaries not found (install Debian's postgresql package)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise ServerUnavailable("running as root, and runuser (to run the server as 'postgres') is missing")
    return bindir


def _new_directory(prefix: str) -> str:
    """A new directory under ``/tmp`` (short: socket paths max ~107 bytes), the server user's."""
    directory = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


def _initdb(bindir: str, directory: str) -> None:
    _run(_as_server_user([os.path.join(bindir, "initdb"), "-D", os.path.join(directory, "data"), "-U", _USER,
                          "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-N"]), "initdb")


def _start(bindir: str, directory: str, port: int) -> None:
    """``pg_ctl start`` on loopback ``port``, the socket in ``directory``."""
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c max_connections=100"
    _pg_ctl(bindir, directory, "start", "-o", options)


def _createdb(bindir: str, directory: str, port: int) -> None:
    _run([os.path.join(bindir, "createdb"), "-h", directory, "-p", str(port), "-U", _USER, _DATABASE], "createdb")


def _dsn(port: int) -> str:
    """The test database on the loopback ``port``."""
    return f"postgresql://{_USER}@127.0.0.1:{port}/{_DATABASE}"


def start_server() -> PostgresServer:
    """Start a throwaway server (see the module docstring); raise :class:`ServerUnavailable`."""
    bindir = _server_bindir()
    directory = _new_directory("mcpg.")
    try:
        port = _free_port()
        _initdb(bindir, directory)
        _start(bindir, directory, port)
        server = PostgresServer(_dsn(port), bindir=bindir, directory=directory)
        try:
            _createdb(bindir, directory, port)
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


@contextmanager
def pg_server() -> Iterator[PostgresServer]:
    """The server of ``MCSTORE_PG_DSN``, or a throwaway one stopped at the end of the block."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        yield PostgresServer(dsn)
        return
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path`` set to ``schema``: the store's tables are created there."""
    option = quote(f"-csearch_path={schema}", safe="")
    return f"{dsn}{'&' if '?' in dsn else '?'}options={option}"


@contextmanager
def scratch_schema(dsn: str, prefix: str = "t") -> Iterator[str]:
    """A fresh, empty schema on the server of ``dsn``; yields a DSN that uses it; drops it after."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield with_search_path(dsn, name)
    finally:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
