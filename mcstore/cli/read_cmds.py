"""The commands that only read a database: ``stats`` and ``export``.

Both read each namespace from one consistent snapshot, streamed (:mod:`mcstore.cli.readonly`),
with an optional progress bar over its rows.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..backends import (
    SCHEMA_VERSION,
    PostgresReader,
    Snapshot,
    database_file_role,
    is_sqlite_file,
    open_reader,
    redact_location,
)
from ..errors import DecodeError
from ..model import PaymentResult
from .common import (
    _CONTEXT,
    _bad_row_reporter,
    _check_directory_of,
    _db_argument,
    _fail,
    _fail_unknown_namespace,
    _namespace_option,
    _percent,
    _reported,
    _short_time,
    _stderr,
    _stdout,
    _warn,
    _warn_unknown_namespace,
)
from .export import (
    CSV_COLUMNS,
    result_to_csv_row,
    result_to_json_line,
)
from .readonly import (
    NamespaceStats,
    namespace_stats,
    stream_results,
)
from .stopping import STOPS

__all__ = ["export", "stats"]

# -- reading: progress over a namespace's rows ------------------------------------------------


def _wants_bar(show: bool | None, *, uses_stdout: bool) -> bool:
    """``--progress``/``--no-progress``, or by default: on when stderr is a terminal, unless
    the output goes to stdout on that terminal too."""
    if show is not None:
        return show
    return _stderr().is_terminal and not (uses_stdout and sys.stdout.isatty())


class _RowsBar:
    """A progress bar over the rows of a snapshot on stderr, redrawn at most ten times a second.

    Disabled, it costs nothing and never counts the rows.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=_stderr(),
            auto_refresh=False,
            disable=not enabled,
        )
        self._task: Any = None
        self._done = 0
        self._last = 0.0

    def __enter__(self) -> _RowsBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._done)
            self._progress.refresh()
        self._progress.__exit__(None, None, None)

    async def start(self, description: str, snapshot: Snapshot) -> None:
        """A new bar for ``snapshot``'s rows (counted only when the bar is shown)."""
        if not self.enabled:
            return
        total = await snapshot.count()
        if self._task is not None:
            self._progress.update(self._task, completed=self._done)
        self._done = 0
        self._task = self._progress.add_task(description, total=total)
        self._progress.refresh()

    def advance(self, rows: int) -> None:
        if not self.enabled:
            return
        self._done += rows
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._progress.update(self._task, completed=self._done)
            self._progress.refresh()


_read_progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr. [default: when stderr is a terminal that the output does not go to]",
)


# -- stats ----------------------------------------------------------------------------------


def _stats_tables(s: NamespaceStats, top: int) -> list[Table]:
    """The summary of one namespace (label, value, detail) and its top failure codes."""
    summary = Table(title=f"Namespace {s.namespace!r}", title_justify="left", box=None, show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_column()
    summary.add_row("records", str(s.records), "")
    summary.add_row("oldest reply", _short_time(s.oldest_reply_ns), "UTC")
    summary.add_row("newest reply", _short_time(s.newest_reply_ns), "UTC")
    summary.add_row("successes", str(s.successes), _percent(s.successes, s.records))
    summary.add_row("failures", str(s.failures), _percent(s.failures, s.records))
    if s.undecodable:
        summary.add_row("undecodable", str(s.undecodable), "rows skipped (see the warnings)")
    tables = [summary]
    if s.failure_codes:
        codes = Table(title=f"Top failure codes in {s.namespace!r}", title_justify="left")
        codes.add_column("code", justify="right")
        codes.add_column("name")
        codes.add_column("count", justify="right")
        codes.add_column("of failures", justify="right")
        for (code, name), count in s.failure_codes.most_common(top):
            codes.add_row(
                "-" if code is None else f"0x{code:04x}", name, str(count), _percent(count, s.failures)
            )
        tables.append(codes)
    return tables


async def _gather_stats(
    db: str, namespace: str | None, show_progress: bool | None
) -> tuple[int, list[NamespaceStats], str | None]:
    """The schema version and the stats of ``namespace`` (or of every namespace) of ``db``, and
    for a PostgreSQL server the line on its replication."""
    async with contextlib.aclosing(await open_reader(db)) as reader:
        replication = reader.replication if isinstance(reader, PostgresReader) else None
        names = list(await reader.namespaces())
        if namespace is not None:
            if namespace not in names:
                _fail_unknown_namespace(db, namespace, names)
            names = [namespace]
        all_stats = []
        with _RowsBar(_wants_bar(show_progress, uses_stdout=False)) as bar:
            for name in names:
                async with contextlib.aclosing(await reader.open_snapshot(name)) as snapshot:
                    await bar.start(f"namespace {name!r}", snapshot)
                    all_stats.append(
                        await namespace_stats(snapshot, name, _bad_row_reporter(db, name), on_rows=bar.advance)
                    )
        return reader.schema_version, all_stats, None if replication is None else replication.describe()


@click.command(context_settings=_CONTEXT)
@_db_argument
@_namespace_option(None, "Only this namespace. [default: every namespace]")
@click.option(
    "--top", type=click.IntRange(min=1), default=10, show_default=True, help="Failure codes to list."
)
@_read_progress_option
def stats(db: str, namespace: str | None, top: int, progress: bool | None) -> None:
    """Summarise the database DB, read-only.

    Per namespace: the record count, the oldest and newest reply time, the success/failure
    split and the most common failure codes; the schema version; and for a PostgreSQL URL,
    whether acknowledged results survive a failover to a standby (a WARNING if they can be
    lost). Rows that fail to decode are reported on stderr and skipped, never deleted. Each namespace is read from
    one consistent snapshot, streamed: memory stays flat whatever its size.
    """
    with _reported(db, namespace):
        version, all_stats, replication = STOPS.run(lambda: _gather_stats(db, namespace, progress))
    out = _stdout()
    out.print(f"{redact_location(db)}: mcstore schema version {version} (this mcstore writes {SCHEMA_VERSION})")
    if replication is not None:
        out.print(f"Replication: {replication}", markup=False)
    if not all_stats:
        out.print("No namespaces: the database is empty.")
        return
    out.print(f"Namespaces ({len(all_stats)}): {', '.join(repr(s.namespace) for s in all_stats)}")
    for one in all_stats:
        out.print()
        for table in _stats_tables(one, top):
            out.print(table)


# -- export ---------------------------------------------------------------------------------


def _check_output(path: str, db: str, force: bool) -> str:
    """Check that ``export -o path`` may write ``path``; return the file to replace.

    Refused, whatever ``force`` says: a directory, a missing directory, the database being
    read or one of its companion files (through any symlink or hard link), a lock file of any
    of its namespaces (replacing it would unlock the namespace), and any SQLite file. Refused
    without ``force``: any other existing file. A symlink is followed: its target is what gets
    replaced.
    """
    target = os.path.realpath(path)
    if os.path.isdir(target):
        _fail(f"{path}: is a directory; give a file name for the output")
    _check_directory_of(path, target)
    role = database_file_role(db, target)
    if role == "database":
        _fail(f"{path}: is the database being exported; refusing to write it")
    if role == "lock":
        _fail(f"{path}: is a lock file of {redact_location(db)}; refusing to write it")
    if role is not None:
        _fail(f"{path}: is the {role} file of {redact_location(db)}; refusing to write it")
    if not os.path.lexists(target):
        return target
    try:
        is_sqlite = is_sqlite_file(target)
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror or exc}")
    if is_sqlite:
        _fail(f"{path}: is an SQLite database; refusing to overwrite it with an export")
    if not force:
        _fail(f"{path}: already exists; refusing to overwrite it without --force")
    return target


@contextlib.contextmanager
def _output(path: str, db: str, force: bool) -> Iterator[IO[str]]:
    """stdout for ``-``; otherwise a temporary file beside ``path``, moved onto it on success.

    Nothing is left half-written: on any failure the temporary file is removed, and ``path``
    is untouched. Without ``force`` the move never replaces a file that appeared meanwhile.
    """
    if path == "-":
        stream = sys.stdout
        yield stream
        stream.flush()
        return
    target = _check_output(path, db, force)
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=os.path.dirname(target)
        )
    except OSError as exc:
        _fail(f"{path}: cannot write: {exc.strerror or exc}")
    try:
        with open(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp made the file 0600, and it stays so: it holds the history, as the database does.
        if force:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)  # fails, rather than replaces, if it exists by now
            except FileExistsError:
                _fail(f"{path}: already exists; refusing to overwrite it without --force")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


@click.command(context_settings=_CONTEXT)
@_db_argument
@_namespace_option("default", "The namespace to export.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="FILE",
    help="Write to FILE instead of stdout: a new file (mode 0600), written whole or not at all.",
)
@click.option(
    "--force", is_flag=True, help="Replace FILE if it exists (never the database, its lock files, nor any SQLite file)."
)
@click.option("--raw", is_flag=True, help="Add lnd's key and value bytes (hex) to each record.")
@_read_progress_option
def export(
    db: str, namespace: str, fmt: str, output: str, force: bool, raw: bool, progress: bool | None
) -> None:
    """Write the results of a namespace of DB, one per line, oldest first; read-only.

    jsonl (what `mcstore import` reads) or csv. Pubkeys and failure messages are hex, times
    are given both in ns and as ISO-8601 UTC, and failure codes with their BOLT 4 name. The
    namespace is read from one consistent snapshot and streamed, in constant memory
    whatever its size, while a store may keep writing.
    """
    count = 0
    skipped = 0
    report_bad_row = _bad_row_reporter(db, namespace)

    def bad_row(key: bytes, exc: DecodeError) -> None:
        nonlocal skipped
        skipped += 1
        report_bad_row(key, exc)

    def write_all(stream: IO[str]) -> Callable[[PaymentResult], object]:
        if fmt == "csv":
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow([*CSV_COLUMNS, *(("raw_key", "raw_value") if raw else ())])
            return lambda result: writer.writerow(result_to_csv_row(result, raw=raw))
        return lambda result: stream.write(result_to_json_line(result, raw=raw) + "\n")

    async def run_export() -> int:
        exported = 0
        async with contextlib.aclosing(await open_reader(db)) as reader:
            names = await reader.namespaces()
            if namespace not in names:
                _warn_unknown_namespace(db, namespace, list(names))
            async with contextlib.aclosing(await reader.open_snapshot(namespace)) as snapshot:
                with _RowsBar(_wants_bar(progress, uses_stdout=output == "-")) as bar:
                    await bar.start(f"exporting {namespace!r}", snapshot)
                    with _output(output, db, force) as stream:
                        write = write_all(stream)
                        rows = stream_results(snapshot, bad_row, on_rows=bar.advance)
                        async with contextlib.aclosing(rows):
                            async for _key, _value, result in rows:
                                write(result)
                                exported += 1
        return exported

    with _reported(db, namespace):
        count = STOPS.run(run_export)
    bad = f"; skipped {skipped} undecodable row{'s' if skipped != 1 else ''} (see the warnings)" if skipped else ""
    if output != "-":
        click.echo(
            f"Exported {count} records of namespace {namespace!r} from {redact_location(db)} to {output}{bad}.",
            err=True,
        )
    elif skipped:
        _warn(f"{redact_location(db)}: exported {count} records of namespace {namespace!r}{bad}")
