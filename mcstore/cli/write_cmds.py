"""The commands that write through a store: ``import``, ``import-lnd`` and ``reset``.

Each goes through the store (its namespace lock, deduplication and cap) in one transaction,
and says, on a stop signal, what the store reported durable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Final

import click
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from ..backends import check_write_target, open_reader, redact_location, same_file
from ..model import PaymentResult
from ..store import StoreStats
from .common import (
    _CONTEXT,
    _db_argument,
    _fail,
    _fail_unknown_namespace,
    _Interrupted,
    _max_records_option,
    _namespace_option,
    _reported,
    _stderr,
    _stdout,
    _warn,
)
from .export import (
    RecordError,
    iter_json_lines,
    read_lines,
)
from .ingest import (
    ImportOutcome,
    clear_namespace,
    import_results,
)
from .lnd_import import read_history
from .stopping import STOPS

__all__ = ["PROGRESS_MIN_BYTES", "import_", "import_lnd", "reset"]

PROGRESS_MIN_BYTES: Final = 1 << 20
"""``import`` shows a progress bar by default for files at least this large."""


# -- import ---------------------------------------------------------------------------------


def _read_records(path: str, show_progress: bool | None) -> tuple[list[PaymentResult], bool]:
    """Read and validate every line of the jsonl file ``path`` (``-``: stdin) before returning.

    Returns the results and whether a progress bar was shown (the write phase shows one too).
    """
    try:
        source: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}")
    # stdin is not ours to close.
    with source if path != "-" else contextlib.nullcontext(source):
        size = os.fstat(source.fileno()).st_size if path != "-" else 0
        console = _stderr()
        if show_progress is None:
            show_progress = size >= PROGRESS_MIN_BYTES and console.is_terminal
        progress = Progress(
            TextColumn("validating"),
            BarColumn(),
            TaskProgressColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            disable=not show_progress,
        )
        task = progress.add_task("validating", total=size or None)
        results: list[PaymentResult] = []

        def lines() -> Iterator[bytes]:
            done = 0
            last = 0.0
            for line in read_lines(source):
                done += len(line)
                yield line
                now = time.monotonic()
                if now - last >= 0.1:
                    last = now
                    progress.update(task, completed=done)
                    progress.refresh()
            progress.update(task, completed=done)

        with progress:
            try:
                for _number, result in iter_json_lines(lines()):
                    results.append(result)
            except RecordError as exc:
                _fail(f"{path}:{exc.line}: {exc.field}: {exc.problem}; nothing imported")
            except OSError as exc:
                _fail(f"{path}: {exc.strerror or exc}")
            except KeyboardInterrupt:
                raise _Interrupted(f"{path}: {STOPS.verb()} while validating: nothing was imported") from None
            progress.refresh()
    return results, show_progress


def _import_summary(stats: StoreStats, namespace: str) -> str:
    added = stats.accepted - stats.deduplicated
    return (
        f"{added} added, {stats.deduplicated} deduplicated, {stats.pruned} pruned; "
        f"{stats.stored} now stored in namespace {namespace!r}"
    )


def _interrupted_import(outcome: ImportOutcome | None, total: int, namespace: str) -> str:
    """What a stop signal during the write left in the database, as the store reported it."""
    stats = None if outcome is None else outcome.stats
    verb = STOPS.verb()
    if stats is None or outcome is None:
        return f"{verb}: nothing was imported"
    if stats.accepted == 0 or outcome.unpersisted >= stats.accepted:
        return f"{verb}: nothing was imported"
    if outcome.unpersisted == 0 and stats.accepted == total:
        return f"{verb} after the import committed: {_import_summary(stats, namespace)}"
    durable = stats.accepted - outcome.unpersisted
    return (
        f"{verb} part-way: {durable} of {total} records were made durable and {total - durable} "
        f"were not; {stats.stored} stored in namespace {namespace!r}"
    )


def _write_results(
    db: str, results: list[PaymentResult], namespace: str, max_records: int, show_progress: bool = False
) -> str:
    """Write ``results`` through a store in one transaction; return the summary of what it did.

    A stop signal is an error (exit 130 after Ctrl-C, 143 after SIGTERM) that says what the
    store reported durable.
    """
    progress = Progress(
        TextColumn(f"writing {len(results)} records in one transaction"),
        BarColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
        disable=not show_progress,
    )
    task = progress.add_task("writing", total=None)
    done: list[ImportOutcome] = []
    shown = redact_location(db)
    with _reported(db, namespace):
        check_write_target(db)
        try:
            with progress:
                outcome = STOPS.run(
                    lambda signals: import_results(
                        db,
                        results,
                        namespace=namespace,
                        max_records=max_records,
                        on_done=done.append,
                        signals=signals,
                    ),
                    listen=True,
                )
                progress.update(task, total=1, completed=1)
        except KeyboardInterrupt:
            # A signal that came as the run ended, after the write's own handling.
            known = dataclasses.replace(done[0], interrupted=True) if done else None
            raise _Interrupted(f"{shown}: {_interrupted_import(known, len(results), namespace)}") from None
    if outcome.interrupted or outcome.stats is None:
        raise _Interrupted(f"{shown}: {_interrupted_import(outcome, len(results), namespace)}")
    return _import_summary(outcome.stats, namespace)


@click.command("import", context_settings=_CONTEXT)
@_db_argument
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@_namespace_option("default", "The namespace to import into.")
@_max_records_option
@click.option(
    "--progress/--no-progress",
    default=None,
    help=(
        "Show a progress bar, while validating and while writing. "
        f"[default: on a terminal, for files of {PROGRESS_MIN_BYTES >> 20} MiB or more]"
    ),
)
def import_(db: str, file: str, namespace: str, max_records: int, progress: bool | None) -> None:
    """Import the jsonl FILE (as `mcstore export` writes it; - for stdin) into DB.

    Every line is validated before anything is written: a bad line is an error naming its
    line number and field, and then nothing is imported. Lines over 1 MiB, routes over 64
    hops and failure messages over 65535 bytes are refused. The records go through the store
    in one transaction, so deduplication and --max-records apply. Ctrl-C (or SIGTERM) says
    whether the import had committed.
    """
    with _reported(db, namespace):
        check_write_target(db)
    results, shown = _read_records(file, progress)
    where = redact_location(db)
    if not results:
        click.echo(f"{file}: no records; {where} unchanged.", err=True)
        return
    summary = _write_results(db, results, namespace, max_records, shown)
    try:
        _stdout().print(f"Imported {len(results)} records from {file} into {where}: {summary}.")
    except KeyboardInterrupt:
        raise _Interrupted(f"{where}: {STOPS.verb()} after the import committed: {summary}") from None


# -- import-lnd -----------------------------------------------------------------------------


@click.command("import-lnd", context_settings=_CONTEXT)
@click.argument("channel_db", metavar="CHANNEL_DB", type=click.Path(dir_okay=False))
@_db_argument
@_namespace_option(
    "default", "The lnd mission control namespace to import, and the namespace to import into."
)
@_max_records_option
def import_lnd(channel_db: str, db: str, namespace: str, max_records: int) -> None:
    """Import the mission control history of an lnd node from its channel.sqlite.

    CHANNEL_DB is lnd's sqlite backend file (channel.sqlite), or the postgresql:// URL of an
    lnd node on PostgreSQL; it is read-only and never written. Rows that fail to decode are
    reported and skipped. The results go through the store into DB in one transaction, so
    deduplication and --max-records apply.
    """
    source, target = redact_location(channel_db), redact_location(db)
    if same_file(channel_db, db):
        _fail(f"{target}: the target database is lnd's own file; give mcstore a database of its own")
    with _reported(channel_db, namespace):
        history = read_history(channel_db, namespace)
    for bad in history.bad_rows:
        _warn(
            f"{source}: namespace {namespace!r}: "
            f"skipping undecodable row key={bad.key.hex()}: {bad.reason}"
        )
    skipped = f"; {len(history.bad_rows)} undecodable rows skipped" if history.bad_rows else ""
    if not history.results:
        _stdout().print(
            f"No results in lnd namespace {namespace!r} of {source}{skipped}; {target} unchanged."
        )
        return
    summary = _write_results(db, history.results, namespace, max_records)
    _stdout().print(
        f"Imported {len(history.results)} results of lnd namespace {namespace!r} from {source} "
        f"into {target}: {summary}{skipped}."
    )


# -- reset ----------------------------------------------------------------------------------


async def _namespace_counts(db: str) -> dict[str, int]:
    """Every namespace of ``db`` (a file or a URL) with its rows, read-only."""
    async with contextlib.aclosing(await open_reader(db)) as reader:
        return dict(await reader.namespaces())



@click.command(context_settings=_CONTEXT)
@_db_argument
@_namespace_option("default", "The namespace to clear.")
@click.option("--yes", is_flag=True, help="Confirm: the namespace's results are deleted for good.")
def reset(db: str, namespace: str, yes: bool) -> None:
    """Delete every result of a namespace of DB (through the store, so never under a writer)."""
    shown = redact_location(db)
    if not yes:
        raise click.UsageError(f"refusing to clear namespace {namespace!r} of {shown} without --yes")
    with _reported(db, namespace):
        counts = STOPS.run(lambda: _namespace_counts(db))
    if namespace not in counts:
        _fail_unknown_namespace(db, namespace, list(counts))
    stored = counts[namespace]
    if not stored:
        _stdout().print(f"Namespace {namespace!r} of {shown} is already empty; nothing to clear.")
        return
    with _reported(db, namespace):
        deleted = STOPS.run(lambda: clear_namespace(db, namespace))
    _stdout().print(f"Cleared namespace {namespace!r} of {shown}: {deleted} records deleted.")
