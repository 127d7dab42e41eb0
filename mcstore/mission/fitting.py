"""Fitting an estimator's parameters to a node's own history: :func:`fit`.

The history is split in key order: the last ``test_fraction`` of the results are the test
set, the rest the training set. The pair state is replayed through all of them, as
:func:`~mcstore.mission.evaluate` does (the state never depends on an estimator), and the
parameters are searched to minimise the pair log loss on the training results; both the
defaults and the fitted parameters are then scored on the test results. If the fitted ones
score worse than the defaults there, by log loss or by Brier score, the defaults are kept
(``fallback``): a fit never makes things worse on data it did not see.

The search is coordinate descent over the estimator's :class:`~mcstore.mission.Parameter`
ranges, in log space for the ``log_scale`` ones: a grid of nine values per parameter in turn,
then three rounds refined around the best (steps of 1/16, 1/32 and 1/64 of the range); a
value is rounded to three significant digits (log scale) or four decimals. Deterministic:
the same history gives the same parameters. About 80 parameter sets for four parameters; a
set is dropped as soon as its summed training log loss exceeds the best set's (the terms are
never negative), which changes nothing but the time.

Speed and memory: the history is replayed and interpreted once, into a
:class:`RecordedHistory`: per result, its scored pair observations and the pair-state
entries it changed. Each parameter set is scored by replaying that record into plain dicts,
with no interpretation and no lnd rules to run again. The record holds every observation and
state change, so, unlike an evaluation, a fit's memory grows linearly with the history (the
docs/performance.md gives the figure measured by ``python -m benchmarks --only calibrate``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias

from ..model import PaymentResult
from .estimators import Estimator, Parameter
from .evaluation import Calibration, Replay, check_single_source
from .graph import ChannelGraph
from .registry import ESTIMATORS, make_estimator
from .state import MissionControlState, NodeResults, PairLearner, TimedPairResult

__all__ = [
    "DEFAULT_TEST_FRACTION",
    "LND_SETTINGS",
    "FitResult",
    "FitScores",
    "LndSetting",
    "RecordedHistory",
    "fit",
    "lnd_settings",
]

logger = logging.getLogger("mcstore.mission")

DEFAULT_TEST_FRACTION: Final = 0.3
"""The share of the results, the latest in key order, kept out of the search to test it."""
_GRID: Final = 9
_REFINE_STEPS: Final = (1 / 16, 1 / 32, 1 / 64)

# One recorded event: a change of the pair state, (from, to, new entry); a pair outcome told to
# the learners, (from, to, time_ns, success, amount_msat); or an observation, (now_ns, from, to,
# amount_msat, capacity_sat or None for our own channel, outcome, result index).
_Change: TypeAlias = tuple[bytes, bytes, TimedPairResult]
_Learnt: TypeAlias = tuple[bytes, bytes, int, bool, int]
_Observation: TypeAlias = tuple[int, bytes, bytes, int, int | None, bool, int]
_Event: TypeAlias = _Change | _Learnt | _Observation


class _Recorder:
    """A learner that writes what the state tells its learners into the journal."""

    __slots__ = ("journal",)

    def __init__(self, journal: list[_Event]) -> None:
        self.journal = journal

    def learn(self, from_pubkey: bytes, to_pubkey: bytes, time_ns: int, success: bool, amount_msat: int) -> None:
        self.journal.append((from_pubkey, to_pubkey, time_ns, success, amount_msat))

    def forget(self) -> None:
        """Nothing to forget: a new state starts a new journal."""


class _JournaledState(MissionControlState):
    """A state that also writes every entry it sets, and every outcome it tells learners, into
    ``journal``, in order."""

    __slots__ = ("journal",)

    def __init__(self, journal: list[_Event]) -> None:
        super().__init__(learners=(_Recorder(journal),))
        self.journal = journal

    def _set(
        self, frm: bytes, to: bytes, ts: int | None, success: bool, amt: int, force: bool, relax: int
    ) -> bool:
        applied = super()._set(frm, to, ts, success, amt, force, relax)
        entry = self._pairs[frm].get(to)  # _set always makes frm's entry
        if entry is not None:
            self.journal.append((frm, to, entry))
        return applied

    def _set_all_fail(self, node: bytes, ts: int) -> None:
        super()._set_all_fail(node, ts)
        journal = self.journal
        for to, entry in self._pairs.get(node, {}).items():
            journal.append((node, to, entry))
        for frm in self._sources.get(node, ()):
            journal.append((frm, node, self._pairs[frm][node]))


class RecordedHistory(Replay):
    """A history replayed once and recorded, to score many parameter sets quickly (see :func:`fit`).

    :meth:`add` each result in key order (or pass the results to :func:`fit`). Memory grows
    with the history (see the module's docstring).

    Args:
        graph: The channels' capacities, as for :class:`~mcstore.mission.Evaluator`.
        self_pubkey: Our node, as for :class:`~mcstore.mission.Evaluator`.
    """

    def __init__(self, graph: ChannelGraph, *, self_pubkey: bytes | None = None) -> None:
        self._events: list[_Event] = []
        super().__init__(graph, self_pubkey=self_pubkey, state=_JournaledState(self._events))

    def record(self, result: PaymentResult) -> None:
        """Record ``result``'s pair observations from the current state; does not apply it.

        Args:
            result: The next result of the history, in key order.
        """
        index = self.results
        observations, _route = self.observe(result)
        now = result.time_fwd_ns
        self._events.extend((now, frm, to, amount, capacity, outcome, index)
                            for frm, to, amount, capacity, outcome in observations)

    def add(self, result: PaymentResult) -> None:
        """Record ``result`` (:meth:`record`), then apply it to the state.

        Args:
            result: The next result of the history, in key order.
        """
        self.record(result)
        self.apply(result)

    def score(
        self,
        estimator: Estimator,
        split: int,
        *,
        train: bool = True,
        test: bool = True,
        train_limit: float = math.inf,
    ) -> tuple[Calibration, Calibration]:
        """Score ``estimator`` on the recorded pair observations: those of results before index
        ``split`` (the training set) and from it on (the test set). With ``test=False`` the
        replay stops at the first test result; it also stops as soon as the training log loss
        summed so far exceeds ``train_limit`` (the terms are never negative, so the total can
        only be larger: a search uses this to drop a worse candidate early).

        Args:
            estimator: The estimator to score (a learning one learns the history again).
            split: The index of the first test result.
            train: Whether to score the training set.
            test: Whether to score the test set.
            train_limit: Stop once the summed training log loss exceeds this.

        Returns:
            The training and the test scores.
        """
        train_scores = Calibration(f"{getattr(estimator, 'name', 'estimator')} (training)")
        test_scores = Calibration(f"{getattr(estimator, 'name', 'estimator')} (test)")
        pairs: dict[bytes, dict[bytes, TimedPairResult]] = {}
        pair_probability = estimator.pair_probability
        local_pair_probability = estimator.local_pair_probability
        # A learning estimator learns the history again, as it would attached to the state.
        learner = estimator if isinstance(estimator, PairLearner) else None
        if learner is not None:
            learner.forget()
        for event in self._events:
            if len(event) == 3:
                frm, to, entry = event
                known = pairs.get(frm)
                if known is None:
                    known = pairs[frm] = {}
                known[to] = entry
                continue
            if len(event) == 5:
                if learner is not None:
                    learner.learn(*event)
                continue
            now, frm, to, amount, capacity, outcome, index = event
            if index < split:
                if not train:
                    continue
                if train_scores.log_loss_total > train_limit:
                    break
                target = train_scores
            else:
                if not test:
                    break
                target = test_scores
            known = pairs.get(frm)
            results = NodeResults(frm, {} if known is None else known)
            if capacity is None:
                p = local_pair_probability(now, results, to)
            else:
                p = pair_probability(now, results, to, amount, capacity)
            target.add(p, outcome)
        return train_scores, test_scores


# -- lnd's settings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LndSetting:
    """How one estimator parameter is set in lnd: ``lncli setmccfg --<flag>`` and ``routerrpc.<option>``.

    ``kind`` is ``"duration"`` (seconds here, a Go duration there, whole seconds: lncli
    truncates to seconds), ``"int"`` or ``"float"``.
    """

    param: str
    flag: str
    option: str
    kind: str

    def format(self, value: float | int) -> str:
        """``value`` as lnd reads it."""
        if self.kind == "duration":
            return go_duration(value)
        if self.kind == "int":
            return str(int(value))
        return repr(float(value))


LND_SETTINGS: Final[Mapping[str, tuple[LndSetting, ...]]] = MappingProxyType({
    # lnd's cmd/commands/cmd_mission_control.go (setmccfg's flags) and
    # lnrpc/routerrpc/routing_config.go (lnd.conf's routerrpc.apriori.* and routerrpc.bimodal.*).
    "apriori": (
        LndSetting("hop_probability", "apriorihopprob", "apriori.hopprob", "float"),
        LndSetting("weight", "aprioriweight", "apriori.weight", "float"),
        LndSetting("penalty_half_life", "apriorihalflife", "apriori.penaltyhalflife", "duration"),
        LndSetting("capacity_fraction", "aprioricapacityfraction", "apriori.capacityfraction", "float"),
    ),
    "bimodal": (
        LndSetting("scale_msat", "bimodalscale", "bimodal.scale", "int"),
        LndSetting("node_weight", "bimodalweight", "bimodal.nodeweight", "float"),
        LndSetting("decay_time", "bimodaldecaytime", "bimodal.decaytime", "duration"),
    ),
})
"""The estimators lnd has, and how each of their parameters is set there."""


def go_duration(seconds: float) -> str:
    """``seconds``, rounded to a whole number, as Go's ``time.Duration.String()`` writes it (``1h0m0s``)."""
    s = max(0, round(seconds))
    if s == 0:
        return "0s"
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def lnd_settings(estimator: str, params: Mapping[str, float | int]) -> tuple[str, str] | None:
    """The ``lncli setmccfg`` command and the ``lnd.conf`` lines that set ``params`` in lnd.

    The lnd.conf lines go in its ``[routerrpc]`` section; ``routerrpc.estimator`` selects
    the estimator (lnd's default is apriori).

    Args:
        estimator: The estimator's name (``apriori``, ``bimodal``).
        params: Its parameters, by constructor keyword, in seconds and msat.

    Returns:
        The command and the lines, or None for an estimator lnd does not have.
    """
    settings = LND_SETTINGS.get(estimator)
    if settings is None:
        return None
    flags = " ".join(f"--{s.flag} {s.format(params[s.param])}" for s in settings)
    lines = [f"routerrpc.{s.option}={s.format(params[s.param])}" for s in settings]
    lines.append(f"routerrpc.estimator={estimator}")
    return f"lncli setmccfg --estimator {estimator} {flags}", "\n".join(lines)


# -- the search ----------------------------------------------------------------------------------


def _unit(p: Parameter, value: float) -> float:
    """``value``'s place in ``p``'s range, 0 at ``low`` and 1 at ``high`` (log scale if ``p`` says so)."""
    if p.high == p.low:
        return 0.0
    if p.log_scale and p.low > 0:
        return (math.log(value) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
    return (value - p.low) / (p.high - p.low)


def _value(p: Parameter, u: float) -> float | int:
    """The value at place ``u`` of ``p``'s range, rounded (3 significant digits, or 4 decimals)."""
    u = min(max(u, 0.0), 1.0)
    if p.log_scale and p.low > 0:
        v = math.exp(math.log(p.low) + u * (math.log(p.high) - math.log(p.low)))
        v = float(f"{v:.3g}")
    else:
        v = round(p.low + u * (p.high - p.low), 4)
    return p.coerce(v)


def search(
    parameters: tuple[Parameter, ...],
    objective: Callable[[dict[str, float | int], float], float],
    start: Mapping[str, float | int],
) -> tuple[dict[str, float | int], float, int]:
    """Minimise ``objective`` over ``parameters`` from ``start`` (see the module's docstring).

    ``objective(params, bound)`` returns the value of ``params``, or any value above ``bound``
    (say ``inf``) once it knows the value is above ``bound``, the best value so far: such a
    set can never become the best, since the best only improves. Returns the best parameters,
    their objective, and how many distinct sets were tried. A set must beat the best so far
    strictly to replace it, so ties keep the earlier one.
    """
    tried: dict[tuple[float | int, ...], float] = {}
    best_value = math.inf

    def value(params: dict[str, float | int]) -> float:
        key = tuple(params[p.name] for p in parameters)
        found = tried.get(key)
        if found is None:
            found = tried[key] = objective(params, best_value)
            logger.debug("Fit candidate %d: %s objective=%r", len(tried), params, found)
        return found

    best = dict(start)
    best_value = value(best)
    for step in (None, *_REFINE_STEPS):
        for p in parameters:
            if step is None:
                places = [k / (_GRID - 1) for k in range(_GRID)]
            else:
                here = _unit(p, best[p.name])
                places = [here + d * step for d in (-2, -1, 1, 2)]
            for u in places:
                candidate = dict(best)
                candidate[p.name] = _value(p, u)
                v = value(candidate)
                if v < best_value:
                    best, best_value = candidate, v
    return best, best_value, len(tried)


# -- the fit -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FitScores:
    """One parameter set and its scores on the test results' pair observations."""

    params: Mapping[str, float | int]
    log_loss: float
    brier: float
    train_log_loss: float
    """The pair log loss on the training results (what the search minimised)."""

    def to_json(self) -> dict[str, object]:
        """``{"params": {...}, "log_loss": x, "brier": x, "train_log_loss": x}``."""
        return {
            "params": dict(self.params),
            "log_loss": self.log_loss,
            "brier": self.brier,
            "train_log_loss": self.train_log_loss,
        }


@dataclass(frozen=True, slots=True)
class FitResult:
    """What :func:`fit` found."""

    estimator: str
    self_pubkey: bytes | None
    train_results: int
    test_results: int
    train_pairs: int
    """Pair observations scored in the training results."""
    test_pairs: int
    """Pair observations scored in the test results."""
    default: FitScores
    """lnd's defaults (the estimator's), scored."""
    fitted: FitScores
    """The fitted parameters, scored; the defaults again if :attr:`fallback`."""
    fallback: bool
    """The search's best scored worse than the defaults on the test results, so the defaults are kept."""
    searched: FitScores
    """The search's best parameters, scored (the same as :attr:`fitted` unless :attr:`fallback`)."""
    evaluations: int
    """Parameter sets scored during the search."""

    @property
    def lnd(self) -> tuple[str, str] | None:
        """The ``lncli setmccfg`` command and ``lnd.conf`` lines for :attr:`fitted` (None if lnd
        lacks the estimator)."""
        return lnd_settings(self.estimator, self.fitted.params)

    def to_json(self) -> dict[str, object]:
        """The shape of ``mcstore fit --json``: ``{"estimator", "train_results", "test_results",
        "default": {...}, "fitted": {...}, "lncli", "lnd_conf", ...}``; ``lncli`` and ``lnd_conf``
        are null for an estimator lnd does not have (``lnd`` then says so)."""
        lnd = self.lnd
        return {
            "estimator": self.estimator,
            "train_results": self.train_results,
            "test_results": self.test_results,
            "default": self.default.to_json(),
            "fitted": self.fitted.to_json(),
            "lncli": None if lnd is None else lnd[0],
            "lnd_conf": None if lnd is None else lnd[1],
            "lnd": None if lnd is not None else f"lnd has no {self.estimator} estimator: no lnd setting",
            "fallback": self.fallback,
            "searched": self.searched.to_json(),
            "evaluations": self.evaluations,
            "self_pubkey": None if self.self_pubkey is None else self.self_pubkey.hex(),
            "train_pairs": self.train_pairs,
            "test_pairs": self.test_pairs,
        }


def split_index(results: int, test_fraction: float) -> int:
    """The index of the first test result: the last ``floor(results * test_fraction)`` are the test set."""
    return results - math.floor(results * test_fraction + 1e-9)


def fit(
    history: RecordedHistory | Iterable[PaymentResult],
    estimator: str,
    *,
    graph: ChannelGraph | None = None,
    self_pubkey: bytes | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> FitResult:
    """Fit the parameters of the estimator named ``estimator`` to ``history`` (see the module's docstring).

    Pure and synchronous; CPU-bound (seconds to minutes for 10k to 100k results).

    Args:
        history: A :class:`RecordedHistory`, or the results in key order.
        estimator: The name of the estimator to fit (:data:`ESTIMATORS`).
        graph: The channels' capacities; required when ``history`` is results.
        self_pubkey: Our node; by default the source of the results, as for
            :func:`~mcstore.mission.evaluate`.
        test_fraction: The share of the results, the last ones, that the search never sees
            and the fit is tested on, in (0, 1).

    Raises:
        ValueError: An unknown estimator, a ``test_fraction`` outside (0, 1), several sources
            without ``self_pubkey``, or a split with no scored pair observation on either side
            (too short a history), saying which.
        TypeError: Results without ``graph``.
    """
    started = time.perf_counter()
    cls = ESTIMATORS.get(estimator)
    if cls is None:
        raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if isinstance(history, RecordedHistory):
        recorded = history
    else:
        if graph is None:
            raise TypeError("fit() needs graph= to score a history of results")
        recorded = RecordedHistory(graph, self_pubkey=self_pubkey)
        for result in history:
            recorded.add(result)
        if self_pubkey is None:
            check_single_source(recorded.sources)
    total = recorded.results
    split = split_index(total, test_fraction)
    default_model = cls()
    train, test = recorded.score(default_model, split)
    if not train.count or not test.count:
        raise ValueError(
            f"too little history to fit: {total} results give {split} training results with {train.count} "
            f"scored pair observations and {total - split} test results with {test.count}; "
            "both need at least one"
        )

    def train_log_loss(params: dict[str, float | int], bound: float) -> float:
        # Stop once the summed log loss shows the mean will exceed the best's (exact pruning;
        # the margin keeps float rounding from dropping a set that would have been the best).
        limit = bound * train.count * (1 + 1e-9)
        scores, _ = recorded.score(make_estimator(estimator, params), split, test=False, train_limit=limit)
        if scores.count < train.count:
            return math.inf
        return scores.log_loss if scores.log_loss is not None else math.inf

    def scored(params: Mapping[str, float | int], train_loss: float) -> FitScores:
        model = make_estimator(estimator, params)
        _, on_test = recorded.score(model, split, train=False)
        s = on_test.scores()
        assert s.log_loss is not None and s.brier is not None  # test.count > 0
        return FitScores(MappingProxyType(dict(model.params())), s.log_loss, s.brier, train_loss)

    defaults = dict(default_model.params())
    best, best_loss, evaluations = search(cls.parameters, train_log_loss, defaults)
    default_scores = scored(defaults, train.log_loss if train.log_loss is not None else math.inf)
    searched = scored(best, best_loss)
    fallback = searched.log_loss > default_scores.log_loss or searched.brier > default_scores.brier
    logger.info(
        "Fitted %s: train_results=%d test_results=%d evaluations=%d default=%s fitted=%s "
        "test_log_loss=%r->%r test_brier=%r->%r fallback=%s seconds=%.3f",
        estimator, split, total - split, evaluations, defaults, dict(searched.params), default_scores.log_loss,
        searched.log_loss, default_scores.brier, searched.brier, fallback, time.perf_counter() - started,
    )
    return FitResult(
        estimator,
        recorded.self_pubkey,
        split,
        total - split,
        train.count,
        test.count,
        default_scores,
        default_scores if fallback else searched,
        fallback,
        searched,
        evaluations,
    )
