"""Are the probabilities right? Scoring estimators on a node's own history.

:func:`evaluate` replays a history of payment results and scores every estimator's predictions
*before* it learns from each result; :class:`Evaluator` is the same, one result at a time,
for a history read from a store; :class:`Calibration` keeps the scores of any stream of
predictions and outcomes.

The semantics, exactly (mcstore's issue 20):

* Results are applied in the order given, which must be key order (``time_reply_ns``, ``id``,
  source pubkey, as a store returns them and as :func:`~mcstore.mission.open_mission_control`
  replays them), to one :class:`~mcstore.mission.MissionControlState` (lnd's rules; the
  default ``min_failure_relax_interval``, 60 s).
* For each result, with the state as it was *before* applying it and ``now_ns =
  result.time_fwd_ns``:

  - **pair observations**: every entry of ``interpret_result(result).pair_results``. A
    success at amount ``a`` is outcome 1 at ``a``; a failure with ``amount_msat > 0`` is
    outcome 0 at that amount; a failure of amount 0 (amount-independent) is not scored, only
    counted (``amount_independent``).
  - the **prediction** for a pair ``(from, to)`` at amount ``a``: if ``from`` is our own node,
    ``estimator.local_pair_probability(now_ns, state.results_from(from), to)``; otherwise
    ``estimator.pair_probability(now_ns, state.results_from(from), to, a, capacity_sat)`` with
    the channel's capacity from the :class:`~mcstore.mission.ChannelGraph`, looked up by the
    route's channel id for that pair first, then by the node pair. A non-local pair with no
    known capacity is not scored, only counted (``no_capacity``); our own channels need no
    capacity (the local estimate ignores it).
  - the **route observation**: the product, over the route's hops ``i``, of the prediction for
    the pair (node before hop ``i``, hop ``i``'s pubkey) at the amount that channel carries
    (``total_amount_msat`` for hop 0, else ``hops[i-1].amount_to_forward_msat``); outcome 1
    if the result is a success. A route with a non-local hop of unknown capacity is skipped
    (counted in ``routes_no_capacity``), and so is a route without hops (it names no channel).
  - then the result is applied to the state.

* Scores, per estimator, for the pairs and for the routes: the Brier score, the mean of
  ``(p - y)**2``; the log loss, the mean of ``-(y ln q + (1 - y) ln(1 - q))`` with ``q`` = ``p``
  clipped to [1e-6, 1 - 1e-6]; and (pairs) ten reliability bins, a prediction falling in bin
  ``min(int(p * 10), 9)``, each with its bounds ``k/10`` and ``(k+1)/10``, its count, the mean
  prediction and the observed frequency of outcome 1 (both None when the bin is empty).

Memory does not grow with the history: an :class:`Evaluator` holds the pair state and a few
counters per estimator, and scores each result as it comes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias

from ..model import PaymentResult
from .estimators import Estimator, TunableEstimator
from .graph import ChannelGraph
from .interpretation import _interpret, _Raw
from .registry import ESTIMATORS
from .state import MissionControlState, _check_pubkey

__all__ = [
    "BINS",
    "LOG_LOSS_CLIP",
    "Calibration",
    "EstimatorScores",
    "Evaluation",
    "Evaluator",
    "ReliabilityBin",
    "Replay",
    "Scores",
    "default_estimators",
    "evaluate",
]

LOG_LOSS_CLIP: Final = 1e-6
"""Predictions are clipped to [LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP] for the log loss (so a
confident mistake costs at most -ln(1e-6) = 13.8, not infinity)."""
BINS: Final = 10
"""Reliability bins: a prediction ``p`` falls in bin ``min(int(p * 10), 9)``."""

logger = logging.getLogger("mcstore.mission")

_LO: Final = LOG_LOSS_CLIP
_HI: Final = 1.0 - LOG_LOSS_CLIP
_log = math.log

PairObservation: TypeAlias = tuple[bytes, bytes, int, int | None, bool]
"""``(from, to, amount_msat, capacity_sat or None for our own channel, outcome)``."""
RouteHop: TypeAlias = tuple[bytes, bytes, int, int | None]
"""``(from, to, amount_msat carried, capacity_sat or None for our own channel)``."""


# -- scores ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One bin of a reliability diagram: predictions in [``lo``, ``hi``) (the last bin includes 1)."""

    lo: float
    hi: float
    count: int
    mean_predicted: float | None
    """The mean prediction in the bin; None when it is empty."""
    observed: float | None
    """The frequency of outcome 1 in the bin; None when it is empty."""

    def to_json(self) -> dict[str, object]:
        """``{"lo", "hi", "count", "mean_predicted", "observed"}`` (null for an empty bin's means)."""
        return {
            "lo": self.lo,
            "hi": self.hi,
            "count": self.count,
            "mean_predicted": self.mean_predicted,
            "observed": self.observed,
        }


@dataclass(frozen=True, slots=True)
class Scores:
    """How well a set of predictions matched their outcomes."""

    count: int
    """The number of predictions scored."""
    brier: float | None
    """The mean of (p - y)**2, in [0, 1]: 0 is perfect, 0.25 is what p = 0.5 always scores. None if count is 0."""
    log_loss: float | None
    """The mean of -(y ln q + (1-y) ln(1-q)), q = p clipped to [1e-6, 1-1e-6]: 0 is perfect,
    ln 2 = 0.693 is what p = 0.5 always scores. None if count is 0."""
    bins: tuple[ReliabilityBin, ...]
    """The ten reliability bins, from [0, 0.1) to [0.9, 1]."""

    def to_json(self, *, bins: bool = True) -> dict[str, object]:
        """``{"count", "brier", "log_loss", "bins": [...]}`` (without ``bins`` if ``bins`` is False).

        Args:
            bins: Whether to include the reliability bins.
        """
        document: dict[str, object] = {"count": self.count, "brier": self.brier, "log_loss": self.log_loss}
        if bins:
            document["bins"] = [b.to_json() for b in self.bins]
        return document


class Calibration:
    """Running scores of predictions against outcomes: :meth:`add` each, read :meth:`scores`.

    O(1) memory and time per prediction.

    Args:
        name: What is scored (an estimator's name, say), used in errors.
    """

    __slots__ = ("_bin_count", "_bin_outcomes", "_bin_predicted", "_brier", "_log_loss", "count", "name")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.count = 0
        """Predictions added so far."""
        self._brier = 0.0
        self._log_loss = 0.0
        self._bin_count = [0] * BINS
        self._bin_predicted = [0.0] * BINS
        self._bin_outcomes = [0] * BINS

    def add(self, probability: float, outcome: bool) -> None:
        """Score one prediction ``probability`` of an event whose ``outcome`` is True (1) or False (0).

        Args:
            probability: The predicted probability of the event, in [0, 1].
            outcome: Whether the event happened.

        Raises:
            ValueError: ``probability`` is not in [0, 1] (the message names :attr:`name`).
        """
        p = probability
        if not 0.0 <= p <= 1.0:
            who = f"{self.name}: " if self.name else ""
            raise ValueError(f"{who}a probability must be in [0, 1], got {p!r}")
        q = _LO if p < _LO else _HI if p > _HI else p
        k = int(p * 10)
        if k > BINS - 1:
            k = BINS - 1
        self.count += 1
        self._bin_count[k] += 1
        self._bin_predicted[k] += p
        if outcome:
            d = 1.0 - p
            self._log_loss -= _log(q)
            self._bin_outcomes[k] += 1
        else:
            d = p
            self._log_loss -= _log(1.0 - q)
        self._brier += d * d

    @property
    def log_loss_total(self) -> float:
        """The summed log loss so far (0 before the first prediction); it never decreases."""
        return self._log_loss

    @property
    def log_loss(self) -> float | None:
        """The log loss so far (None before the first prediction)."""
        return self._log_loss / self.count if self.count else None

    def scores(self) -> Scores:
        """The scores of every prediction added so far."""
        n = self.count
        bins = tuple(
            ReliabilityBin(
                k / BINS,
                (k + 1) / BINS,
                c,
                self._bin_predicted[k] / c if c else None,
                self._bin_outcomes[k] / c if c else None,
            )
            for k, c in enumerate(self._bin_count)
        )
        return Scores(n, self._brier / n if n else None, self._log_loss / n if n else None, bins)


# -- the evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EstimatorScores:
    """One estimator's scores on a history."""

    name: str
    params: Mapping[str, float | int]
    """The estimator's parameters, by constructor keyword (seconds, msat)."""
    pairs: Scores
    routes: Scores

    def to_json(self) -> dict[str, object]:
        """``{"params": {...}, "pairs": {..., "bins": [...]}, "routes": {"count", "brier", "log_loss"}}``."""
        return {"params": dict(self.params), "pairs": self.pairs.to_json(), "routes": self.routes.to_json(bins=False)}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What :func:`evaluate` found: the observations, and each estimator's scores."""

    self_pubkey: bytes | None
    """Our own node (None only for an empty history evaluated without one)."""
    results: int
    """Results replayed."""
    pairs: int
    """Pair observations scored (the same for every estimator)."""
    amount_independent: int
    """Pair failures of amount 0: counted, not scored."""
    no_capacity: int
    """Pair observations of a non-local channel whose capacity the graph does not know: counted, not scored."""
    routes: int
    """Routes scored."""
    routes_no_capacity: int
    """Routes skipped because a non-local hop's capacity is unknown."""
    sources: frozenset[bytes]
    """The source pubkeys of the results (normally one: the node whose history this is)."""
    estimators: Mapping[str, EstimatorScores]
    """The scores by estimator name, in the order the estimators were given."""

    def to_json(self) -> dict[str, object]:
        """The document that ``mcstore eval --json`` prints.

        Its shape::

            {"self_pubkey": hex, "results": n,
             "observations": {"pairs": n, "amount_independent": n, "no_capacity": n, "routes": n,
                              "routes_no_capacity": n},
             "estimators": {name: {"params": {...}, "pairs": {...}, "routes": {...}}, ...}}
        """
        return {
            "self_pubkey": None if self.self_pubkey is None else self.self_pubkey.hex(),
            "results": self.results,
            "observations": {
                "pairs": self.pairs,
                "amount_independent": self.amount_independent,
                "no_capacity": self.no_capacity,
                "routes": self.routes,
                "routes_no_capacity": self.routes_no_capacity,
            },
            "estimators": {name: scores.to_json() for name, scores in self.estimators.items()},
        }


def default_estimators() -> dict[str, TunableEstimator]:
    """Every named estimator (:data:`~mcstore.mission.ESTIMATORS`) with its default parameters."""
    return {name: cls() for name, cls in ESTIMATORS.items()}


class Replay:
    """What evaluation and fitting share: the pair state, our node, the graph, and what each
    result says before it is applied (:meth:`observe`), then applying it (:meth:`apply`).
    Not used directly: see :class:`Evaluator` and :class:`~mcstore.mission.RecordedHistory`.
    """

    def __init__(
        self,
        graph: ChannelGraph,
        *,
        self_pubkey: bytes | None = None,
        state: MissionControlState | None = None,
    ) -> None:
        if not isinstance(graph, ChannelGraph):
            raise TypeError(f"graph must be a ChannelGraph, got {type(graph).__name__}")
        self.graph: Final = graph
        self.state: MissionControlState = MissionControlState() if state is None else state
        """The pair state, as of the results applied so far."""
        me = None if self_pubkey is None else _check_pubkey(type(self).__name__, "self_pubkey", self_pubkey)
        self.self_pubkey: bytes | None = me
        """Our node: given, or else the source of the first result."""
        self.results = 0
        self.pairs = 0
        self.amount_independent = 0
        self.no_capacity = 0
        self.routes = 0
        self.routes_no_capacity = 0
        self.sources: set[bytes] = set()
        # The last result observed and its interpretation, so that applying it does not
        # interpret it again (interpretation is a good part of a replay's cost).
        self._observed: tuple[PaymentResult, _Raw] | None = None

    def observe(self, result: PaymentResult) -> tuple[list[PairObservation], list[RouteHop] | None]:
        """The scored pair observations of ``result`` and its route's hops (None: not scored),
        counting what is not scored. Does not apply ``result``. ``TypeError`` for a non-result."""
        if not isinstance(result, PaymentResult):
            raise TypeError(f"expected a PaymentResult, got {type(result).__name__}: {result!r}")
        self.results += 1
        route = result.route
        source = route.source_pubkey
        self.sources.add(source)
        me = self.self_pubkey
        if me is None:
            me = self.self_pubkey = source
        raw = _interpret(result)
        self._observed = (result, raw)
        hops = route.hops
        if not hops:
            return [], None
        capacity_of = self.graph.capacity
        # The route's channels, each with the amount it carried and its capacity (None: ours).
        route_hops: list[RouteHop] = []
        hop_of: dict[tuple[bytes, bytes], int] = {}  # a pair met twice: the later hop, as in the interpretation
        unknown = False
        frm = source
        carried = route.total_amount_msat
        for hop in hops:
            to = hop.pubkey
            capacity: int | None = None
            if frm != me:
                capacity = capacity_of(frm, to, hop.channel_id)
                unknown = unknown or capacity is None
            hop_of[(frm, to)] = len(route_hops)
            route_hops.append((frm, to, carried, capacity))
            frm = to
            carried = hop.amount_to_forward_msat
        observations: list[PairObservation] = []
        for (frm, to), (success, amount) in raw.pairs.items():
            if not success and amount == 0:
                self.amount_independent += 1
                continue
            capacity = None
            if frm != me:
                j = hop_of.get((frm, to))
                capacity = route_hops[j][3] if j is not None else capacity_of(frm, to)
                if capacity is None:
                    self.no_capacity += 1
                    continue
            observations.append((frm, to, amount, capacity, success))
        self.pairs += len(observations)
        if unknown:
            self.routes_no_capacity += 1
            return observations, None
        self.routes += 1
        return observations, route_hops

    def apply(self, result: PaymentResult) -> None:
        """Apply ``result`` to the state (with the interpretation :meth:`observe` made of it)."""
        observed = self._observed
        self._observed = None
        if observed is not None and observed[0] is result:
            self.state._apply(result, observed[1])
        else:
            self.state.apply_result(result)


class Evaluator(Replay):
    """Scores several estimators side by side on one replay of a history, one result at a time.

    ``estimators`` maps a name to an estimator (default: :func:`default_estimators`);
    ``graph`` gives the channels' capacities; ``self_pubkey`` is our node (default: the source
    of the first result). :meth:`add` each result in key order, then read :meth:`evaluation`.
    (:meth:`score` then :meth:`apply` is the same as :meth:`add`.) The state defaults to a
    new one with the estimators attached as learners (a learning estimator, such as the
    historical one, learns from what the state applies); a ``state`` passed in must have them
    attached already.

    Args:
        graph: The channels' capacities.
        estimators: The estimators to score, by name (default: :func:`default_estimators`).
        self_pubkey: Our node (default: the source of the first result).
        state: The pair history to replay into (default: a new one, with the estimators
            attached).

    Raises:
        ValueError: No estimator to evaluate.
        TypeError: An estimator that is not an :class:`~mcstore.mission.Estimator`, naming it.
    """

    def __init__(
        self,
        graph: ChannelGraph,
        estimators: Mapping[str, Estimator] | None = None,
        *,
        self_pubkey: bytes | None = None,
        state: MissionControlState | None = None,
    ) -> None:
        chosen: Mapping[str, Estimator] = default_estimators() if estimators is None else estimators
        if not chosen:
            raise ValueError("no estimator to evaluate")
        for name, estimator in chosen.items():
            if not isinstance(estimator, Estimator):
                raise TypeError(f"estimator {name!r} is a {type(estimator).__name__}, not an Estimator")
        if state is None:
            # The learning estimators (historical) learn the history from the state that replays it.
            state = MissionControlState(learners=chosen.values())
        super().__init__(graph, self_pubkey=self_pubkey, state=state)
        self._names = tuple(chosen)
        self._estimators = tuple(chosen.values())
        self._pair_scores = tuple(Calibration(name) for name in self._names)
        self._route_scores = tuple(Calibration(f"{name} routes") for name in self._names)
        self._pair_adds = tuple(c.add for c in self._pair_scores)
        self._route_adds = tuple(c.add for c in self._route_scores)

    def _predict(self, now: int, frm: bytes, to: bytes, amount: int, capacity: int | None) -> list[float]:
        results = self.state.results_from(frm)
        if capacity is None:
            return [e.local_pair_probability(now, results, to) for e in self._estimators]
        return [e.pair_probability(now, results, to, amount, capacity) for e in self._estimators]

    def score(self, result: PaymentResult) -> None:
        """Score every estimator's predictions for ``result`` from the current state; does not apply it.

        Args:
            result: The next result of the history, in key order.
        """
        observations, route = self.observe(result)
        now = result.time_fwd_ns
        predict = self._predict
        pair_adds = self._pair_adds
        # A route's hop is mostly one of the pair observations (the same channel and amount).
        predicted: dict[RouteHop, list[float]] = {}
        for frm, to, amount, capacity, outcome in observations:
            ps = predicted[(frm, to, amount, capacity)] = predict(now, frm, to, amount, capacity)
            for add, p in zip(pair_adds, ps, strict=True):
                add(p, outcome)
        if route is None:
            return
        products = [1.0] * len(self._estimators)
        for hop in route:
            known = predicted.get(hop)
            for i, p in enumerate(known if known is not None else predict(now, *hop)):
                products[i] *= p
        success = result.failure is None
        for add, p in zip(self._route_adds, products, strict=True):
            add(p, success)

    def add(self, result: PaymentResult) -> None:
        """Score ``result`` (:meth:`score`), then apply it to the state.

        Args:
            result: The next result of the history, in key order.
        """
        self.score(result)
        self.apply(result)

    def evaluation(self) -> Evaluation:
        """The scores so far (and an INFO log line of the counts and the pair scores)."""
        estimators = {
            name: EstimatorScores(
                name,
                MappingProxyType(dict(e.params())) if isinstance(e, TunableEstimator) else MappingProxyType({}),
                pairs.scores(),
                routes.scores(),
            )
            for name, e, pairs, routes in zip(
                self._names, self._estimators, self._pair_scores, self._route_scores, strict=True
            )
        }
        logger.info(
            "Evaluated %d results: pairs=%d amount_independent=%d no_capacity=%d routes=%d routes_no_capacity=%d %s",
            self.results, self.pairs, self.amount_independent, self.no_capacity, self.routes, self.routes_no_capacity,
            " ".join(
                f"{name}.brier={scores.pairs.brier} {name}.log_loss={scores.pairs.log_loss}"
                for name, scores in estimators.items()
            ),
        )
        return Evaluation(
            self.self_pubkey,
            self.results,
            self.pairs,
            self.amount_independent,
            self.no_capacity,
            self.routes,
            self.routes_no_capacity,
            frozenset(self.sources),
            MappingProxyType(estimators),
        )


def check_single_source(sources: Iterable[bytes]) -> None:
    """Raise ``ValueError`` listing the sources if there are several (our node is then ambiguous)."""
    found = sorted(set(sources))
    if len(found) > 1:
        raise ValueError(
            f"the results come from {len(found)} source nodes ({', '.join(s.hex() for s in found)}); "
            "say which one is ours (self_pubkey, --self)"
        )


def evaluate(
    results: Iterable[PaymentResult],
    *,
    graph: ChannelGraph,
    estimators: Mapping[str, Estimator] | None = None,
    self_pubkey: bytes | None = None,
    min_failure_relax_interval: float = 60.0,
) -> Evaluation:
    """Score ``estimators`` (default: every named one, lnd's defaults) on the history ``results``.

    ``results`` must be in key order (as a store's ``fetch_all`` or ``iter_results`` gives
    them); they are read once, streamed. Pure: reads nothing but its arguments. See the
    module's docstring for the exact semantics.

    Args:
        results: The history, in key order.
        graph: The channels' capacities.
        estimators: The estimators to score, by name (default: every named one, with lnd's
            defaults).
        self_pubkey: Our node (default: the source of the results).
        min_failure_relax_interval: lnd's ``MinimumFailureRelaxInterval`` of the replay, in
            seconds.

    Raises:
        ValueError: The results have several sources and no ``self_pubkey`` was given (the
            message lists them), or an estimator returned a probability outside [0, 1] (the
            message names it).
    """
    chosen = default_estimators() if estimators is None else estimators
    state = MissionControlState(min_failure_relax_interval, learners=chosen.values())
    evaluator = Evaluator(graph, chosen, self_pubkey=self_pubkey, state=state)
    for result in results:
        evaluator.add(result)
    if self_pubkey is None:
        check_single_source(evaluator.sources)
    return evaluator.evaluation()
