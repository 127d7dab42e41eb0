"""A throwaway PostgreSQL primary with a synchronous standby, and failovers, for tests and benchmarks.

The sibling of :mod:`mcstore.testing.pgserver` (whose binaries, ``runuser`` rule and port helper it
uses) for high-availability tests::

    with replicated_pair() as pair:      # raises ServerUnavailable, with a reason, if it cannot
        dsn = pair.dsn                   # postgresql://mcstore@127.0.0.1:P1,127.0.0.1:P2/mcstore_test
                                         #   ?target_session_attrs=read-write&connect_timeout=2
        times = pair.fail_over()         # kill the primary (immediate), promote the standby
        pair.add_standby()               # a new synchronous standby, from the new primary

Each server is Debian's ``initdb``/``pg_ctl`` in its own new directory under ``/tmp``, on its
own free loopback port, run as the ``postgres`` user through ``runuser`` when run as root
(see :mod:`mcstore.testing.pgserver`). The standby is a ``pg_basebackup -R -X stream`` of the primary,
streaming from it; the primary names it in ``synchronous_standby_names = '*'``, so a commit
returns only once the standby has flushed it (``synchronous_commit = on``): an acknowledged
commit survives the primary's death.

:meth:`ReplicatedPair.fail_over` stops the primary with ``pg_ctl -m immediate stop`` (a crash:
no shutdown checkpoint, every session cut) and promotes the standby. By default it then empties
``synchronous_standby_names`` on the new primary, as an HA tool does when no synchronous standby
is left: commits are then acknowledged without a standby (asynchronous) until
:meth:`~ReplicatedPair.add_standby`. With ``release_sync=False`` the new primary keeps naming
standbys that do not exist, and every commit waits (the misconfiguration that
``PostgresBackend``'s synchronous-replication watcher reports).

:meth:`ReplicatedPair.add_standby` builds a standby of the current primary on the dead server's
port (so the multi-host URL never changes): it first names it in ``synchronous_standby_names``
(and waits until new sessions see it), then takes the base backup. Every commit acknowledged
before the setting took effect therefore precedes the backup and is in it, and every later one
waits for the new standby: no acknowledged commit is ever missing from the standby, whenever the
next failover comes. (Commits wait, meanwhile, until the standby streams: a second or so.)

The base backup is not fsynced (``--no-sync``): these servers are crashed (``-m immediate``),
never the machine, and a process crash loses nothing that the OS has been handed.

:class:`FullSpeedWriter` is the store's side: a task that adds results and flushes as fast as
the store goes, through every failover, and records what each returned ``flush()`` acknowledged.

Leaving :func:`replicated_pair` stops every server and deletes its directory. The failover
tests need servers started here: ``MCSTORE_PG_DSN`` does not apply.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from ..errors import FlushError
from .pgserver import (
    _DATABASE,
    _USER,
    ServerUnavailable,
    _as_server_user,
    _createdb,
    _dsn,
    _free_port,
    _initdb,
    _new_directory,
    _pg_ctl,
    _run,
    _server_bindir,
    _start,
)

if TYPE_CHECKING:
    from psycopg import Connection

    from ..model import PaymentResult
    from ..store import MissionControlStore

__all__ = ["FailoverTimes", "FullSpeedWriter", "ReplicatedPair", "ServerNode", "replicated_pair"]

CONNECT_TIMEOUT: Final = 2
"""libpq's ``connect_timeout`` in the pair's URL (its minimum): a host that does not answer is
given up after 2 s. Loopback hosts answer (or refuse) at once."""
_WAIT_SECONDS: Final = 60.0
"""How long a wait on a server's state (promotion, streaming, a setting) may take before it fails."""
_POLL: Final = 0.005


def _connect(dsn: str) -> Connection[tuple[Any, ...]]:
    import psycopg

    return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)


def _poll(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` every 5 ms until it is true; raise ServerUnavailable after 60 s."""
    deadline = time.monotonic() + _WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"timed out after {_WAIT_SECONDS:.0f} s waiting for {what}")
        time.sleep(_POLL)


class ServerNode:
    """One server of the pair: its directory (``data/``, ``server.log``, the socket) and port."""

    def __init__(self, bindir: str, directory: str, port: int) -> None:
        self.bindir: Final = bindir
        self.directory: Final = directory
        self.port: Final = port

    @property
    def dsn(self) -> str:
        """This server alone: ``postgresql://mcstore@127.0.0.1:PORT/mcstore_test``."""
        return _dsn(self.port)

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "server.log")

    def start(self) -> None:
        """``pg_ctl start``; returns once the server accepts connections."""
        _start(self.bindir, self.directory, self.port)

    def kill(self) -> None:
        """``pg_ctl -m immediate stop``: a crash of the server (no checkpoint; sessions cut)."""
        _pg_ctl(self.bindir, self.directory, "stop", "-m", "immediate")

    def set_standby_names(self, value: str) -> None:
        """``ALTER SYSTEM SET synchronous_standby_names``, reloaded; returns once new sessions see it."""
        with _connect(self.dsn) as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{value}'")
            conn.execute("SELECT pg_reload_conf()")

        def seen() -> bool:
            with _connect(self.dsn) as conn:
                return conn.execute("SHOW synchronous_standby_names").fetchone() == (value,)

        _poll(seen, f"synchronous_standby_names = {value!r} on port {self.port}")

    def remove(self) -> None:
        """Stop the server if it runs (immediate), delete its directory. Harmless if called twice."""
        if not os.path.isdir(self.directory):
            return
        try:
            if os.path.exists(os.path.join(self.directory, "data", "postmaster.pid")):
                self.kill()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class FailoverTimes:
    """What one :meth:`ReplicatedPair.fail_over` took, in ``time.monotonic()`` seconds."""

    killed_at: float
    """When the kill began (``pg_ctl -m immediate stop`` was started)."""
    promote_at: float
    """When the promotion was asked for (``pg_promote(wait => false)``), after the kill returned."""
    promoted_at: float
    """When the standby first answered ``pg_is_in_recovery() = false`` (polled every 5 ms)."""
    released_at: float | None
    """When new sessions saw ``synchronous_standby_names`` emptied (``None``: not released)."""

    @property
    def promotion_seconds(self) -> float:
        """The server's own promotion time: from the request to the first read-write answer."""
        return self.promoted_at - self.promote_at


class ReplicatedPair:
    """A primary and its synchronous standby (or none, right after a failover); see the module.

    Not thread-safe: one caller at a time (a test may run it in a thread beside its Trio code).
    """

    def __init__(self, bindir: str, primary: ServerNode, standby: ServerNode | None, spare_port: int | None) -> None:
        self._bindir = bindir
        self.primary: ServerNode = primary
        """The read-write server."""
        self.standby: ServerNode | None = standby
        """The synchronous standby, or ``None`` after :meth:`fail_over` until :meth:`add_standby`."""
        self._spare_port = spare_port
        self._ports: Final = (primary.port, standby.port if standby else spare_port)
        self.failovers = 0

    @property
    def dsn(self) -> str:
        """The multi-host URL of the pair, in a fixed host order, for any failover: libpq tries
        each host in turn and keeps the one that accepts writes."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self._ports)
        return (f"postgresql://{_USER}@{hosts}/{_DATABASE}"
                f"?target_session_attrs=read-write&connect_timeout={CONNECT_TIMEOUT}")

    def standby_state(self) -> str | None:
        """The standby's ``sync_state`` in the primary's ``pg_stat_replication`` (``None``: none streams)."""
        with _connect(self.primary.dsn) as conn:
            row = conn.execute(
                "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming' ORDER BY sync_state DESC"
            ).fetchone()
        return None if row is None else str(row[0])

    def fail_over(self, *, release_sync: bool = True) -> FailoverTimes:
        """Kill the primary (``pg_ctl -m immediate stop``), promote the standby; return the times.

        Returns once the new primary accepts writes; with ``release_sync`` (the default) its
        ``synchronous_standby_names`` is then emptied (see the module docstring). The dead
        server's directory is deleted; its port is reused by :meth:`add_standby`.
        """
        standby = self.standby
        if standby is None:
            raise ServerUnavailable("no standby to fail over to: add_standby() first")
        dead = self.primary
        killed_at = time.monotonic()
        dead.kill()
        with _connect(standby.dsn) as conn:
            promote_at = time.monotonic()
            conn.execute("SELECT pg_promote(wait => false)")
            _poll(lambda: conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,), "the promotion")
            promoted_at = time.monotonic()
        self.primary, self.standby = standby, None
        self._spare_port = dead.port
        self.failovers += 1
        released_at = None
        if release_sync:
            standby.set_standby_names("")
            released_at = time.monotonic()
        dead.remove()
        return FailoverTimes(killed_at, promote_at, promoted_at, released_at)

    def add_standby(self) -> ServerNode:
        """Build a synchronous standby of the primary on the spare port; return once it streams
        as the synchronous standby (see the module docstring)."""
        if self.standby is not None or self._spare_port is None:
            raise ServerUnavailable("the pair has a standby already")
        self.primary.set_standby_names("*")
        node = ServerNode(self._bindir, _new_directory("mcha."), self._spare_port)
        try:
            conninfo = f"host=127.0.0.1 port={self.primary.port} user={_USER} application_name=standby"
            data = os.path.join(node.directory, "data")
            _run(_as_server_user([os.path.join(self._bindir, "pg_basebackup"), "-D", data, "-R", "-X", "stream",
                                  "-c", "fast", "--no-sync", "-d", conninfo]), "pg_basebackup")
            node.start()
            self.standby = node
            self._spare_port = None
            _poll(lambda: self.standby_state() == "sync", "the new standby to stream as the synchronous one")
        except BaseException:
            self.standby = None
            self._spare_port = node.port
            node.remove()
            raise
        return node

    def ensure_healthy(self) -> None:
        """Add a standby if there is none, and name it synchronous: the state a test starts from."""
        if self.standby is None:
            self.add_standby()
        elif self.standby_state() != "sync":
            self.primary.set_standby_names("*")
            _poll(lambda: self.standby_state() == "sync", "the standby to become synchronous")

    def stop(self) -> None:
        """Stop both servers and delete their directories. Harmless if called twice."""
        for node in (self.standby, self.primary):
            if node is not None:
                node.remove()


def start_pair() -> ReplicatedPair:
    """Start a primary and a synchronous standby (see the module); raise :class:`ServerUnavailable`."""
    bindir = _server_bindir()
    primary = ServerNode(bindir, _new_directory("mcha."), _free_port())
    pair = ReplicatedPair(bindir, primary, None, _free_port())
    try:
        _initdb(bindir, primary.directory)
        primary.start()
        _createdb(bindir, primary.directory, primary.port)
        pair.add_standby()
    except BaseException:
        pair.stop()
        raise
    return pair


@contextmanager
def replicated_pair() -> Iterator[ReplicatedPair]:
    """A primary and a synchronous standby, stopped and deleted at the end of the block."""
    pair = start_pair()
    try:
        yield pair
    finally:
        pair.stop()


class FullSpeedWriter:
    """Writes to ``store`` as fast as it goes: adds 1 to 25 results (``make(id)``, consecutive
    ids from 1), calls ``flush()``, and again, until :attr:`stopping` is set. A ``flush()`` that
    raises :class:`~mcstore.FlushError` (the server is gone, or not writable yet) is tried again
    after ``retry_pause`` seconds, with whatever was added meanwhile.

    ``acknowledged`` is the highest id whose ``flush()`` returned: flushes commit in acceptance
    order, so every smaller id was acknowledged too. ``ack_times`` holds when each returned
    (``time.monotonic()``). Run :meth:`run` in a task of the caller's nursery.
    """

    def __init__(
        self,
        store: MissionControlStore,
        make: Callable[[int], PaymentResult],
        rng: random.Random,
        *,
        retry_pause: float = 0.005,
    ) -> None:
        self.store = store
        self._make = make
        self._rng = rng
        self._retry_pause = retry_pause
        self.acknowledged = 0
        self.failures = 0
        """Flushes that raised FlushError (and were tried again)."""
        self.ack_times: list[float] = []
        self.next_id = 1
        self.stopping = False
        self._progress = trio.Event()

    @property
    def flushes(self) -> int:
        """Flushes that returned."""
        return len(self.ack_times)

    async def run(self) -> None:
        """Write until :attr:`stopping` is set (checked after each flush)."""
        while not self.stopping:
            for _ in range(self._rng.randint(1, 25)):
                self.store.add_result(self._make(self.next_id))
                self.next_id += 1
            try:
                await self.store.flush()
            except FlushError:
                self.failures += 1
                await trio.sleep(self._retry_pause)
                continue
            self.acknowledged = self.next_id - 1
            self.ack_times.append(time.monotonic())
            self._progress.set()
            self._progress = trio.Event()

    async def wait_flushes(self, count: int) -> None:
        """Return once ``count`` more flushes have returned."""
        target = self.flushes + count
        while self.flushes < target:
            await self._progress.wait()

    async def first_ack_after(self, moment: float) -> float:
        """When the first flush that returned after ``moment`` (``time.monotonic()``) did,
        waiting for it if need be."""
        while not self.ack_times or self.ack_times[-1] <= moment:
            await self._progress.wait()
        return next(t for t in self.ack_times if t > moment)
