"""The learning demo's payments: routed by success probability over a network with hidden balances.

Every channel of the demo's network (:class:`~mcstore.cli.demo.SyntheticNetwork`, or a
:class:`~mcstore.cli.demo.GraphNetwork` over a real topology) gets a hidden
balance: how much of its capacity sits on each side. Nobody outside the channel knows it,
as on the real network. A payment succeeds only when every node on its route has enough
balance on its side of the outgoing channel; the first one that has not fails the attempt
with ``temporary_channel_failure``, the failure that tells mission control "this channel
could not forward this amount". A few channels lead to a peer that is offline
(``unknown_next_peer``), and a few payments are refused by their recipient
(``incorrect_or_unknown_payment_details``: an expired invoice, say), so that failures are
not all alike. Balances are drawn one of three ways (:data:`BALANCES`): by default Beta(0.3,
0.3) of the capacity, so that most channels hold most of their capacity on one side, as
observed on the real network; uniform in [0, capacity]; or "bimodal", within an exponential
distance of 300k sat (lnd's bimodal scale) of either end, the assumption of lnd's bimodal
estimator. The demo's own payments are small next to the
network's traffic and do not move balances; that traffic instead gives one random channel a
fresh balance before one payment in ten, so that what mission control learnt slowly ages.

:class:`RoutedPayments` pays from the network's own node. Each attempt's route is found by
:func:`find_route`, a Dijkstra search from the recipient back to the sender (as lnd's
``findPath`` in ``routing/pathfind.go`` does, so that the amount each hop must carry is known)
over a distance that weighs fees by the success probability: the route's fees and time-lock
penalty, plus an *attempt cost* divided by the route's probability (the product of its
channels' probabilities). The probabilities come from a :data:`ProbabilitySource`, in the
demo mission control's :meth:`~mcstore.mission.MissionControl.probability`; without one
every channel counts as certain, and the search is a plain cheapest-route search that
remembers only the failures of the payment at hand. A failed attempt is reported before
the next route is searched, so that the retry goes along the next best route. The search
weighs a channel's probability only when the route through it could still be the best one:
a node the search has reached more cheaply, or farther than a route already found, is not
weighed again (distances only grow towards the sender), which keeps the number of
probability queries to a few hundred a search over the real network's 10,000 channels.

:func:`calibration_rows` shows the calibration of a run (the demo's
:class:`~mcstore.mission.Evaluator`, see :func:`~mcstore.cli.ingest.run_demo`) in its summary.

Deterministic: the same network, seed, start time and probability source give the same
results.
"""

from __future__ import annotations

import heapq
import importlib.util
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from ..mission import Evaluation
from ..model import (
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    TEMPORARY_CHANNEL_FAILURE,
    UNKNOWN_NEXT_PEER,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)
from .demo import Channel, Network
from .demo import _failure_payload as failure_payload

__all__ = [
    "ATTEMPT_COST_MSAT",
    "ATTEMPT_COST_PPM",
    "BALANCES",
    "BIMODAL_BALANCE_SCALE_MSAT",
    "MAX_ATTEMPTS",
    "MIN_ROUTE_PROBABILITY",
    "RISK_FACTOR_BILLIONTHS",
    "FoundRoute",
    "HiddenLiquidity",
    "Learning",
    "PaymentOutcome",
    "PlotUnavailable",
    "ProbabilitySource",
    "RoutedPayments",
    "calibration_rows",
    "check_plotting",
    "find_route",
    "learning",
    "plot_success",
    "score_text",
    "success_curve",
]

ProbabilitySource = Callable[[bytes, bytes, int, int, int], float]
"""``(from_pubkey, to_pubkey, amount_msat, capacity_sat, now_ns) -> probability`` of a channel."""

# lnd's pathfinding defaults (routing/pathfind.go, routerrpc config).
ATTEMPT_COST_MSAT: Final = 100_000
"""The fixed virtual cost of a failed attempt (lnd's ``AttemptCost``, 100 sat)."""
ATTEMPT_COST_PPM: Final = 1000
"""The proportional virtual cost of a failed attempt, in ppm of the amount (``AttemptCostPPM``)."""
MIN_ROUTE_PROBABILITY: Final = 0.01
"""Routes less likely than this are not tried (lnd's ``DefaultMinRouteProbability``)."""
RISK_FACTOR_BILLIONTHS: Final = 15
"""The weight of the amount locked times the CLTV delta (lnd's ``RiskFactorBillionths``)."""
MAX_ROUTE_HOPS: Final = 20
"""The longest route BOLT 4's onion carries."""
MAX_ATTEMPTS: Final = 3
"""Attempts per payment before the demo gives it up (lnd gives up after a timeout instead)."""

_MS: Final = 1_000_000
_S: Final = 1_000_000_000
_MEAN_PAYMENT_GAP_S: Final = 1.5
_OFFLINE_SHARE: Final = 0.03
"""Share of channels whose far end is offline, so that forwarding into them fails."""
_REFUSED_SHARE: Final = 0.02
"""Share of payments that the recipient refuses (an expired or already paid invoice)."""
_RESHUFFLE_SHARE: Final = 0.1
"""Share of payments before which the rest of the network's traffic rebalances one channel."""
_BALANCE_SHAPE: Final = 0.3
"""Balances follow Beta(0.3, 0.3): most channels hold most of their capacity on one side, as on
the real network (the premise of lnd's bimodal estimator)."""
_BLOCK_HEIGHT: Final = 870_000


def _amount_msat(rng: random.Random, exponents: tuple[float, float]) -> int:
    # Log-uniform (the network's range: from 100 sat to 1_000_000 sat for the synthetic one):
    # most payments are small, a few are large.
    return int(10 ** rng.uniform(*exponents)) // 1000 * 1000


BALANCES: Final = {
    "beta": "Beta(0.3, 0.3) of the capacity on either side",
    "uniform": "uniform in [0, capacity]",
    "bimodal": "within an exponential distance (mean 300,000 sat, lnd's bimodal scale) of one end, "
    "either end with even odds",
}
"""How :class:`HiddenLiquidity` may draw a channel's balance: name -> what it is."""
BIMODAL_BALANCE_SCALE_MSAT: Final = 300_000_000
"""The mean distance from the channel's end of a "bimodal" balance: lnd's default bimodal scale."""


def _draw_balance(rng: random.Random, channel: Channel, balances: str = "beta") -> int:
    """What ``channel.node_a`` can send over ``channel``, in msat, drawn as :data:`BALANCES` says."""
    capacity_msat = channel.capacity_sat * 1000
    if balances == "beta":
        return int(rng.betavariate(_BALANCE_SHAPE, _BALANCE_SHAPE) * capacity_msat)
    if balances == "uniform":
        return rng.randint(0, capacity_msat)
    # bimodal: the assumption behind lnd's bimodal estimator, liquidity ~ exp(-x/s) + exp(-(c-x)/s).
    distance = min(capacity_msat, int(rng.expovariate(1 / BIMODAL_BALANCE_SCALE_MSAT)))
    return distance if rng.random() < 0.5 else capacity_msat - distance


class HiddenLiquidity:
    """Where each channel's capacity sits, in msat: known to the simulation only.

    Balances are drawn as ``balances`` (one of :data:`BALANCES`) says, deterministic for
    ``seed``. Channels of ``network.source`` are the payer's own: it knows their balances, so
    they are never the bottleneck of a route, and they are left out.
    """

    def __init__(self, network: Network, seed: int, balances: str = "beta") -> None:
        if balances not in BALANCES:
            raise ValueError(f"balances must be one of {', '.join(BALANCES)}, got {balances!r}")
        rng = random.Random(f"mcstore-liquidity-{seed}")
        self._network = network
        self._balances = balances
        self._side_a: dict[int, int] = {}
        self.offline: frozenset[int] = frozenset()
        offline: set[int] = set()
        for channel in network.channels:
            self._side_a[channel.scid] = _draw_balance(rng, channel, balances)
            if network.source not in (channel.node_a, channel.node_b) and rng.random() < _OFFLINE_SHARE:
                offline.add(channel.scid)
        self.offline = frozenset(offline)

    def balance(self, channel: Channel, node: int) -> int:
        """How much ``node`` (one end of ``channel``) can send over it, in msat."""
        side_a = self._side_a[channel.scid]
        return side_a if node == channel.node_a else channel.capacity_sat * 1000 - side_a

    def reshuffle(self, channel: Channel, rng: random.Random) -> None:
        """Give ``channel`` a new random balance (other payments went through it)."""
        self._side_a[channel.scid] = _draw_balance(rng, channel, self._balances)


@dataclass(frozen=True, slots=True)
class FoundRoute:
    """A route found by :func:`find_route`, from the source to the recipient."""

    path: tuple[tuple[Channel, int], ...]
    """``(channel, node reached)`` per hop, the source's own channel first."""
    receives_msat: tuple[int, ...]
    """What each node of the path receives over its incoming channel; the last is the amount."""
    total_msat: int
    """What the source sends: the amount plus every fee."""
    probability: float
    """The product of the channels' probabilities at search time."""


def _attempt_cost(amount_msat: int) -> float:
    return float(ATTEMPT_COST_MSAT + amount_msat * ATTEMPT_COST_PPM // 1_000_000)


def find_route(
    network: Network,
    target: int,
    amount_msat: int,
    now_ns: int,
    probability: ProbabilitySource | None,
    *,
    excluded: frozenset[tuple[int, int]] = frozenset(),
) -> FoundRoute | None:
    """The best route from ``network.source`` that delivers ``amount_msat`` to ``target``, or None.

    The distance of a partial route (from some node to ``target``) is, as in lnd's pathfinding,
    its weight (fees plus ``amount * cltv_delta * 15e-9``) plus the attempt cost divided by
    its probability. A channel that cannot carry the amount (its public capacity is smaller),
    whose probability is 0, that brings the route's probability below
    :data:`MIN_ROUTE_PROBABILITY`, or whose directed pair ``(from_node, to_node)`` is in
    ``excluded``, is skipped. ``probability=None`` counts every channel as certain.
    """
    source = network.source
    pubkeys = network.pubkeys
    peers = network.peers
    push = heapq.heappush
    attempt_cost = _attempt_cost(amount_msat)
    # Per node: (distance, weight, probability, amount it must receive, next channel, next node).
    best: dict[int, tuple[int, int, float, int, Channel | None, int]] = {target: (0, 0, 1.0, amount_msat, None, -1)}
    settled: set[int] = set()
    hops: dict[int, int] = {target: 0}
    queue: list[tuple[int, int]] = [(0, target)]
    # The distance of the best route found so far: distances only grow towards the source, so a
    # node farther than that cannot be on the route (it would be settled after the source).
    found = math.inf
    while queue:
        _, node = heapq.heappop(queue)
        if node in settled:
            continue
        settled.add(node)
        if node == source:
            break
        _dist, weight, route_probability, receives, _channel, _next = best[node]
        if hops[node] >= MAX_ROUTE_HOPS:
            continue
        # The attempt cost of a route through here is at least this (a channel's probability is
        # at most 1): a sender already reached more cheaply than that need not be weighed.
        least_cost = attempt_cost / route_probability
        for channel in peers[node]:
            sender = channel.node_b if channel.node_a == node else channel.node_a
            if sender in settled or (sender, node) in excluded:
                continue
            capacity_sat = channel.capacity_sat
            if receives > capacity_sat * 1000:
                continue
            if sender == source:
                # We pay no fee to ourselves, and our own CLTV delta adds no risk.
                fee, delta = 0, 0
            else:
                policy = channel.policy_of(sender)
                fee, delta = policy.fee(receives), policy.cltv_delta
            new_weight = weight + fee + receives * delta * RISK_FACTOR_BILLIONTHS // 1_000_000_000
            least = int(new_weight + least_cost)
            if least > found:
                continue
            current = best.get(sender)
            if current is not None and least > current[0]:
                continue  # its distance would be larger still: the probability cannot change that
            if probability is None:
                edge_probability = 1.0
            else:
                edge_probability = probability(pubkeys[sender], pubkeys[node], receives, capacity_sat, now_ns)
                if not edge_probability > 0.0:  # also catches NaN
                    continue
            joint = route_probability * edge_probability
            if joint < MIN_ROUTE_PROBABILITY:
                continue
            distance = int(new_weight + attempt_cost / joint)
            if current is not None and (distance, -joint) >= (current[0], -current[2]):
                continue
            best[sender] = (distance, new_weight, joint, receives + fee, channel, node)
            hops[sender] = hops[node] + 1
            push(queue, (distance, sender))
            if sender == source:
                found = distance
    if source not in settled:
        return None
    path: list[tuple[Channel, int]] = []
    receives_list: list[int] = []
    node = source
    total = best[source][3]
    probability_of_route = best[source][2]
    while node != target:
        _d, _w, _p, _r, via, next_node = best[node]
        assert via is not None
        path.append((via, next_node))
        receives_list.append(best[next_node][3])
        node = next_node
    return FoundRoute(tuple(path), tuple(receives_list), total, probability_of_route)


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """How one payment of :meth:`RoutedPayments.run` ended."""

    index: int
    """0 for the first payment of the run."""
    amount_msat: int
    attempts: int
    """Attempts made (0 when no route was found at all)."""
    succeeded: bool


class RoutedPayments:
    """Payments from ``network.source`` to random recipients, routed by success probability.

    ``probability`` is asked about each channel while a route is searched (None: every
    channel is certain, and only the current payment's failures are avoided).
    :attr:`outcomes` lists the payments that have ended, each one before its last result is
    yielded. Deterministic for
    ``(network, seed, start_ns, first_id, probability)``.
    """

    def __init__(
        self,
        network: Network,
        *,
        seed: int,
        start_ns: int,
        first_id: int = 1,
        probability: ProbabilitySource | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        liquidity_seed: int | None = None,
        balances: str = "beta",
    ) -> None:
        self.network = network
        self.seed = seed
        self.now_ns = start_ns
        """The simulated clock: when the current attempt is routed, or the last reply came."""
        self.next_id = first_id
        self.probability = probability
        self.max_attempts = max_attempts
        self.liquidity = HiddenLiquidity(network, seed if liquidity_seed is None else liquidity_seed, balances)
        self.outcomes: list[PaymentOutcome] = []
        """The payments that have ended, in order (one is listed before its last result is
        yielded: a caller that stops there still counts it)."""
        self.payments_started = 0
        """Payments started so far (the current one included)."""

    def run(self, payments: int) -> Iterator[PaymentResult]:
        """Make ``payments`` payments, yielding the result of each attempt as its reply comes.

        The caller must report each result (to mission control) before asking for the next:
        the next attempt's route is searched when the generator resumes, with the
        probabilities of that moment. Payments are made one after the other, about 1.5 s
        apart, in rounds of ``max(1, payments // 10)`` payments that repeat the same payees
        and amounts; a payment ends at its first success, at a final failure, after
        ``max_attempts`` attempts, or when no route is left.
        """
        if payments < 0:
            raise ValueError(f"payments must be >= 0, got {payments}")
        network = self.network
        others = network.payees
        # The node's payments come in rounds, each a tenth of the run: the same payees and
        # amounts every round (its regular bills), so that the first and the last tenth differ
        # only in what mission control has learnt meanwhile.
        round_length = max(1, payments // 10)
        for index in range(payments):
            # Generators per payment, so that the payments (who, how much, when) are the same
            # whichever way they are routed: runs with and without mission control compare.
            payee = random.Random(f"mcstore-payee-{self.seed}-{index % round_length}")
            target = payee.choice(others)
            amount = _amount_msat(payee, network.amount_exponents)
            rng = random.Random(f"mcstore-payment-{self.seed}-{index}")
            self.payments_started = index + 1
            self.now_ns += int(rng.expovariate(1 / _MEAN_PAYMENT_GAP_S) * _S)
            refused = rng.random() < _REFUSED_SHARE
            if rng.random() < _RESHUFFLE_SHARE:
                self.liquidity.reshuffle(rng.choice(network.channels), rng)
            attempts = 0
            succeeded = False
            over = False
            excluded: set[tuple[int, int]] = set()
            while attempts < self.max_attempts:
                found = find_route(network, target, amount, self.now_ns, self.probability, excluded=frozenset(excluded))
                if found is None:
                    break
                attempts += 1
                result, failed_pair, final = self._send(rng, found, refused)
                self.now_ns = result.time_reply_ns
                succeeded = result.failure is None
                over = succeeded or final or attempts == self.max_attempts
                if over:
                    # Recorded before its last result is handed out: a caller that stops there
                    # (Ctrl-C) counts a payment that is over, and only those.
                    self.outcomes.append(PaymentOutcome(index, amount, attempts, succeeded))
                yield result
                if succeeded or final:
                    break
                if failed_pair is not None:
                    excluded.add(failed_pair)
                self.now_ns += rng.randint(5, 40) * _MS
            if not over:  # no route (left)
                self.outcomes.append(PaymentOutcome(index, amount, attempts, succeeded))

    def _send(
        self, rng: random.Random, found: FoundRoute, refused: bool
    ) -> tuple[PaymentResult, tuple[int, int] | None, bool]:
        """Try ``found`` against the hidden balances: the result, the pair that failed, and
        whether the failure is final."""
        network = self.network
        path = found.path
        n = len(path)
        # Hop i's node forwards what the next node receives; the last hop "forwards" the amount.
        forwards = found.receives_msat[1:] + found.receives_msat[-1:]
        hops = [Hop(channel.scid, network.pubkeys[node], forwards[i]) for i, (channel, node) in enumerate(path)]
        route = Route(network.source_pubkey, found.total_msat, hops)
        attempt_id = self.next_id
        self.next_id += 1
        fwd_ns = self.now_ns
        latencies = [rng.randint(30, 250) * _MS for _ in range(n)]
        # Channel j goes from node j (0: us) to node j + 1 and carries what node j + 1 receives.
        for j in range(1, n):
            channel, _reached = path[j]
            sender = path[j - 1][1]
            carries = found.receives_msat[j]
            if channel.scid in self.liquidity.offline:
                code = UNKNOWN_NEXT_PEER
            elif self.liquidity.balance(channel, sender) < carries:
                code = TEMPORARY_CHANNEL_FAILURE
            else:
                continue
            reply_ns = fwd_ns + sum(latencies[: j + 1])
            # BOLT 4: the failure carries the amount of the HTLC that reached the failing node.
            payload = failure_payload(rng, code, channel, sender, found.receives_msat[j - 1], reply_ns, _BLOCK_HEIGHT)
            failure = PaymentFailure.from_code(j, code, payload)
            return PaymentResult(attempt_id, fwd_ns, reply_ns, route, failure), (sender, path[j][1]), False
        reply_ns = fwd_ns + sum(latencies) + rng.randint(5, 50) * _MS
        if refused:
            last_channel, recipient = path[-1]
            payload = failure_payload(
                rng,
                INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
                last_channel,
                recipient,
                found.receives_msat[-1],
                reply_ns,
                _BLOCK_HEIGHT,
            )
            failure = PaymentFailure.from_code(n, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, payload)
            return PaymentResult(attempt_id, fwd_ns, reply_ns, route, failure), None, True
        return PaymentResult(attempt_id, fwd_ns, reply_ns, route), None, False


# -- what the run shows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Learning:
    """The success of the first and the last tenth of a run's payments, to show the learning."""

    payments: int
    tenth: int
    """Payments in each tenth (at least 1)."""
    first_success_rate: float
    last_success_rate: float
    first_attempts: float
    """Mean attempts per payment in the first tenth."""
    last_attempts: float
    mean_attempts: float
    """Mean attempts per payment over the whole run."""


def _rate(outcomes: Sequence[PaymentOutcome]) -> float:
    return sum(o.succeeded for o in outcomes) / len(outcomes)


def _attempts(outcomes: Sequence[PaymentOutcome]) -> float:
    return sum(o.attempts for o in outcomes) / len(outcomes)


def learning(outcomes: Sequence[PaymentOutcome]) -> Learning | None:
    """Summarise ``outcomes`` (None when there are none); a tenth is ``len // 10`` payments, at least 1."""
    if not outcomes:
        return None
    tenth = max(1, len(outcomes) // 10)
    first, last = outcomes[:tenth], outcomes[-tenth:]
    return Learning(
        payments=len(outcomes),
        tenth=tenth,
        first_success_rate=_rate(first),
        last_success_rate=_rate(last),
        first_attempts=_attempts(first),
        last_attempts=_attempts(last),
        mean_attempts=_attempts(outcomes),
    )


def success_curve(outcomes: Sequence[PaymentOutcome], window: int) -> list[float]:
    """The success rate of the ``window`` payments up to each one (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    curve: list[float] = []
    succeeded = 0
    for i, outcome in enumerate(outcomes):
        succeeded += outcome.succeeded
        if i >= window:
            succeeded -= outcomes[i - window].succeeded
        curve.append(succeeded / min(i + 1, window))
    return curve


def score_text(value: float | None) -> str:
    """A score to four significant digits (a fitted log loss can be 0.0001); "-" for none."""
    return "-" if value is None else f"{value:.4g}"


def calibration_rows(evaluation: Evaluation, routed: str) -> list[tuple[str, str, str]]:
    """The demo summary's rows for ``evaluation``, the calibration of a run: a heading with the
    pair observations scored, then each estimator's pair Brier score and log loss, the one
    that routed (``routed``; "none" for none) marked so."""
    rows = [("calibration", str(evaluation.pairs), "pairs tried (scored as `mcstore eval` does)")]
    for name, scores in evaluation.estimators.items():
        pairs = scores.pairs
        mark = "; routed this run" if name == routed else ""
        rows.append((f"  {name}", score_text(pairs.brier), f"Brier; log loss {score_text(pairs.log_loss)}{mark}"))
    return rows


class PlotUnavailable(Exception):
    """``--plot`` was asked for, but matplotlib is not installed."""


def check_plotting() -> None:
    """Raise :class:`PlotUnavailable` unless matplotlib can be imported (checked before a run)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailable(
            "--plot needs matplotlib, which is not installed: pip install 'mcstore[bench]' (or matplotlib)"
        )


def plot_success(outcomes: Sequence[PaymentOutcome], path: str, *, title: str) -> None:
    """Draw the success rate over the run (a moving window of a tenth of it) into the PNG ``path``.

    Raises :class:`PlotUnavailable` without matplotlib, and :class:`OSError` if the file
    cannot be written.
    """
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    window = max(1, len(outcomes) // 10)
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        xs = [o.index + 1 for o in outcomes]
        axes.plot(xs, [100 * rate for rate in success_curve(outcomes, window)], label=f"last {window} payments")
        axes.set_xlabel("payment")
        axes.set_ylabel("payments that succeeded (%)")
        axes.set_ylim(0, 100)
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
