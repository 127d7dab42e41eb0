"""Reading an mcstore database without a store: for ``mcstore stats`` and ``mcstore export``.

Nothing here writes to the database or takes a namespace lock, and nothing is left behind: a
missing file is an error (it is never created), and a row that fails to decode is reported
through a callback and skipped, not removed (the store's ``fetch_all`` removes such rows; a
read-only tool must not). ``stats`` and ``export`` read through a
:class:`~mcstore.backends.Reader` (:func:`~mcstore.backends.open_reader`, whatever the
backend): one consistent snapshot per namespace, streamed in batches, so that memory stays
flat whatever the history size, and a store can keep writing meanwhile.

What is particular to SQLite (the writing commands' check of their target, the demo's
``PRAGMA quick_check``) is behind :mod:`mcstore.backends`' own API
(:func:`~mcstore.backends.check_write_target`, :meth:`~mcstore.backends.Reader.check_integrity`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Final

from ..backends import Snapshot
from ..codec import decode_result
from ..errors import DecodeError
from ..model import PaymentResult

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "NamespaceStats",
    "OnBadRow",
    "OnRows",
    "namespace_stats",
    "stream_results",
]

DEFAULT_BATCH_SIZE: Final = 1000
"""Rows read per batch by :func:`stream_results`."""

OnBadRow = Callable[[bytes, DecodeError], None]
"""Called with the key and the error of each row that fails to decode."""

OnRows = Callable[[int], None]
"""Called with the number of rows read (decodable or not) after each batch."""


async def stream_results(
    snapshot: Snapshot,
    on_bad_row: OnBadRow,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_rows: OnRows | None = None,
) -> AsyncGenerator[tuple[bytes, bytes, PaymentResult], None]:
    """Yield ``(key, value, result)`` for each row of ``snapshot``, oldest first (key order).

    Reads ``batch_size`` rows at a time, so memory does not grow with the namespace. A row
    that fails to decode goes to ``on_bad_row`` and is skipped; nothing is deleted.
    ``on_rows`` hears how many rows each batch held (for a progress bar). Close the
    generator (``contextlib.aclosing``) when leaving early; the snapshot stays the caller's.
    """
    while True:
        rows = await snapshot.next_batch(batch_size)
        if on_rows is not None:
            on_rows(len(rows))
        for key, value in rows:
            try:
                result = decode_result(key, value)
            except DecodeError as exc:
                on_bad_row(bytes(key), exc)
                continue
            yield key, value, result
        if len(rows) < batch_size:
            return


@dataclass(slots=True)
class NamespaceStats:
    """What ``mcstore stats`` reports about one namespace."""

    namespace: str
    records: int = 0
    """Rows that decode."""
    undecodable: int = 0
    """Rows that fail to decode (reported and skipped)."""
    oldest_reply_ns: int | None = None
    newest_reply_ns: int | None = None
    successes: int = 0
    failures: int = 0
    failure_codes: Counter[tuple[int | None, str]] = field(default_factory=Counter)
    """Failures by ``(code, name)``; ``(None, "no failure message")`` when lnd had none."""


async def namespace_stats(
    snapshot: Snapshot, namespace: str, on_bad_row: OnBadRow, *, on_rows: OnRows | None = None
) -> NamespaceStats:
    """Decode every row of ``snapshot`` (of ``namespace``) once and summarise it, streaming;
    report bad rows to ``on_bad_row`` and batch sizes to ``on_rows``."""
    stats = NamespaceStats(namespace)

    def bad_row(key: bytes, exc: DecodeError) -> None:
        stats.undecodable += 1
        on_bad_row(key, exc)

    async with contextlib.aclosing(stream_results(snapshot, bad_row, on_rows=on_rows)) as rows:
        async for _key, _value, result in rows:
            stats.records += 1
            reply = result.time_reply_ns
            if stats.oldest_reply_ns is None or reply < stats.oldest_reply_ns:
                stats.oldest_reply_ns = reply
            if stats.newest_reply_ns is None or reply > stats.newest_reply_ns:
                stats.newest_reply_ns = reply
            failure = result.failure
            if failure is None:
                stats.successes += 1
                continue
            stats.failures += 1
            code, name = failure.code, failure.code_name
            stats.failure_codes[(code, name if name is not None else "no failure message")] += 1
    return stats
