"""``mcstore eval`` and ``mcstore fit``: are the estimators' probabilities right on this node's history?

Both read a namespace read-only, as ``querymc`` does (:func:`~mcstore.cli.mission_cmds.replay_history`:
one snapshot, no lock, streamed in key order), with a channel graph for the capacities
(:func:`~mcstore.mission.load_graph`, or the name of a built-in graph). ``eval`` scores
estimators side by side in one pass (:class:`~mcstore.mission.Evaluator`), in memory that does
not grow with the history; ``fit`` records the history once and searches an estimator's
parameters (:func:`~mcstore.mission.fit`), then prints the ``lncli setmccfg`` command and the
``lnd.conf`` lines that apply them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Final

import click
from rich.table import Table

from ..backends import redact_location
from ..mission import (
    ESTIMATORS,
    Evaluation,
    Evaluator,
    FitResult,
    RecordedHistory,
    Scores,
    fit,
    make_estimator,
)
from ..mission.estimators import Estimator
from ..mission.evaluation import check_single_source
from ..mission.fitting import DEFAULT_TEST_FRACTION
from .common import (
    _CONTEXT,
    _db_argument,
    _fail,
    _graph,
    _namespace_option,
    _plot_option,
    _stdout,
    _working,
)
from .demo import BUILTIN_GRAPHS, demo_graph
from .mission_cmds import _json, _pubkey, _replay
from .routing import PlotUnavailable, check_plotting
from .routing import score_text as _number

__all__ = ["BUILTIN_GRAPHS", "demo_graph", "eval_", "fit_", "parse_settings", "plot_reliability"]

_ESTIMATORS: Final = tuple(ESTIMATORS)


_graph_option = click.option(
    "--graph",
    "graph_spec",
    required=True,
    metavar="FILE",
    help="The channel graph, for capacities: a CSV (node1_pubkey,node2_pubkey,capacity_sat) or the JSON of "
    f"`lncli describegraph`; or a built-in graph: {', '.join(BUILTIN_GRAPHS)} (the networks of `mcstore demo`: "
    "its synthetic one, and the real network's channels of 5M sat and more on 2025-04-30).",
)
def _estimator_option(
    help_text: str, name: str, *, multiple: bool = False, required: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--estimator", name, type=click.Choice(_ESTIMATORS), help=help_text, multiple=multiple, required=required
    )


def _command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """``mcstore NAME DB --graph FILE ...``: what eval and fit share."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        return click.command(name, context_settings=_CONTEXT)(_db_argument(_graph_option(function)))

    return decorate


_self_option = click.option(
    "--self",
    "self_pubkey",
    callback=_pubkey,
    metavar="PUBKEY",
    default=None,
    help="Our node's pubkey: its channels get the local estimate. "
    "[default: the source of the stored results; an error if there are several]",
)


def _check_sources(db: str, given: bytes | None, sources: frozenset[bytes]) -> None:
    if given is None:
        try:
            check_single_source(sources)
        except ValueError as exc:
            _fail(f"{redact_location(db)}: {exc}")


# -- --set NAME.PARAM=VALUE --------------------------------------------------------------------


def _bad_setting(message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint="'--set'")


def parse_settings(settings: tuple[str, ...], chosen: tuple[str, ...]) -> dict[str, dict[str, float | int]]:
    """``--set NAME.PARAM=VALUE`` options as ``{name: {param: value}}``.

    Raises :class:`click.BadParameter` naming the option for an unknown estimator or parameter,
    a value that is not a number (or not whole, for an integer parameter), or an estimator that
    is not among ``chosen``. The constructor checks the value's range later.
    """
    out: dict[str, dict[str, float | int]] = {}
    for setting in settings:
        target, sep, text = setting.partition("=")
        name, dot, param = target.strip().partition(".")
        if not sep or not dot or not name or not param:
            raise _bad_setting(f"{setting!r}: write NAME.PARAM=VALUE, e.g. apriori.hop_probability=0.5")
        cls = ESTIMATORS.get(name)
        if cls is None:
            raise _bad_setting(f"{setting!r}: unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
        if name not in chosen:
            raise _bad_setting(f"{setting!r}: {name} is not evaluated (--estimator {' '.join(chosen)})")
        known = {p.name: p for p in cls.parameters}
        parameter = known.get(param)
        if parameter is None:
            raise _bad_setting(
                f"{setting!r}: {name} has no parameter {param!r}; its parameters: {', '.join(known)}"
            )
        try:
            number = float(text.strip())
        except ValueError:
            raise _bad_setting(f"{setting!r}: {text.strip()!r} is not a number") from None
        value: float | int = number
        if parameter.integer:
            if not number.is_integer():
                raise _bad_setting(f"{setting!r}: {param} takes a whole number, got {text.strip()!r}")
            value = int(number)
        out.setdefault(name, {})[param] = value
    return out


def _estimators(chosen: tuple[str, ...], settings: tuple[str, ...]) -> dict[str, Estimator]:
    names = chosen or _ESTIMATORS
    names = tuple(dict.fromkeys(names))  # once each, in the order given
    params = parse_settings(settings, names)
    estimators: dict[str, Estimator] = {}
    for name in names:
        try:
            estimators[name] = make_estimator(name, params.get(name))
        except (TypeError, ValueError) as exc:
            given = " ".join(f"{name}.{k}={v}" for k, v in params.get(name, {}).items())
            raise _bad_setting(f"{given}: {exc}") from None
    return estimators


# -- eval ----------------------------------------------------------------------------------------


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _params_text(params: Mapping[str, float | int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "no parameters"


def _estimator_table(name: str, params: Mapping[str, float | int], pairs: Scores, routes: Scores) -> Table:
    table = Table(title=f"{name}: {_params_text(params)}", title_justify="left", pad_edge=False)
    table.add_column("scored", no_wrap=True)
    for column in ("count", "Brier", "log loss", "mean predicted", "observed"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_row("pairs", str(pairs.count), _number(pairs.brier), _number(pairs.log_loss), "", "")
    table.add_row("routes", str(routes.count), _number(routes.brier), _number(routes.log_loss), "", "")
    table.add_section()
    # The pairs' reliability bins: what was predicted, and how often it happened.
    for b in pairs.bins:
        closing = "]" if b.hi == 1.0 else ")"
        table.add_row(
            f"p in [{b.lo:.1f}, {b.hi:.1f}{closing}",
            str(b.count),
            "",
            "",
            _share(b.mean_predicted),
            _share(b.observed),
        )
    return table


def plot_reliability(evaluation: Evaluation, path: str, *, title: str) -> None:
    """Draw the pairs' reliability diagram into the PNG ``path``: observed frequency against mean
    prediction per bin, one line per estimator, the diagonal of perfect calibration, and the
    bins' counts as bars below. Raises :class:`PlotUnavailable` or :class:`OSError`."""
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(7, 7), dpi=80, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    try:
        top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        width = 0.1 / (len(evaluation.estimators) + 1)
        for i, (name, scores) in enumerate(evaluation.estimators.items()):
            full = [b for b in scores.pairs.bins if b.count]
            top.plot(
                [b.mean_predicted for b in full],
                [b.observed for b in full],
                marker="o",
                label=f"{name} (Brier {_number(scores.pairs.brier)}, log loss {_number(scores.pairs.log_loss)})",
            )
            bottom.bar(
                [b.lo + (i + 1) * width for b in scores.pairs.bins],
                [b.count for b in scores.pairs.bins],
                width=width,
                label=name,
            )
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("observed success frequency")
        top.set_title(title)
        top.grid(True, alpha=0.3)
        top.legend(loc="upper left", fontsize="small")
        bottom.set_yscale("log")
        bottom.set_xlabel("predicted success probability (10 bins)")
        bottom.set_ylabel("pair observations")
        bottom.grid(True, alpha=0.3)
        figure.tight_layout()
        # A new file is private, as the history it describes is (an existing one keeps its mode).
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            figure.savefig(file, format="png")
    finally:
        plt.close(figure)


def _check_plot_target(plot: str) -> None:
    """Fail before the run, not after it: matplotlib missing, or nowhere to write."""
    try:
        check_plotting()
    except PlotUnavailable as exc:
        _fail(str(exc))
    directory = os.path.dirname(plot) or "."
    if not os.path.isdir(directory):
        _fail(f"{plot}: directory {directory!r} does not exist")


@_command("eval")
@_estimator_option("An estimator to score (repeat for several). [default: every one]", "chosen", multiple=True)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME.PARAM=VALUE",
    help="A parameter of an estimator, by its constructor keyword (seconds, msat), e.g. "
    "apriori.hop_probability=0.5. [default: lnd's defaults]",
)
@_self_option
@_namespace_option("default", "The namespace whose history to score.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@_plot_option("Draw the pairs' reliability diagram into FILE.png (needs matplotlib).")
def eval_(
    db: str,
    graph_spec: str,
    chosen: tuple[str, ...],
    settings: tuple[str, ...],
    self_pubkey: bytes | None,
    namespace: str,
    as_json: bool,
    plot: str | None,
) -> None:
    """Score the estimators' success probabilities on the history stored in DB.

    The results are replayed in key order through lnd's rules, as lnd does at start-up, and
    before each result is applied every estimator predicts what it then reports: per pair of
    the route, the probability that the channel forwards the amount (our own channels: the
    local estimate; others: with the capacity from --graph; pairs of unknown capacity and
    amount-independent failures are counted, not scored), and per route, the product over
    its hops. Scores: Brier (mean squared error, 0 is perfect), log loss (0 is perfect; 0.693
    is a coin toss) and ten reliability bins (how often what was predicted at p happened).
    One pass, memory flat in the history's size. Read-only.
    """
    estimators = _estimators(chosen, settings)
    graph = _graph(graph_spec)
    if plot is not None:
        _check_plot_target(plot)
    evaluator = Evaluator(graph, estimators, self_pubkey=self_pubkey)
    replayed = _replay(db, namespace, state=evaluator.state, apply=evaluator.add)
    _check_sources(db, self_pubkey, replayed.sources)
    evaluation = evaluator.evaluation()
    if plot is not None:
        try:
            plot_reliability(evaluation, plot, title=f"mcstore eval: {evaluation.pairs} pair observations")
        except OSError as exc:
            _fail(f"{plot}: cannot write the plot: {exc.strerror or exc}")
    if as_json:
        click.echo(_json(evaluation.to_json()))
        return
    out = _stdout()
    me = "-" if evaluation.self_pubkey is None else evaluation.self_pubkey.hex()
    where = f"namespace {namespace!r} in {redact_location(db)}"
    out.print(f"Scored {evaluation.results} results of {where}, our node {me}.")
    out.print(
        f"Pair observations: {evaluation.pairs} scored; not scored: {evaluation.amount_independent} "
        f"amount-independent failures, {evaluation.no_capacity} channels of unknown capacity "
        f"(graph {graph.source}: {len(graph)} node pairs)."
    )
    out.print(
        f"Routes: {evaluation.routes} scored, {evaluation.routes_no_capacity} with a channel of unknown capacity."
    )
    for scores in evaluation.estimators.values():
        out.print()
        out.print(_estimator_table(scores.name, scores.params, scores.pairs, scores.routes))
    if plot is not None:
        out.print()
        out.print(f"Reliability diagram: {plot}")


# -- fit -----------------------------------------------------------------------------------------


def _fit_table(outcome: FitResult) -> Table:
    """Parameters and scores, one column per parameter set."""
    table = Table(box=None, pad_edge=False)
    table.add_column("")
    shown = [("lnd's default", outcome.default), ("search's best" if outcome.fallback else "fitted", outcome.searched)]
    for label, _ in shown:
        table.add_column(label, justify="right")
    for name in outcome.default.params:
        table.add_row(name, *(str(scores.params[name]) for _, scores in shown))
    table.add_row("test log loss", *(_number(scores.log_loss) for _, scores in shown))
    table.add_row("test Brier", *(_number(scores.brier) for _, scores in shown))
    table.add_row("train log loss", *(_number(scores.train_log_loss) for _, scores in shown))
    return table


@_command("fit")
@_estimator_option("The estimator whose parameters to fit.", "estimator", required=True)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=DEFAULT_TEST_FRACTION,
    show_default=True,
    metavar="F",
    help="The share of the results, the latest in key order, kept out of the search to test it.",
)
@_self_option
@_namespace_option("default", "The namespace whose history to fit.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def fit_(
    db: str,
    graph_spec: str,
    estimator: str,
    test_fraction: float,
    self_pubkey: bytes | None,
    namespace: str,
    as_json: bool,
) -> None:
    """Fit an estimator's parameters to the history stored in DB, and print how to apply them to lnd.

    The results are replayed as `mcstore eval` does; the last --test-fraction of them (in key
    order) are the test set. The parameters are searched (coordinate descent, log scale for
    times and amounts) to minimise the pairs' log loss on the other, earlier results, then
    lnd's defaults and the fitted parameters are both scored on the test results. If the
    fitted ones score worse there (log loss or Brier), the defaults are kept and the output
    says so. Prints the `lncli setmccfg` command and the lnd.conf lines that apply the
    result. Read-only; unlike eval, holds every observation of the history in memory.
    """
    graph = _graph(graph_spec)
    history = RecordedHistory(graph, self_pubkey=self_pubkey)
    replayed = _replay(db, namespace, state=history.state, apply=history.add)
    _check_sources(db, self_pubkey, replayed.sources)
    try:
        with _working(f"fitting {estimator} to {history.results} results"):
            outcome = fit(history, estimator, test_fraction=test_fraction)
    except ValueError as exc:
        _fail(f"{redact_location(db)}: namespace {namespace!r}: {exc}")
    if as_json:
        click.echo(_json(outcome.to_json()))
        return
    out = _stdout()
    out.print(
        f"Fitted {estimator} to {outcome.train_results} results of namespace {namespace!r} in {redact_location(db)} "
        f"({outcome.train_pairs} pair observations; {outcome.evaluations} parameter sets tried), "
        f"tested on the next {outcome.test_results} ({outcome.test_pairs} pair observations)."
    )
    out.print(_fit_table(outcome))
    if outcome.fallback:
        worse = [
            f"{label} {_number(mine)} > {_number(theirs)}"
            for label, mine, theirs in (
                ("log loss", outcome.searched.log_loss, outcome.default.log_loss),
                ("Brier", outcome.searched.brier, outcome.default.brier),
            )
            if mine > theirs
        ]
        out.print(
            f"The search's best scored worse than lnd's defaults on the test results ({', '.join(worse)}): "
            "keeping the defaults (fallback)."
        )
    lnd = outcome.lnd
    if lnd is None:
        out.print(f"lnd has no {estimator} estimator: there is no lnd setting for it.")
        return
    applied = "lnd's defaults" if outcome.fallback else "the fitted parameters"
    out.print(f"Apply {applied} to lnd at run time:", markup=False)
    out.print(f"  {lnd[0]}", markup=False)
    out.print("or in lnd.conf, section [routerrpc]:", markup=False)
    for line in lnd[1].splitlines():
        out.print(f"  {line}", markup=False)
