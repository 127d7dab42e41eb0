"""High availability on PostgreSQL: what replication means for the results a flush acknowledges.

A flush's COMMIT returns once the WAL is flushed on the primary (``synchronous_commit = on``,
which the store sets) and, if ``synchronous_standby_names`` names standbys, once one of them has
flushed it too. Only then does an acknowledged result survive a failover to a standby. Three
things here watch that promise:

* :func:`replication_state` reads, at open, how the server replicates as the store's session
  sees it (:class:`ReplicationState`); its :attr:`~ReplicationState.warning` says when
  acknowledged results can be lost on failover (standbys, but ``synchronous_standby_names``
  empty; or a session that does not wait for them), or when every commit will wait (standbys
  named, none connected). The backend logs it at WARNING; ``mcstore stats`` shows it.
* :class:`CommitWarnings` notices a COMMIT that returned with a WARNING: the server's answer
  when a wait for synchronous replication is cancelled ("canceling wait for synchronous
  replication ... The transaction has already committed locally, but might not have been
  replicated to the standby"). Such a commit is not acknowledged: the call raises
  :class:`CommitNotConfirmed` and the store keeps the results pending (or reports them in
  ``unpersisted`` at close). They may be on the server already: the next flush, or a store
  opened later, stores each exactly once (``ON CONFLICT DO NOTHING`` and the relative count).
* :class:`SyncWaitWatch` watches the store's session from a second connection while a call
  runs, and logs an ERROR naming ``synchronous_standby_names`` when a commit has waited for
  synchronous replication longer than its ``alarm`` (typically: a promoted standby that still
  names standbys it does not have, where every commit waits forever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from ..errors import StoreError
from ._pgconn import connect, driver_text

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.errors import Diagnostic

__all__ = ["DEFAULT_SYNC_WAIT_ALARM", "CommitNotConfirmed", "CommitWarnings", "ReplicationState", "SyncWaitWatch",
           "replication_state"]

logger = logging.getLogger("mcstore")

DEFAULT_SYNC_WAIT_ALARM: Final = 5.0
"""Seconds a commit may wait for synchronous replication before :class:`SyncWaitWatch` logs an ERROR."""
SYNC_WAIT_POLL: Final = 1.0
"""Seconds between two looks at a call that has run longer than the alarm."""
SYNC_WAIT_REPEAT: Final = 60.0
"""While the same commit keeps waiting, the ERROR is logged again this often."""
WATCH_APPLICATION_NAME: Final = "mcstore-watch"
"""The ``application_name`` of the watch's connection (the store's own sessions are ``mcstore``)."""

# Every role sees pg_stat_replication's rows (their details, sync_state included, need
# pg_read_all_stats), so the count needs no privilege. A base backup's sender (state 'backup') is
# not a standby.
_REPLICATION: Final = (
    "SELECT count(*) FILTER (WHERE state IS DISTINCT FROM 'backup'), "
    "count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')), bool_and(sync_state IS NOT NULL), "
    "current_setting('synchronous_standby_names'), current_setting('synchronous_commit') "
    "FROM pg_stat_replication"
)
_WAITS_FOR_STANDBYS: Final = frozenset({"on", "remote_apply"})
"""``synchronous_commit`` values that make a COMMIT wait until a synchronous standby has flushed it."""

_LOOK: Final = (
    "SELECT wait_event, extract(epoch FROM clock_timestamp() - query_start)::float8, "
    "current_setting('synchronous_standby_names') FROM pg_stat_activity WHERE pid = %s"
)


@dataclass(frozen=True, slots=True)
class ReplicationState:
    """How a server replicates, as one session sees it (see :func:`replication_state`)."""

    standbys: int
    """Replication connections in ``pg_stat_replication`` (standbys, other receivers; not base backups)."""
    standby_names: str
    """The server's ``synchronous_standby_names`` (empty: no standby is waited for)."""
    synchronous_commit: str
    """The session's ``synchronous_commit``."""
    synchronous_standbys: int | None = None
    """Connected standbys that ``synchronous_standby_names`` names (``sync_state`` sync or quorum);
    ``None`` when the session may not see ``sync_state`` (it needs ``pg_read_all_stats``)."""

    @property
    def warning(self) -> str | None:
        """What an operator must know, or ``None`` when every acknowledged commit is replicated
        to a synchronous standby or there is no standby at all."""
        if not self.standby_names.strip():
            if not self.standbys:
                return None
            return (
                f"{self.standbys} standby connection(s) replicate asynchronously (synchronous_standby_names "
                "is empty): results acknowledged by flush() can be lost on failover to a standby; set "
                "synchronous_standby_names on the primary to keep them"
            )
        if self.synchronous_commit not in _WAITS_FOR_STANDBYS:
            return (
                f"the store's session runs with synchronous_commit={self.synchronous_commit}, which does not "
                f"wait for the synchronous standbys (synchronous_standby_names={self.standby_names!r}): "
                "results acknowledged by flush() can be lost on failover; synchronous_commit must be on "
                "or remote_apply"
            )
        if not self.standbys or self.synchronous_standbys == 0:
            return (
                f"synchronous_standby_names={self.standby_names!r} names standbys but none of them is "
                "connected: every commit waits until one is; attach a standby, or empty synchronous_standby_names"
            )
        return None

    def describe(self) -> str:
        """One line for ``mcstore stats``: the warning, or what keeps acknowledged results."""
        warning = self.warning
        if warning is not None:
            return f"WARNING: {warning}"
        if not self.standby_names.strip():
            return "no standby (synchronous_standby_names is empty)"
        named = "" if self.synchronous_standbys is None else f", {self.synchronous_standbys} synchronous"
        return (
            f"synchronous ({self.standbys} standby connection(s){named}; synchronous_standby_names="
            f"{self.standby_names!r}, synchronous_commit={self.synchronous_commit})"
        )


def replication_state(conn: Connection[Any]) -> ReplicationState:
    """Read how the server of ``conn`` replicates, with ``conn``'s own ``synchronous_commit``."""
    row = conn.execute(_REPLICATION).fetchone()
    assert row is not None
    standbys, synchronous, visible, names, commit = row
    return ReplicationState(int(standbys), str(names), str(commit), int(synchronous) if visible else None)


class CommitNotConfirmed(StoreError):
    """A COMMIT returned with a WARNING (a cancelled wait for synchronous replication): committed
    on this server, not confirmed replicated. The results are not acknowledged; storing them again
    deduplicates them."""


class CommitWarnings:
    """Collects the WARNINGs a connection receives, to check what its COMMIT said.

    Register :meth:`notice` with ``Connection.add_notice_handler``; call :meth:`clear` right
    before the COMMIT and :meth:`check` after it returned.
    """

    def __init__(self) -> None:
        self._warnings: list[Diagnostic] = []

    def notice(self, diagnostic: Diagnostic) -> None:
        """The notice handler (called in the thread that runs the connection)."""
        if diagnostic.severity_nonlocalized == "WARNING":
            self._warnings.append(diagnostic)

    def clear(self) -> None:
        self._warnings.clear()

    def check(self, where: str, what: str) -> None:
        """Raise :class:`CommitNotConfirmed` (logged at ERROR) if the COMMIT returned with a WARNING."""
        if not self._warnings:
            return
        said = "; ".join(
            " ".join(part for part in (w.message_primary, w.message_detail) if part) for w in self._warnings
        )
        self._warnings.clear()
        logger.error(
            "PostgreSQL %s on %s committed with a warning (%s): committed on this server, but not confirmed "
            "replicated to a synchronous standby; its results stay pending, and storing them again (the next "
            "flush, or a store opened later) deduplicates them",
            what, where, said,
        )
        raise CommitNotConfirmed(
            f"PostgreSQL {what} on {where} committed locally without confirmed replication ({said}); "
            "results kept pending"
        )


class SyncWaitWatch:
    """Watches one session from a second connection, while a call runs on it: logs an ERROR when
    its commit has waited for synchronous replication (``pg_stat_activity.wait_event =
    'SyncRep'``) for more than ``alarm`` seconds, and again every :data:`SYNC_WAIT_REPEAT` while
    it keeps waiting. It only reports: the call goes on waiting (the server releases it once a
    standby confirms, or ``synchronous_standby_names`` is emptied).

    Its own thread, started by :meth:`start` and ended by :meth:`aclose` (so it lives inside the
    backend's open-to-close span). Per call, :meth:`call_started` and :meth:`call_ended` only
    note the time under a lock (and wake the thread only if it waits for a call at all), so a
    call shorter than ``alarm`` costs nothing else: the thread wakes about once per ``alarm``
    while calls come and go, and not at all while none runs. The second
    connection (:data:`WATCH_APPLICATION_NAME`, the same role, so it may read the session's
    ``wait_event``) is made the first time a call outlasts ``alarm``, and kept until
    :meth:`aclose` or until it breaks. ``pid`` gives the watched session's server pid (``None``
    while it has no connection).

    :meth:`aclose` wakes the thread and waits until it has ended: at once, or after a look in
    progress (one read of ``pg_stat_activity``) or a connect in progress (bounded by
    ``connect_timeout``, like the backend's own reconnect). It never delays a call.
    """

    def __init__(
        self, dsn: str, where: str, connect_timeout: int, pid: Callable[[], int | None], *, alarm: float
    ) -> None:
        self._dsn = dsn
        self._where = where
        self._connect_timeout = connect_timeout
        self._pid = pid
        self.alarm: Final = alarm
        self._cond = threading.Condition()
        self._since: float | None = None  # when the call in flight began (time.monotonic()); None: idle
        self._what = ""
        self._serial = 0  # counts calls, to tell one long call from two shorter ones
        self._stopping = False
        self._idle = False  # the thread waits for a call to start (and only then needs a wake-up)
        self._thread: threading.Thread | None = None
        self._stopped = trio.Event()
        self._conn: Connection[Any] | None = None  # only touched by the thread
        self.alarms = 0
        """ERRORs logged so far (for tests and diagnostics)."""

    def start(self) -> None:
        """Start the thread (from Trio, which :meth:`aclose` is then awaited in)."""
        if self._thread is not None or self._stopping:
            return
        token = trio.lowlevel.current_trio_token()
        stopped = self._stopped

        def run() -> None:
            try:
                self._loop()
            finally:
                token.run_sync_soon(stopped.set)  # the run outlives the thread: aclose waits for it

        thread = threading.Thread(target=run, name="mcstore-pg-syncwatch", daemon=True)
        thread.start()
        self._thread = thread

    def call_started(self, what: str) -> None:
        """A call (``what``: "flush", "open", ...) begins on the watched session."""
        with self._cond:
            self._serial += 1
            self._since = time.monotonic()
            self._what = what
            if self._idle:  # else it wakes at its own time, and sees this call then
                self._cond.notify()

    def call_ended(self) -> None:
        """The call has ended (the thread notices at its next wake-up)."""
        with self._cond:
            self._since = None

    async def aclose(self) -> None:
        """End the thread and close its connection; shielded. Harmless if called twice."""
        thread, self._thread = self._thread, None
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if thread is None:
            return
        with trio.CancelScope(shield=True):
            await self._stopped.wait()
        thread.join()  # it has set the event as its last step: immediate

    # -- in the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        reported_serial = 0
        reported_at = 0.0
        try:
            with self._cond:
                while not self._stopping:
                    since, serial = self._since, self._serial
                    if since is None:
                        self._idle = True
                        self._cond.wait()
                        self._idle = False
                        continue
                    due = since + self.alarm - time.monotonic()
                    if due > 0:
                        self._cond.wait(due)
                        continue
                    self._cond.release()
                    try:
                        seen = self._look()
                    finally:
                        self._cond.acquire()
                    now = time.monotonic()
                    if (
                        seen is not None and seen[0] == "SyncRep" and seen[1] >= self.alarm
                        and self._serial == serial and self._since is not None
                        and (reported_serial != serial or now - reported_at >= SYNC_WAIT_REPEAT)
                    ):
                        reported_serial, reported_at = serial, now
                        self.alarms += 1
                        what = self._what
                        self._cond.release()  # never log with the lock held: call_started takes it
                        try:
                            self._report(what, seen[1], seen[2])
                        finally:
                            self._cond.acquire()
                    if self._serial == serial and not self._stopping:
                        pause = SYNC_WAIT_POLL
                        if seen is not None and seen[0] == "SyncRep" and seen[1] < self.alarm:
                            pause = min(pause, self.alarm - seen[1])  # look again when it is due
                        self._cond.wait(pause)
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def _look(self) -> tuple[str | None, float, str] | None:
        """The watched session's ``wait_event``, seconds in its statement, and the server's
        ``synchronous_standby_names``; ``None`` if it has no session or the look failed."""
        import psycopg
        from psycopg.conninfo import make_conninfo

        pid = self._pid()
        if pid is None:  # (so the store has connected with this DSN: it parses)
            return None
        try:
            conn = self._conn
            if conn is None or conn.closed:
                self._conn = None
                dsn = make_conninfo(self._dsn, application_name=WATCH_APPLICATION_NAME)
                conn = self._conn = connect(dsn, self._connect_timeout)
            row = conn.execute(_LOOK, (pid,)).fetchone()
        except psycopg.Error as exc:  # the next look reconnects
            logger.debug("PostgreSQL watch of the store's session on %s failed: %s", self._where, driver_text(exc))
            broken, self._conn = self._conn, None
            if broken is not None:
                broken.close()
            return None
        if row is None:
            return None
        return (None if row[0] is None else str(row[0])), float(row[1] or 0.0), str(row[2])

    def _report(self, what: str, seconds: float, names: str) -> None:
        logger.error(
            "Mission control %s on %s has waited %.0f s for synchronous replication (pg_stat_activity "
            "wait_event SyncRep): the server holds every commit until a standby named by "
            "synchronous_standby_names=%r confirms it, and none does. Attach a standby, or, if this server "
            "was promoted and is meant to run alone, empty the setting (ALTER SYSTEM SET "
            "synchronous_standby_names = ''; SELECT pg_reload_conf()). The results stay pending meanwhile",
            what, self._where, seconds, names,
        )
