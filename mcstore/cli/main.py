"""The ``mcstore`` command: click commands only; the work is done by the modules they call.

=============  ===================================================================
``demo``       payments routed with mission control, into a store (:mod:`mcstore.cli.routing`)
``stats``      summarise a database, read-only (:mod:`mcstore.readonly`)
``export``     write a namespace as jsonl or csv, read-only (:mod:`mcstore.export`)
``import``     read jsonl back through a store, all or nothing
``import-lnd`` import an lnd node's history from its ``channel.sqlite`` (:mod:`mcstore.lnd_import`)
``reset``      clear a namespace
``querymc``    the pair history rebuilt from a namespace, read-only (:mod:`mcstore.cli.mission_cmds`)
``queryprob``  a success probability and the pair's history, read-only
``eval``       score the estimators on a namespace's history, read-only (:mod:`mcstore.cli.calibrate`)
``fit``        fit an estimator's parameters to a namespace's history, read-only
=============  ===================================================================

Every expected error is one line on stderr, ``Error: <file>: <what>`` (``<file>:<line>:
<field>: <what>`` for a bad import line), with exit code 1, or 2 for a usage error. Ctrl-C
and SIGTERM stop every command gracefully (:mod:`mcstore.cli.stopping`), which then exits
with 130 or 143: the demo after its summary and proof, an import with one line saying whether
it committed, as the store reported it. Output to a pipe whose reader went away (``| head``)
ends a command quietly, with 0.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

import click
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

from ..backends import PostgresReader, Snapshot, classify_location, open_reader, redact_location
from ..backends._lock import is_lock_path
from ..backends.sqlite import SCHEMA_VERSION
from ..errors import DecodeError
from ..model import PaymentResult
from ..store import StoreState, StoreStats
from .common import (
    _CONTEXT,
    _bad_row_reporter,
    _db_argument,
    _fail,
    _fail_unknown_namespace,
    _graph,
    _max_records_option,
    _namespace_option,
    _percent,
    _plot_option,
    _reported,
    _seconds,
    _short_time,
    _stderr,
    _stdout,
    _warn,
    _warn_unknown_namespace,
    _working,
    cli,
)
from .demo import BUILTIN_GRAPHS, GRAPH_NETWORK, GraphNetwork, Network, builtin_network
from .export import (
    CSV_COLUMNS,
    RecordError,
    iter_json_lines,
    read_lines,
    result_to_csv_row,
    result_to_json_line,
)
from .ingest import (
    DEMO_ESTIMATORS,
    DemoOutcome,
    DemoProgress,
    ImportOutcome,
    clear_namespace,
    import_results,
    run_demo,
    verify_demo,
)
from .lnd_import import read_history
from .readonly import (
    NamespaceStats,
    check_write_target,
    namespace_stats,
    stream_results,
)
from .routing import BALANCES, PlotUnavailable, calibration_rows, check_plotting, learning, plot_success
from .stopping import STOPS

__all__ = ["DEFAULT_DEMO_DB", "DEFAULT_DEMO_PAYMENTS", "cli", "main"]

DEFAULT_DEMO_DB: Final = "mcstore-demo.sqlite"
"""The demo's database: a file in the current directory, so that a second run continues it."""
DEFAULT_DEMO_PAYMENTS: Final = 2000
PROGRESS_MIN_BYTES: Final = 1 << 20
"""``import`` shows a progress bar by default for files at least this large."""
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


class _Interrupted(click.ClickException):
    """An error after a stop signal: one line saying what state things were left in.

    Exits with 128 + the first signal's number: 130 after Ctrl-C, 143 after SIGTERM.
    """

    @property  # click declares a class constant; this one depends on the signal
    def exit_code(self) -> int:  # type: ignore[override]
        return STOPS.exit_code()


class _DemoInterrupts:
    """What the demo does on each stop signal (Ctrl-C or SIGTERM), counted from the first.

    The first stops the payments (:func:`~mcstore.cli.ingest.run_demo` does that) and says so;
    once the payments are over it only says that the summary and the proof follow. While the
    store closes, and then while the summary and the proof are printed, the second says
    "closing, please wait" and changes nothing. The third aborts: during the close it ends
    the process at once, after saying what the store reported durable so far; during the
    proof it stops the proof, after the summary of the closed store. Whatever the signals,
    the command then exits with 128 + the first one's number.
    """

    ABORT_AT: Final = 3

    def __init__(self, db: str, namespace: str, progress: Progress) -> None:
        self.db = redact_location(db)
        self.namespace = namespace
        self._progress = progress

    def _please_wait(self) -> None:
        left = self.ABORT_AT - STOPS.count
        label = STOPS.label()
        click.echo(f"closing, please wait; {label} {left} more time{'s' if left > 1 else ''} aborts", err=True)

    def while_closing(self, _signum: int, stats: StoreStats | None) -> None:
        """``run_demo``'s ``on_interrupt``: runs in the Trio loop, while the store is open or closing."""
        if STOPS.count < self.ABORT_AT:
            if STOPS.count > 1:
                self._please_wait()
            elif stats is None or stats.state is StoreState.OPEN:
                click.echo(
                    f"{STOPS.label()}: stopping the payments; the store closes, "
                    "then the summary and the proof follow.",
                    err=True,
                )
            else:
                click.echo(
                    f"{STOPS.label()}: the payments are over and the store is closing; "
                    "the summary and the proof follow.",
                    err=True,
                )
            return
        self._progress.stop()
        if stats is None:
            known = "the store was not open yet, so nothing was written"
        else:
            known = (
                f"the last flush left {stats.stored} records in namespace {self.namespace!r}; "
                f"{stats.pending} accepted results were not yet durable and may be missing; "
                "SQLite keeps the file consistent"
            )
        click.echo(f"Error: {self.db}: aborted by {STOPS.label()} while the store was closing: {known}.", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # The close is shielded from cancellation (it is what keeps results safe); an abort
        # is the one way out, and SQLite's journal keeps a half-done transaction out.
        os._exit(STOPS.exit_code())

    def after_run(self, _signum: int) -> None:
        """The policy once the payments are over (:meth:`StopSignals.run`'s ``then``): count,
        and let the third stop the proof (by ``KeyboardInterrupt``, see :meth:`after_close`)."""
        if STOPS.count >= self.ABORT_AT:
            raise KeyboardInterrupt
        if STOPS.count == 1:
            click.echo(
                f"{STOPS.label()}: the payments are over and the store closed; "
                "the summary and the proof follow.",
                err=True,
            )
        else:
            self._please_wait()

    @contextlib.contextmanager
    def after_close(self, outcome: DemoOutcome) -> Iterator[None]:
        """While the summary and the proof run: the third signal stops the proof."""
        try:
            yield
        except KeyboardInterrupt:
            raise _Interrupted(
                f"{self.db}: aborted by {STOPS.label()} before the proof finished; the store had closed with "
                f"{outcome.stats.stored} records in namespace {self.namespace!r} and "
                f"{outcome.unpersisted} accepted results not durable"
            ) from None


def _print_demo_summary(
    console: Console, db: str, namespace: str, max_records: int, outcome: DemoOutcome
) -> None:
    stats = outcome.stats
    table = Table(title="Summary", title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    cut = outcome.payments_started - outcome.payments_made
    table.add_row(
        "payments",
        str(outcome.payments_made),
        f"of {outcome.payments}" + (f"; {cut} more started, cut short" if cut else ""),
    )
    table.add_row(
        "attempts sent",
        str(outcome.results_sent),
        f"{outcome.successes} succeeded, {outcome.failures} failed"
        + (f", {outcome.duplicates_sent} duplicates re-sent" if outcome.duplicates_sent else ""),
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
    _add_learning_rows(table, outcome)
    console.print(table)


def _add_learning_rows(table: Table, outcome: DemoOutcome) -> None:
    """The rows that show mission control learning: the first and last tenth, and attempts."""
    summary = learning(outcome.payment_outcomes)
    if outcome.estimator == "none":
        table.add_row("routing", "none", "the cheapest route, no mission control")
    else:
        table.add_row("routing", outcome.estimator, "mission control, with this estimator")
        table.add_row("replayed", str(outcome.replayed), "stored results, into mission control at open")
    if summary is None:
        return
    tenth = f"of {summary.tenth} payments"
    table.add_row("first tenth", _percent_of(summary.first_success_rate), f"succeeded {tenth}, "
                  f"{summary.first_attempts:.2f} attempts each")
    table.add_row("last tenth", _percent_of(summary.last_success_rate), f"succeeded {tenth}, "
                  f"{summary.last_attempts:.2f} attempts each")
    table.add_row("attempts", f"{summary.mean_attempts:.2f}", f"per payment, over {summary.payments} payments")
    if outcome.calibration is not None:
        for row in calibration_rows(outcome.calibration, outcome.estimator):
            table.add_row(*row)


def _percent_of(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def _demo_network(spec: str) -> Network:
    """The network ``--graph SPEC`` names, built with a spinner (a real graph takes a second)."""
    if spec in BUILTIN_GRAPHS:
        with _working(f"loading the graph {spec}"):
            return builtin_network(spec)
    graph = _graph(spec)
    try:
        with _working(f"building the network of {spec}"):
            return GraphNetwork(graph, spec)
    except ValueError as exc:
        _fail(str(exc))


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
@click.option(
    "--estimator",
    type=click.Choice(DEMO_ESTIMATORS),
    default="apriori",
    show_default=True,
    help="Route with mission control and this estimator (apriori and bimodal are lnd's, historical "
    "LDK-style), or without mission control (none).",
)
@click.option(
    "--graph",
    "graph_spec",
    metavar="NAME|FILE",
    default="demo",
    show_default=True,
    help="The network to pay over: demo (synthetic, 200 nodes), mainnet-2025 (the real network's 10,275 "
    "channel pairs of 5M sat and more between 1,924 nodes, 2025-04-30), or a graph FILE as `mcstore eval` reads "
    f"it (CSV node1_pubkey,node2_pubkey,capacity_sat, or lncli describegraph JSON). Over a graph, {GRAPH_NETWORK}.",
)
@click.option(
    "--balances",
    type=click.Choice(tuple(BALANCES)),
    default="beta",
    show_default=True,
    help="How the hidden balances are drawn: "
    + "; ".join(f"{name}: {what}" for name, what in BALANCES.items())
    + ". Drawn again for one channel before one payment in ten.",
)
@_plot_option("Draw the success rate over the run into FILE.png (needs matplotlib).")
@click.pass_context
def demo(
    ctx: click.Context,
    db: str,
    payments: int,
    seed: int | None,
    namespace: str,
    max_records: int,
    estimator: str,
    graph_spec: str,
    balances: str,
    plot: str | None,
) -> None:
    """Simulate a node paying over a network with mission control, recording every attempt.

    The network (--graph: synthetic, 200 nodes, or the real one) has channels whose
    balances are hidden (--balances says how they are drawn): an attempt fails
    (temporary_channel_failure) where a node lacks the balance to forward, or where the next
    peer is offline (unknown_next_peer); a few recipients refuse the payment
    (incorrect_or_unknown_payment_details). Each payment takes the route with the best
    probability-weighted cost (fees plus an attempt cost divided by the success probability
    that mission control estimates, as lnd's pathfinding does), reports every attempt to
    mission control, and retries along the next best route, up to 3 attempts. The summary
    shows the success rate of the first and the last tenth of the payments and the attempts
    per payment: the learning, and how well calibrated each estimator's probabilities were on
    the pairs tried (Brier and log loss, as `mcstore eval` scores them). --estimator none
    routes without mission control, to compare.

    Every attempt goes through the store, with a progress bar. At the end, or on Ctrl-C or
    SIGTERM, the store closes gracefully and a summary is printed, with proof that no
    accepted result was lost: the database's records against the model's.
    """
    if seed is None:
        seed = secrets.randbelow(2**32)
    if plot is not None:
        # Before anything runs, not after the whole run: where the file goes, and matplotlib.
        _check_directory_of(plot, os.path.realpath(plot))
        try:
            check_plotting()
        except PlotUnavailable as exc:
            _fail(str(exc))
    out = _stdout()
    shown = redact_location(db)
    network = _demo_network(graph_spec)
    with _reported(db, namespace):
        check_write_target(db)
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

    def announce() -> None:
        # Only once the store holds the namespace lock: a lock error comes before any of this.
        out.print(
            f"Simulating {payments} payments from node {network.source_pubkey.hex()[:16]}... over "
            f"{network.description}, into {shown} (namespace {namespace!r})."
        )
        if balances != "beta" or isinstance(network, GraphNetwork):
            out.print(f"Hidden balances: {BALANCES[balances]}.")
        out.print(f"Seed {seed}: repeat this run with --seed {seed}.")
        progress.start()

    interrupts = _DemoInterrupts(shown, namespace, progress)
    outcome: DemoOutcome | None = None
    bar = _DemoBar(progress, payments)
    try:
        with _reported(db, namespace):
            outcome = STOPS.run(
                lambda signals: run_demo(
                    db,
                    payments=payments,
                    seed=seed,
                    namespace=namespace,
                    max_records=max_records,
                    network=network,
                    on_progress=bar.update,
                    on_open=announce,
                    on_interrupt=interrupts.while_closing,
                    estimator=estimator,
                    balances=balances,
                    signals=signals,
                ),
                listen=True,
                # From the moment the run is over: a signal is counted, and never lost.
                then=interrupts.after_run,
            )
    finally:
        bar.finish(outcome)
        progress.stop()
    assert outcome is not None  # STOPS.run returned
    with interrupts.after_close(outcome):
        _print_demo_summary(out, shown, namespace, max_records, outcome)
        with _reported(db, namespace):
            proof = verify_demo(db, namespace, outcome.model_keys, max_records, outcome.unpersisted_keys)
    distinct = f"{len(outcome.model_keys)} distinct keys"
    if outcome.unpersisted:
        distinct += f" less the {outcome.unpersisted} reported unpersisted"
    basis = f"min({max_records}, {distinct})" if max_records else distinct
    line = f"Proof: {proof.actual} records in the database, {proof.expected} expected by the model ({basis})"
    if proof.damage:
        damage = "; ".join(proof.damage[:3]) + (f"; and {len(proof.damage) - 3} more" if len(proof.damage) > 3 else "")
        _fail(f"{shown}: {line}: FAILED, the file is damaged, PRAGMA quick_check says: {damage}")
    if not proof.ok:
        _fail(
            f"{shown}: {line}: MISMATCH, {proof.missing} accepted results missing, {proof.unexpected} unexpected"
        )
    checked = "" if classify_location(db) == "postgres" else "the file passes PRAGMA quick_check and "
    if outcome.unpersisted:
        out.print(f"{line}: OK, {checked}every accepted result is stored or was reported unpersisted.")
    else:
        out.print(f"{line}: OK, {checked}nothing accepted was lost.")
    if plot is not None and outcome.payment_outcomes:
        routing = "without mission control" if estimator == "none" else f"mission control, {estimator} estimator"
        try:
            over = "" if graph_spec == "demo" else f" over {graph_spec}"
            plot_success(outcome.payment_outcomes, plot, title=f"mcstore demo{over}, seed {seed}: {routing}")
        except OSError as exc:
            _fail(f"{plot}: cannot write the plot: {exc.strerror or exc}")
        out.print(f"Plot of the success rate over the run: {plot}")
    if outcome.unpersisted:
        _fail(
            f"{shown}: {outcome.unpersisted} accepted results could not be made durable (the store's errors above "
            "say why); they were not written"
        )
    if STOPS.first is not None:
        if outcome.interrupted:
            made = f"after {outcome.payments_made} of {payments} payments"
        else:
            made = f"once the {payments} payments were over"
        out.print(f"{STOPS.verb().capitalize()} by {STOPS.label()} {made}; the store closed gracefully.")
        ctx.exit(STOPS.exit_code())


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


@cli.command(context_settings=_CONTEXT)
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


def _check_directory_of(path: str, target: str) -> None:
    """Fail, naming it, unless the directory that the new file ``path`` (leading to ``target``,
    its real path) goes into exists and may be written."""
    directory = os.path.dirname(target)
    shown = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        _fail(f"{path}: directory {shown!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        _fail(f"{path}: directory {shown!r} is not writable")


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
    for companion in ("", "-wal", "-shm", "-journal"):
        if _same_file(target, db + companion):
            what = (
                "the database being exported" if not companion else f"the {companion[1:]} file of {redact_location(db)}"
            )
            _fail(f"{path}: is {what}; refusing to write it")
    if classify_location(db) != "postgres" and is_lock_path(db, target):
        _fail(f"{path}: is a lock file of {redact_location(db)}; refusing to write it")
    if not os.path.lexists(target):
        return target
    try:
        with open(target, "rb") as f:
            is_sqlite = f.read(16) == b"SQLite format 3\x00"
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


@cli.command(context_settings=_CONTEXT)
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


@cli.command("import", context_settings=_CONTEXT)
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


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they lead
        return os.path.realpath(a) == os.path.realpath(b)


@cli.command("import-lnd", context_settings=_CONTEXT)
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
    if _same_file(channel_db, db):
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



@cli.command(context_settings=_CONTEXT)
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


# -- querymc, queryprob, eval, fit ----------------------------------------------------------
# Their modules register them on `cli`; imported last, as they use the helpers above.
from . import calibrate, mission_cmds  # noqa: E402, F401
