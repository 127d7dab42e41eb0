"""What every PostgreSQL connection of mcstore shares: connecting, and running calls off the Trio thread.

psycopg is imported only inside functions, so that mcstore works without the ``postgres`` extra
until a PostgreSQL location is used; :func:`require_psycopg` then fails with a message that
names the extra.

:class:`PgSession` runs blocking psycopg work in its own persistent worker thread
(:class:`~mcstore.backends._thread.WorkerThread`, as the SQLite backend does), one call at a
time, and cancels it on request. Cancelling sets a flag that the work checks between statements
(:meth:`PgSession.raise_if_cancelled`), and sends ``Connection.cancel_safe()`` from a
short-lived helper thread, repeated every 0.1 s while the call runs: a cancel request that
reaches a session between two statements is ignored by the server. The statement stops with
``QueryCanceled``; the call's own outcome is still delivered, so a caller learns whether a
transaction committed. The helper thread has ended when the call returns: nothing is
abandoned. A connect cannot be cancelled; ``connect_timeout`` bounds it.

Secrets: a driver's error may echo the connection string, or parts of it. Every connection
string is parsed by :func:`parse_dsn` first (refusing one that does not parse, with its
password removed from the message), and :meth:`PgSession.run`, which every call of mcstore on
a PostgreSQL connection goes through, turns each psycopg error into a :class:`DriverError`
whose text is scrubbed of every password (:func:`~mcstore.backends.location.scrub_secrets`),
chained to the driver's error only when that one's traceback shows no password.
"""

from __future__ import annotations

import logging
import math
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio

from ..errors import StoreError
from ._thread import WorkerThread, acquire_promptly
from .base import DEFAULT_LOCK_TIMEOUT
from .location import InvalidLocation, classify_location, is_postgres_url, remember_secrets, scrub_secrets

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_LOCK_TIMEOUT", "LOCK_NOT_AVAILABLE", "PSYCOPG_MISSING", "DriverError",
           "Interrupted", "PgSession", "check_lock_timeout", "connect", "driver_error", "driver_text", "parse_dsn",
           "require_psycopg", "safe_cause"]

logger = logging.getLogger("mcstore")

T = TypeVar("T")

PSYCOPG_MISSING: Final = (
    "PostgreSQL support needs psycopg 3, which is not installed: "
    "install mcstore's 'postgres' extra (pip install 'mcstore[postgres]')"
)

DEFAULT_CONNECT_TIMEOUT: Final = 5
"""Seconds a connect may take (libpq's ``connect_timeout``; at least 2)."""

KEEPALIVE_IDLE: Final = 30
KEEPALIVE_INTERVAL: Final = 10
KEEPALIVE_COUNT: Final = 3
TCP_USER_TIMEOUT_MS: Final = 60_000

_CANCEL_REPEAT: Final = 0.1
"""Seconds between two cancel requests while a cancelled call still runs."""
_CANCEL_TIMEOUT: Final = 2.0
"""Seconds one cancel request may take (``cancel_safe(timeout=...)``)."""


def require_psycopg() -> None:
    """Raise :class:`~mcstore.StoreError` naming the ``postgres`` extra if psycopg is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise StoreError(PSYCOPG_MISSING) from exc


LOCK_NOT_AVAILABLE: Final = "55P03"
"""PostgreSQL's SQLSTATE for a lock wait that ran out of ``lock_timeout``."""


def check_lock_timeout(value: object) -> float:
    """Return ``value`` if it is a number of seconds > 0, finite; else raise naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"lock_timeout must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"lock_timeout must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def parse_dsn(dsn: str) -> dict[str, Any]:
    """libpq's parameters of ``dsn`` (a ``postgresql://`` URL or a ``key=value`` string).

    Raises :class:`~mcstore.backends.InvalidLocation` (a ``ValueError``) for a string that
    does not parse, naming it without its password: a URL as
    :func:`~mcstore.backends.classify_location` checks it, then as libpq reads it. Remembers
    its passwords for :func:`~mcstore.backends.location.scrub_secrets`.
    """
    from psycopg.conninfo import conninfo_to_dict

    remember_secrets(dsn)
    if is_postgres_url(dsn):
        classify_location(dsn)
        # libpq knows the scheme in lower case only; mcstore takes it in any case.
        scheme, sep, rest = dsn.partition("://")
        dsn = scheme.lower() + sep + rest
    try:
        return dict(conninfo_to_dict(dsn))
    except Exception as exc:  # psycopg's text may echo parts of the string: scrubbed, never chained
        raise InvalidLocation(dsn, f"not a valid PostgreSQL connection string: {driver_text(exc)}") from None


class DriverError(StoreError):
    """An error of psycopg or libpq, its text scrubbed of every password.

    ``sqlstate`` is the server's SQLSTATE code, when the server reported the error.
    """

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def driver_text(exc: BaseException) -> str:
    """The text of a driver's error on one line, scrubbed of every password."""
    return scrub_secrets(" ".join(str(exc).split())) or type(exc).__name__


def _shows_a_secret(exc: BaseException) -> bool:
    """Whether printing ``exc`` with its traceback and chain would show a password."""
    text = "".join(traceback.format_exception(exc))
    return scrub_secrets(text) != text


def driver_error(exc: BaseException) -> DriverError:
    """``exc`` (a psycopg error) as a :class:`DriverError`, to raise ``from`` what
    :func:`safe_cause` returns."""
    return DriverError(driver_text(exc), getattr(exc, "sqlstate", None))


def safe_cause(exc: BaseException) -> BaseException | None:
    """``exc``, to chain a new error to, or None if its traceback would show a password."""
    return None if _shows_a_secret(exc) else exc


def connect(dsn: str, connect_timeout: int, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Connection[Any]:
    """A new autocommit connection with mcstore's settings.

    Client side: ``connect_timeout``, TCP keepalives (idle 30 s, 3 probes 10 s apart),
    ``tcp_user_timeout`` 60 s and ``application_name=mcstore``, each unless the DSN sets it.
    Session side: the same keepalives for the server's end, ``synchronous_commit = on``
    (overriding a role or database default), so that COMMIT returns once the WAL is flushed,
    and ``lock_timeout`` (in seconds), so that no statement waits longer than that for a lock
    that another session holds.
    """
    import psycopg

    params = parse_dsn(dsn)
    for name, value in (
        ("connect_timeout", connect_timeout),
        ("keepalives", 1),
        ("keepalives_idle", KEEPALIVE_IDLE),
        ("keepalives_interval", KEEPALIVE_INTERVAL),
        ("keepalives_count", KEEPALIVE_COUNT),
        ("tcp_user_timeout", TCP_USER_TIMEOUT_MS),
        ("application_name", "mcstore"),
    ):
        params.setdefault(name, value)
    conn = psycopg.Connection.connect(autocommit=True, **params)
    try:
        conn.execute(
            "SELECT set_config('synchronous_commit', 'on', false), set_config('tcp_keepalives_idle', %s, false), "
            "set_config('tcp_keepalives_interval', %s, false), set_config('tcp_keepalives_count', %s, false), "
            "set_config('tcp_user_timeout', %s, false), set_config('lock_timeout', %s, false)",
            (str(KEEPALIVE_IDLE), str(KEEPALIVE_INTERVAL), str(KEEPALIVE_COUNT), str(TCP_USER_TIMEOUT_MS),
             f"{max(1, round(lock_timeout * 1000))}ms"),
        )
    except BaseException:
        conn.close()
        raise
    return conn


class Interrupted(Exception):
    """The call was cancelled between two statements (where a cancel request does not reach)."""


class PgSession:
    """One connection's worker: runs calls in its own :class:`~mcstore.backends._thread.WorkerThread`,
    one at a time, and cancels them.

    ``conn`` is the connection that a cancel request targets; the work sets it (it may
    reconnect). See the module docstring for how cancelling works. :meth:`aclose` ends the
    thread; call it last.
    """

    def __init__(self, name: str) -> None:
        self.conn: Connection[Any] | None = None
        self._worker = WorkerThread(name)
        self._serial = trio.Lock()
        self._cancel_requested = False
        # Guards _call_done and _canceller together, so that a canceller thread is either
        # joined by the call it serves or never started.
        self._canceller_lock = threading.Lock()
        self._call_done = True
        self._call_finished = threading.Event()
        self._canceller: threading.Thread | None = None

    @property
    def calls_in_flight(self) -> int:
        """Calls handed to the thread and not finished: 0 whenever no call is awaited."""
        return self._worker.calls_in_flight

    @property
    def cancel_requested(self) -> bool:
        """True once the call in progress was asked to stop."""
        return self._cancel_requested

    def raise_if_cancelled(self) -> None:
        """In the work, between statements: stop a call that was cancelled."""
        if self._cancel_requested:
            raise Interrupted("cancelled")

    @trio.lowlevel.enable_ki_protection  # no Ctrl-C between taking the lock and the try that releases it
    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the thread and return its outcome; cancel it on cancellation.

        :meth:`WorkerThread.run <mcstore.backends._thread.WorkerThread.run>`'s contract: the
        caller always gets ``fn``'s own outcome; if the task was cancelled and ``fn`` raised,
        the cancellation is raised instead. A psycopg error comes out as a :class:`DriverError`
        (scrubbed of passwords); any other error whose traceback would show a password, as a
        :class:`~mcstore.StoreError` with the scrubbed text and no chain.
        """
        # Promptly: WorkerThread.run is a schedule point on every path, so a free lock need
        # not cost a turn of the scheduler before the hand-off as well.
        await acquire_promptly(self._serial)
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._cancel_requested = False
            with self._canceller_lock:
                self._call_done = False
                self._call_finished.clear()
            try:
                return await self._worker.run(lambda: self._in_worker(fn), on_cancel=self.interrupt)
            except Interrupted:
                raise
            except Exception as exc:
                import psycopg

                # The one way out of a PostgreSQL call: no driver text leaves it unscrubbed.
                if isinstance(exc, psycopg.Error):
                    raise driver_error(exc) from safe_cause(exc)
                if _shows_a_secret(exc):
                    raise StoreError(driver_text(exc)) from None
                raise
        finally:
            self._serial.release()

    def _in_worker(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        finally:
            with self._canceller_lock:
                self._call_done = True
                self._call_finished.set()
                thread, self._canceller = self._canceller, None
            if thread is not None:
                thread.join()

    def interrupt(self) -> None:
        """From the Trio side: stop the call in progress, if any (see the module docstring)."""
        self._cancel_requested = True
        with self._canceller_lock:
            if self._canceller is None and not self._call_done:
                thread = threading.Thread(target=self._cancel_until_done, name="mcstore-pg-cancel", daemon=True)
                self._canceller = thread
                thread.start()

    def _cancel_until_done(self) -> None:
        while not self._call_finished.is_set():
            conn = self.conn
            if conn is not None and not conn.closed:
                try:
                    conn.cancel_safe(timeout=_CANCEL_TIMEOUT)
                except Exception as exc:  # the call's own outcome reports what matters
                    logger.debug("PostgreSQL cancel request failed: %s", exc)
            self._call_finished.wait(_CANCEL_REPEAT)

    async def aclose(self) -> None:
        """End the worker thread (after the call in progress, if any). Idempotent, shielded."""
        await self._worker.aclose()
