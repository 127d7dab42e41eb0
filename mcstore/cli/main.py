"""The ``mcstore`` command: click commands only; the work is done by the modules they call.

=============  ===================================================================
``demo``       simulate a node's payments into a store (:mod:`mcstore.demo`, :mod:`mcstore.ingest`)
``stats``      summarise a database, read-only (:mod:`mcstore.readonly`)
``export``     write a namespace as jsonl or csv, read-only (:mod:`mcstore.export`)
``import``     read jsonl back through a store, all or nothing
``import-lnd`` import an lnd node's history from its ``channel.sqlite`` (:mod:`mcstore.lnd_import`)
``reset``      clear a namespace
=============  ===================================================================

Every expected error is one line on stderr, ``Error: <file>: <what>`` (``<file>:<line>:
<field>: <what>`` for a bad import line), with exit code 1, or 2 for a usage error; an
interrupted demo exits with 130 after its summary.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import IO, Any, Final, NoReturn

import click
import trio
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .. import COMPILED, __version__
from ..backends.sqlite import SCHEMA_VERSION
from ..errors import DecodeError, StoreError, StoreLocked
from ..model import PaymentResult
from ..store import DEFAULT_MAX_RECORDS
from .demo import DEFAULT_NODES, demo_network
from .export import (
    CSV_COLUMNS,
    RecordError,
    format_time_ns,
    iter_json_lines,
    result_to_csv_row,
    result_to_json_line,
)
from .ingest import DemoOutcome, DemoProgress, clear_namespace, run_demo, store_all, verify_demo
from .lnd_import import read_history
from .readonly import (
    DatabaseFileError,
    NamespaceStats,
    check_write_target,
    count_results,
    iter_results,
    namespace_stats,
    namespaces,
    open_mcstore_readonly,
    schema_version,
)

__all__ = ["DEFAULT_DEMO_DB", "DEFAULT_DEMO_PAYMENTS", "cli", "main"]

DEFAULT_DEMO_DB: Final = "mcstore-demo.sqlite"
"""The demo's database: a file in the current directory, so that a second run continues it."""
DEFAULT_DEMO_PAYMENTS: Final = 5000
PROGRESS_MIN_BYTES: Final = 1 << 20
"""``import`` shows a progress bar by default for files at least this large."""
EXIT_INTERRUPTED: Final = 130
"""128 + SIGINT, as a shell reports a command stopped by Ctrl-C."""

_CONTEXT: Final = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -- one-line errors ------------------------------------------------------------------------


class OneLineUsageError(click.ClickException):
    """A usage error shown as one line (click's own shows the usage and a hint on more lines)."""

    exit_code = 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _as_one_line(error: click.UsageError) -> OneLineUsageError:
    hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    return OneLineUsageError(_one_line(error.format_message()) + hint)


_NO_ARGS_IS_HELP: Final[tuple[type[BaseException], ...]] = tuple(
    cls for cls in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if cls is not None
)


class _Group(click.Group):
    """A group whose usage errors, its own and its commands', come out as one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise  # `mcstore` alone prints the help, as click does
        except click.UsageError as error:
            raise _as_one_line(error) from error

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as error:
            raise _as_one_line(error) from error
        except KeyboardInterrupt:
            # Ctrl-C outside the demo's own handling (which prints a summary first).
            click.echo("Error: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def _fail(message: str) -> NoReturn:
    raise click.ClickException(_one_line(message))


@contextlib.contextmanager
def _reported(path: str, namespace: str | None = None) -> Iterator[None]:
    """Turn the library's expected errors into one-line click errors naming the file."""
    try:
        yield
    except (RecordError, click.ClickException, BrokenPipeError):
        raise
    except DatabaseFileError as exc:
        _fail(str(exc))
    except StoreLocked as exc:
        which = f"namespace {namespace!r}" if namespace is not None else "the namespace"
        _fail(f"{path}: {which} is open in another mcstore process or store ({exc})")
    except StoreError as exc:
        _fail(f"{path}: {exc}")
    except sqlite3.Error as exc:
        _fail(f"{path}: SQLite error: {exc}")
    except OSError as exc:
        _fail(f"{exc.filename or path}: {exc.strerror or exc}")


# -- shared options and output ----------------------------------------------------------------


def _check_namespace(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value:
        raise click.BadParameter("must not be empty")
    return value


def _namespace_option(
    default: str | None, help_text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--namespace",
        "-n",
        "namespace",
        default=default,
        show_default=default is not None,
        callback=_check_namespace,
        metavar="NS",
        help=help_text,
    )


_max_records_option = click.option(
    "--max-records",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_RECORDS,
    show_default=True,
    metavar="N",
    help="Keep at most N results in the namespace, pruning the oldest (lnd's MaxMcHistory); 0: no cap.",
)

_db_argument = click.argument("db", metavar="DB", type=click.Path(dir_okay=False))


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    click.echo(f"warning: {_one_line(message)}", err=True)


def _warn_unknown_namespace(db: str, namespace: str, names: list[str]) -> None:
    # Not an error: a namespace that was never written and one that was cleared look alike,
    # and both hold no records. The warning catches a misspelt name.
    known = ", ".join(map(repr, names)) or "none"
    _warn(f"{db}: namespace {namespace!r} holds no records (namespaces: {known})")


def _bad_row_reporter(path: str, namespace: str) -> Callable[[bytes, DecodeError], None]:
    def report(key: bytes, exc: DecodeError) -> None:
        _warn(f"{path}: namespace {namespace!r}: skipping undecodable row key={key.hex()}: {exc}")

    return report


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _short_time(ns: int | None) -> str:
    if ns is None:
        return "-"
    text = format_time_ns(ns)
    return text[:23] + "Z"  # millisecond precision is enough for a summary


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else ""


# -- the group ------------------------------------------------------------------------------


@click.group(cls=_Group, context_settings=_CONTEXT, no_args_is_help=True)
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="mcstore",
    # mcstore.COMPILED: which core this process runs (MCSTORE_PURE=1 forces pure Python).
    message=f"%(prog)s, version %(version)s, COMPILED={COMPILED} "
    f"({'compiled core (mypyc)' if COMPILED else 'pure-Python core'})",
)
@click.option(
    "-v", "--verbose", count=True, help="Log the store's messages to stderr (-v: INFO, -vv: DEBUG)."
)
def cli(verbose: int) -> None:
    """A durable store of Lightning mission control results, byte-compatible with lnd.

    Start with `mcstore demo`: it simulates a node's payments into ./mcstore-demo.sqlite.
    Commands that write (demo, import, import-lnd, reset) go through the store, with its
    namespace lock, deduplication and cap; stats and export only read.
    """
    if verbose:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("mcstore").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


def main() -> None:
    """Run the ``mcstore`` command (the console script's entry point)."""
    cli()


# -- demo -----------------------------------------------------------------------------------


class _DemoBar:
    """The demo's rich progress bar, redrawn at most ten times a second."""

    def __init__(self, progress: Progress, payments: int) -> None:
        self._progress = progress
        self._task = progress.add_task("payments", total=payments, results=0)
        self._last = 0.0

    def update(self, state: DemoProgress) -> None:
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._progress.update(self._task, completed=state.payments_started, results=state.results_sent)
            self._progress.refresh()

    def finish(self, outcome: DemoOutcome | None) -> None:
        if outcome is not None:
            self._progress.update(
                self._task, completed=outcome.payments_started, results=outcome.results_sent
            )
        self._progress.refresh()


def _print_demo_summary(
    console: Console, db: str, namespace: str, max_records: int, outcome: DemoOutcome
) -> None:
    stats = outcome.stats
    table = Table(title="Summary", title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    table.add_row("payments", str(outcome.payments_started), f"of {outcome.payments}")
    table.add_row(
        "attempts sent",
        str(outcome.results_sent),
        f"{outcome.successes} succeeded, {outcome.failures} failed, "
        f"{outcome.duplicates_sent} duplicates re-sent",
    )
    table.add_row("accepted", str(stats.accepted), "by the store")
    table.add_row("deduplicated", str(stats.deduplicated), "already stored, or twice in a batch")
    cap = f"the oldest, to keep --max-records {max_records}" if max_records else "no cap (--max-records 0)"
    table.add_row("pruned", str(stats.pruned), cap)
    table.add_row("stored", str(stats.stored), f"in namespace {namespace!r} of {db}")
    table.add_row("flushes", str(stats.flushes), f"{stats.flush_failures} failed")
    table.add_row("close time", _seconds(outcome.close_seconds), "final flush and shutdown")
    rate = outcome.results_sent / outcome.elapsed_seconds if outcome.elapsed_seconds else 0.0
    table.add_row("elapsed", _seconds(outcome.elapsed_seconds), f"{rate:.0f} results/s")
    if outcome.unpersisted:
        table.add_row("unpersisted", str(outcome.unpersisted), "accepted but not durable")
    console.print(table)


@cli.command(context_settings=_CONTEXT)
@click.option(
    "--db",
    default=DEFAULT_DEMO_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The database; a second run continues its history.",
)
@click.option(
    "--payments",
    default=DEFAULT_DEMO_PAYMENTS,
    show_default=True,
    type=click.IntRange(min=0, max=10**9),
    metavar="N",
    help="Payments to simulate (each makes one or more attempts).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    metavar="S",
    help="Seed of the simulation. [default: random, and printed so that a run can be repeated]",
)
@_namespace_option("default", "The namespace to record into.")
@_max_records_option
@click.pass_context
def demo(
    ctx: click.Context, db: str, payments: int, seed: int | None, namespace: str, max_records: int
) -> None:
    """Simulate a node paying over a synthetic network, recording every attempt.

    Routes of 1 to 6 hops over a network of 200 nodes; BOLT 4 failures such as
    temporary_channel_failure, fee_insufficient, unknown_next_peer, mpp_timeout and
    incorrect_or_unknown_payment_details; replies out of order and a few duplicates.
    Every attempt goes through the store, with a progress bar. At the end, or on Ctrl-C,
    the store closes gracefully and a summary is printed, with proof that no accepted
    result was lost: the database's records against the model's.
    """
    if seed is None:
        seed = secrets.randbelow(2**32)
    out = _stdout()
    network = demo_network()
    with _reported(db, namespace):
        check_write_target(db)
    out.print(
        f"Simulating {payments} payments from node {network.source_pubkey.hex()[:16]}... over a synthetic "
        f"network of {DEFAULT_NODES} nodes and {len(network.channels)} channels, "
        f"into {db} (namespace {namespace!r})."
    )
    out.print(f"Seed {seed}: repeat this run with --seed {seed}.")
    console = _stderr()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[results]} results"),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        # Off a terminal (a pipe, a CI log) a bar cannot redraw: the summary says it all.
        disable=not console.is_terminal,
    )
    outcome: DemoOutcome | None = None
    with progress, _reported(db, namespace):
        bar = _DemoBar(progress, payments)
        try:
            outcome = trio.run(
                lambda: run_demo(
                    db,
                    payments=payments,
                    seed=seed,
                    namespace=namespace,
                    max_records=max_records,
                    network=network,
                    on_progress=bar.update,
                ),
                restrict_keyboard_interrupt_to_checkpoints=True,
            )
        finally:
            bar.finish(outcome)
    assert outcome is not None
    _print_demo_summary(out, db, namespace, max_records, outcome)
    with _reported(db, namespace):
        proof = verify_demo(db, namespace, outcome.model_keys, max_records)
    distinct = len(outcome.model_keys)
    basis = f"min({max_records}, {distinct} distinct keys)" if max_records else f"{distinct} distinct keys"
    line = f"Proof: {proof.actual} records in the database, {proof.expected} expected by the model ({basis})"
    if not proof.ok:
        _fail(
            f"{db}: {line}: MISMATCH, {proof.missing} accepted results missing, {proof.unexpected} unexpected"
        )
    out.print(f"{line}: OK, nothing accepted was lost.")
    if outcome.interrupted:
        out.print(
            f"Interrupted by Ctrl-C after {outcome.payments_started} of {payments} payments; "
            "the store closed gracefully."
        )
        ctx.exit(EXIT_INTERRUPTED)


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


@cli.command(context_settings=_CONTEXT)
@_db_argument
@_namespace_option(None, "Only this namespace. [default: every namespace]")
@click.option(
    "--top", type=click.IntRange(min=1), default=10, show_default=True, help="Failure codes to list."
)
def stats(db: str, namespace: str | None, top: int) -> None:
    """Summarise the database DB, read-only.

    Per namespace: the record count, the oldest and newest reply time, the success/failure
    split and the most common failure codes; and the schema version. Rows that fail to
    decode are reported on stderr and skipped, never deleted.
    """
    with _reported(db, namespace), closing(open_mcstore_readonly(db)) as conn:
        version = schema_version(conn)
        names = namespaces(conn)
        if namespace is not None:
            if namespace not in names:
                _warn_unknown_namespace(db, namespace, names)
            names = [namespace]
        all_stats = [namespace_stats(conn, name, _bad_row_reporter(db, name)) for name in names]
    out = _stdout()
    out.print(f"{db}: mcstore schema version {version} (this mcstore writes {SCHEMA_VERSION})")
    if not all_stats:
        out.print("No namespaces: the database is empty.")
        return
    out.print(f"Namespaces ({len(all_stats)}): {', '.join(repr(s.namespace) for s in all_stats)}")
    for one in all_stats:
        out.print()
        for table in _stats_tables(one, top):
            out.print(table)


# -- export ---------------------------------------------------------------------------------


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's final flush of a closed pipe stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[str]]:
    """stdout for ``-``; otherwise a temporary file beside ``path``, renamed onto it on success."""
    if path == "-":
        stream = sys.stdout
        yield stream
        stream.flush()
        return
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        try:
            stream = open(temporary, "w", encoding="utf-8", newline="")
        except OSError as exc:
            _fail(f"{path}: cannot write: {exc.strerror or exc}")
        with stream:
            yield stream
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


@cli.command(context_settings=_CONTEXT)
@_db_argument
@_namespace_option("default", "The namespace to export.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("-o", "--output", default="-", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--raw", is_flag=True, help="Add lnd's key and value bytes (hex) to each record.")
def export(db: str, namespace: str, fmt: str, output: str, raw: bool) -> None:
    """Write the results of a namespace of DB, one per line, oldest first; read-only.

    jsonl (what `mcstore import` reads) or csv. Pubkeys and failure messages are hex, times
    are given both in ns and as ISO-8601 UTC, and failure codes with their BOLT 4 name.
    """
    count = 0
    try:
        with _reported(db, namespace), closing(open_mcstore_readonly(db)) as conn:
            names = namespaces(conn)
            if namespace not in names:
                _warn_unknown_namespace(db, namespace, names)
            # Closed before the connection is, even when writing fails half-way.
            with closing(iter_results(conn, namespace, _bad_row_reporter(db, namespace))) as rows:
                with _output(output) as stream:
                    if fmt == "csv":
                        writer = csv.writer(stream, lineterminator="\n")
                        writer.writerow([*CSV_COLUMNS, *(("raw_key", "raw_value") if raw else ())])
                        for _key, _value, result in rows:
                            writer.writerow(result_to_csv_row(result, raw=raw))
                            count += 1
                    else:
                        for _key, _value, result in rows:
                            stream.write(result_to_json_line(result, raw=raw) + "\n")
                            count += 1
    except BrokenPipeError:
        # The reader went away (`mcstore export db | head`): stop quietly, as other tools do.
        _silence_stdout()
        return
    if output != "-":
        click.echo(f"Exported {count} records of namespace {namespace!r} from {db} to {output}.", err=True)


# -- import ---------------------------------------------------------------------------------


def _read_records(path: str, show_progress: bool | None) -> list[PaymentResult]:
    """Read and validate every line of the jsonl file ``path`` (``-``: stdin) before returning."""
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
            for line in source:
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
            progress.refresh()
    return results


def _write_results(
    db: str, results: list[PaymentResult], namespace: str, max_records: int
) -> tuple[int, str]:
    with _reported(db, namespace):
        check_write_target(db)
        stats = trio.run(
            lambda: store_all(db, results, namespace=namespace, max_records=max_records),
            restrict_keyboard_interrupt_to_checkpoints=True,
        )
    added = stats.accepted - stats.deduplicated
    return stats.stored, (
        f"{added} added, {stats.deduplicated} deduplicated, {stats.pruned} pruned; "
        f"{stats.stored} now stored in namespace {namespace!r}"
    )


@cli.command("import", context_settings=_CONTEXT)
@_db_argument
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@_namespace_option("default", "The namespace to import into.")
@_max_records_option
@click.option(
    "--progress/--no-progress",
    default=None,
    help=(
        "Show a progress bar. "
        f"[default: on a terminal, for files of {PROGRESS_MIN_BYTES >> 20} MiB or more]"
    ),
)
def import_(db: str, file: str, namespace: str, max_records: int, progress: bool | None) -> None:
    """Import the jsonl FILE (as `mcstore export` writes it; - for stdin) into DB.

    Every line is validated before anything is written: a bad line is an error naming its
    line number and field, and then nothing is imported. The records go through the store
    in one transaction, so deduplication and --max-records apply.
    """
    with _reported(db, namespace):
        check_write_target(db)
    results = _read_records(file, progress)
    if not results:
        click.echo(f"{file}: no records; {db} unchanged.", err=True)
        return
    _stored, summary = _write_results(db, results, namespace, max_records)
    _stdout().print(f"Imported {len(results)} records from {file} into {db}: {summary}.")


# -- import-lnd -----------------------------------------------------------------------------


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


@cli.command("import-lnd", context_settings=_CONTEXT)
@click.argument("channel_db", metavar="CHANNEL_DB", type=click.Path(dir_okay=False))
@_db_argument
@_namespace_option(
    "default", "The lnd mission control namespace to import, and the namespace to import into."
)
@_max_records_option
def import_lnd(channel_db: str, db: str, namespace: str, max_records: int) -> None:
    """Import the mission control history of an lnd node from its channel.sqlite.

    CHANNEL_DB is lnd's sqlite backend file (channel.sqlite); it is opened read-only and
    never written. Rows that fail to decode are reported and skipped. The results go
    through the store into DB in one transaction, so deduplication and --max-records apply.
    """
    if _same_file(channel_db, db):
        _fail(f"{db}: the target database is lnd's own file; give mcstore a database of its own")
    with _reported(channel_db, namespace):
        history = read_history(channel_db, namespace)
    for bad in history.bad_rows:
        _warn(
            f"{channel_db}: namespace {namespace!r}: "
            f"skipping undecodable row key={bad.key.hex()}: {bad.reason}"
        )
    skipped = f"; {len(history.bad_rows)} undecodable rows skipped" if history.bad_rows else ""
    if not history.results:
        _stdout().print(
            f"No results in lnd namespace {namespace!r} of {channel_db}{skipped}; {db} unchanged."
        )
        return
    _stored, summary = _write_results(db, history.results, namespace, max_records)
    _stdout().print(
        f"Imported {len(history.results)} results of lnd namespace {namespace!r} from {channel_db} "
        f"into {db}: {summary}{skipped}."
    )


# -- reset ----------------------------------------------------------------------------------


@cli.command(context_settings=_CONTEXT)
@_db_argument
@_namespace_option("default", "The namespace to clear.")
@click.option("--yes", is_flag=True, help="Confirm: the namespace's results are deleted for good.")
def reset(db: str, namespace: str, yes: bool) -> None:
    """Delete every result of a namespace of DB (through the store, so never under a writer)."""
    if not yes:
        raise click.UsageError(f"refusing to clear namespace {namespace!r} of {db} without --yes")
    with _reported(db, namespace), closing(open_mcstore_readonly(db)) as conn:
        stored = count_results(conn, namespace)
    if not stored:
        _stdout().print(f"Namespace {namespace!r} of {db} is already empty; nothing to clear.")
        return
    with _reported(db, namespace):
        deleted = trio.run(clear_namespace, db, namespace, restrict_keyboard_interrupt_to_checkpoints=True)
    _stdout().print(f"Cleared namespace {namespace!r} of {db}: {deleted} records deleted.")
