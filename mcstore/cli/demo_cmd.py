"""``mcstore demo``: payments routed with mission control, into a store, with a summary and a proof.

The simulation is :mod:`mcstore.cli.routing` and :mod:`mcstore.cli.demo`, the run through the
store :func:`~mcstore.cli.ingest.run_demo`; this module is the command, its progress bar, its
summary and what it does on each stop signal.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator
from typing import Final

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..backends import check_write_target, classify_location, redact_location
from ..store import StoreState, StoreStats
from .common import (
    _CONTEXT,
    _check_directory_of,
    _fail,
    _graph,
    _Interrupted,
    _max_records_option,
    _namespace_option,
    _plot_option,
    _reported,
    _seconds,
    _stderr,
    _stdout,
    _working,
)
from .demo import BUILTIN_GRAPHS, GRAPH_NETWORK, GraphNetwork, Network, builtin_network
from .ingest import (
    DEMO_ESTIMATORS,
    DemoOutcome,
    DemoProgress,
    run_demo,
    verify_demo,
)
from .routing import BALANCES, PlotUnavailable, calibration_rows, check_plotting, learning, plot_success
from .stopping import STOPS

__all__ = ["DEFAULT_DEMO_DB", "DEFAULT_DEMO_PAYMENTS", "demo"]

DEFAULT_DEMO_DB: Final = "mcstore-demo.sqlite"
"""The demo's database: a file in the current directory, so that a second run continues it."""
DEFAULT_DEMO_PAYMENTS: Final = 2000


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


@click.command(context_settings=_CONTEXT)
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
