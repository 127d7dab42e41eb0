"""The exception hierarchy of mcstore.

Every failure that the store itself reports is a :class:`StoreError`, so a caller can
catch them all in one place, and each subclass names what the caller should do next.
Programming errors in arguments (a wrong type, an out-of-range value) are the usual
:class:`TypeError` and :class:`ValueError`, with the offending field and value in the message.

The one error about a location, :class:`~mcstore.LocationError`, is defined with the locations
(:mod:`mcstore.backends.location`), which show it without its password: this module, below
every other, imports nothing of mcstore.
"""

from __future__ import annotations

__all__ = [
    "DecodeError",
    "FlushError",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "StoreFenced",
    "StoreLocked",
]


class StoreError(Exception):
    """Base class of every error that mcstore raises about the store itself."""


class StoreClosed(StoreError):
    """The store is closing or closed, so it accepts no more work.

    Raised by :meth:`~mcstore.MissionControlStore.add_result`, :meth:`~mcstore.MissionControlStore.put`
    and the other methods once closing has begun. Like trio's ``ClosedResourceError``: the
    caller used the store after (or while) leaving its ``async with`` block.
    """


class StoreBusy(StoreError):
    """``max_pending`` results are already waiting to be flushed.

    Raised by :meth:`~mcstore.MissionControlStore.add_result`, which never blocks; use
    :meth:`~mcstore.MissionControlStore.put` to wait for room instead. The rejected result was
    not accepted, so nothing is lost: the caller still holds it.
    """


class StoreLocked(StoreError):
    """The namespace is already open in another store, in this process or another one."""


class StoreFenced(StoreError):
    """This store may no longer write its namespace: it was fenced off.

    Raised by a backend's write (a flush, a clear, a repair) when the namespace's fencing token
    is no longer the one this store wrote when it opened (another store has taken the namespace
    over, for instance after the lock file was deleted), or when the SQLite database file the
    store opened was deleted or replaced. Nothing was written. It is permanent: the store keeps
    failing its flushes (each logged at ERROR), keeps their results pending, and hands them back
    in :attr:`~mcstore.MissionControlStore.unpersisted` at close. :meth:`~mcstore.MissionControlStore.flush`
    raises :class:`FlushError` with this error as its ``__cause__``.
    """


class DecodeError(StoreError):
    """Bytes that are not a valid lnd mission control key or value.

    The codec raises this, and only this, for every malformed input.
    """


class FlushError(StoreError):
    """Accepted results could not be made durable.

    Raised by :meth:`~mcstore.MissionControlStore.flush` when the flush it ran failed (the
    results stay pending and are retried), and when leaving the store's ``async with`` block
    normally while some accepted results could not be persisted before ``shutdown_timeout``;
    those results are then in :attr:`~mcstore.MissionControlStore.unpersisted`.
    """
