"""What the SQLite and PostgreSQL snapshots share: keyset paging over one namespace, and the
set of snapshots a backend or reader has open.

A snapshot reads its namespace in key order, one page at a time, with ``WHERE key > last ORDER
BY key LIMIT n`` on the primary key, inside one read transaction that fixes its view. So it
holds one page at a time whatever the namespace's size, and never reads a row twice or skips
one. :class:`KeysetSnapshot` is that logic, once; each backend's snapshot class supplies the
two reads in its own SQL (:meth:`KeysetSnapshot._page_sync`, :meth:`KeysetSnapshot._count_sync`)
and its read connection (``_call``, ``_closing``, ``_closed_message``). :class:`OpenSnapshots`
is the bookkeeping of the backends and readers that open them: every snapshot they opened and
that is not closed yet, so that closing them closes it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import trio

from ..errors import StoreClosed
from .base import Row, check_batch_size

__all__ = ["KeysetSnapshot", "OpenSnapshots"]

T = TypeVar("T")


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


S = TypeVar("S", bound=_Startable)


class KeysetSnapshot:
    """Mixin: :meth:`next_batch` and :meth:`count` of a :class:`~mcstore.backends.Snapshot` by
    keyset pagination, and the ``on_release`` callback.

    Put it first in the bases, before the read connection class that provides ``_call(fn)``
    (run ``fn`` on the connection's thread; raise :class:`~mcstore.StoreClosed` once closing),
    ``_closing`` and ``_closed_message()``; call :meth:`_init_keyset` from ``__init__``.
    Invariant: ``_after`` is the greatest key returned so far (None before the first page),
    and once a page comes back shorter than asked (``_exhausted``), no more reads are made.
    """

    _closing: bool

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[[], T]) -> T: ...

        def _closed_message(self) -> str: ...

    def _init_keyset(self, on_release: Callable[[Any], None] | None) -> None:
        self._on_release = on_release
        self._after: bytes | None = None
        self._exhausted = False

    def _page_sync(self, after: bytes | None, max_rows: int) -> list[Row]:
        """The first ``max_rows`` rows with a key greater than ``after`` (all keys if None), in
        key order, as ``(bytes, bytes)``. Runs on the connection's thread."""
        raise NotImplementedError

    def _count_sync(self) -> int:
        """The namespace's row count in this snapshot's view. Runs on the connection's thread."""
        raise NotImplementedError

    async def next_batch(self, max_rows: int) -> list[Row]:
        """See :meth:`mcstore.backends.Snapshot.next_batch`."""
        check_batch_size(max_rows)
        if self._exhausted:
            await trio.lowlevel.checkpoint()
            if self._closing:
                raise StoreClosed(self._closed_message())
            return []
        after = self._after
        rows = await self._call(lambda: self._page_sync(after, max_rows))
        if rows:
            self._after = rows[-1][0]
        if len(rows) < max_rows:
            self._exhausted = True
        return rows

    async def count(self) -> int:
        """See :meth:`mcstore.backends.Snapshot.count`."""
        return await self._call(self._count_sync)

    def _on_released(self) -> None:
        if self._on_release is not None:
            self._on_release(self)


class OpenSnapshots(Generic[S]):
    """The snapshots a backend or reader opened and has not seen closed.

    Create each snapshot with ``on_release=open_snapshots.discard``, then ``await
    open_snapshots.start(snapshot)``. Invariant: a snapshot is in the set from just before its
    ``start()`` until its release, whether ``start()`` succeeds or not.
    """

    def __init__(self) -> None:
        self._open: set[S] = set()

    def __len__(self) -> int:
        return len(self._open)

    def discard(self, snapshot: S) -> None:
        """Forget ``snapshot`` (its ``on_release`` callback); harmless if it is not in the set."""
        self._open.discard(snapshot)

    async def start(self, snapshot: S) -> S:
        """Add ``snapshot``, take its view (``await snapshot.start()``), and return it."""
        self._open.add(snapshot)
        await snapshot.start()
        return snapshot

    async def close_all(self) -> None:
        """Close every snapshot still open, shielded: closing is cleanup."""
        with trio.CancelScope(shield=True):
            for snapshot in list(self._open):
                await snapshot.aclose()
