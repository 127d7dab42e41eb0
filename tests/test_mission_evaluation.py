"""Tests of :mod:`mcstore.mission.evaluation`: scores worked out by hand, and hypothesis properties.

The hand-made history's expected numbers are derived in the comments from lnd's rules and
the apriori formulas (with ``capacity_fraction=1``, so that the capacity factor is exactly 1),
not from the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import histories

from mcstore import Hop, PaymentFailure, PaymentResult, Route
from mcstore.mission import (
    AprioriEstimator,
    BimodalEstimator,
    Calibration,
    ChannelGraph,
    Evaluator,
    TimedPairResult,
    evaluate,
    interpret_result,
)
from mcstore.mission.evaluation import BINS, default_estimators
from mcstore.mission.registry import ESTIMATORS
from mcstore.model import TEMPORARY_CHANNEL_FAILURE, UNKNOWN_NEXT_PEER

NS = 1_000_000_000
T = 1_767_225_600 * NS
S, A, B, C, D = (bytes([2, i]) + bytes(31) for i in range(1, 6))
CHANNELS = {(S, A): 1, (A, B): 2, (B, C): 3, (A, D): 4}
# Capacities in sat, far above the msat amounts below; A-D is not in the graph.
GRAPH = ChannelGraph.from_channels([(S, A, 1_000, 1), (A, B, 1_000, 2), (B, C, 1_000, 3)])
APRIORI = AprioriEstimator(capacity_fraction=1.0)
CLIP = 1e-6


def attempt(
    id: int, fwd_s: int, nodes: list[bytes], amounts: list[int], failure: PaymentFailure | None = None
) -> PaymentResult:
    """A result for the route S -> nodes, ``amounts`` = [total, hop 0 forwards, hop 1 forwards, ...]."""
    hops = []
    prev = S
    for node, amount in zip(nodes, amounts[1:], strict=True):
        hops.append(Hop(channel_id=CHANNELS.get((prev, node), 99), pubkey=node, amount_to_forward_msat=amount))
        prev = node
    return PaymentResult(id, T + fwd_s * NS, T + (fwd_s + 1) * NS, Route(S, amounts[0], hops), failure)


def code(value: int) -> bytes:
    return value.to_bytes(2, "big")


HISTORY = [
    # 1: S -> A -> B succeeds. Empty state: (S, A) is ours, the local estimate 0.95; (A, B)
    # untried, A unknown: the a-priori 0.6. Route: 0.95 * 0.6 = 0.57, a success.
    attempt(1, 1000, [A, B], [10_100, 10_000, 10_000]),
    # 2: S -> A -> B -> C, B reports temporary_channel_failure: (B, C) failed at 20_000, (S, A)
    # and (A, B) forwarded 20_200 and 20_100. (S, A): local, no failure: 0.95. (A, B) at
    # 20_100 > the 10_000 known: A's node probability (0.6 * 1 + nothing that applies) / 1 =
    # 0.6. (B, C): untried, 0.6, outcome 0. Route: 0.95 * 0.6 * 0.6 = 0.342, a failure.
    attempt(2, 2000, [A, B, C], [20_200, 20_100, 20_000, 20_000], PaymentFailure(2, code(TEMPORARY_CHANNEL_FAILURE))),
    # 3: the same route succeeds at 25_000, 3600 s (one penalty half-life) after the failure
    # (replied at 2001 s). (S, A): 0.95. (A, B) at 25_100 > 20_100: 0.6. (B, C) at 25_000 >=
    # the failed 20_000: node probability 0.6 / (1 + 2**-1) = 0.4, times the pair's penalty
    # 1 - 2**-1: 0.2, outcome 1. Route: 0.95 * 0.6 * 0.2 = 0.114, a success.
    attempt(3, 5601, [A, B, C], [25_200, 25_100, 25_000, 25_000]),
    # 4: S -> A -> D, A reports unknown_next_peer: (A, D) and (D, A) fail for any amount, two
    # amount-independent failures, not scored. The route is skipped: A-D has no capacity.
    attempt(4, 5700, [A, D], [30_100, 30_000, 30_000], PaymentFailure(1, code(UNKNOWN_NEXT_PEER))),
    # 5: S -> A -> D succeeds: (S, A) scored, 0.95 (our channel needs no capacity); (A, D) not
    # scored, no capacity. The route is skipped.
    attempt(5, 5800, [A, D], [30_100, 30_000, 30_000]),
]


def test_scores_of_a_hand_made_history() -> None:
    evaluation = evaluate(HISTORY, graph=GRAPH, estimators={"apriori": APRIORI})
    assert evaluation.self_pubkey == S and evaluation.sources == {S}
    assert evaluation.results == 5
    # Pairs: 0.95 four times (all successes), 0.6 four times (three successes, one failure),
    # 0.2 once (a success).
    assert (evaluation.pairs, evaluation.amount_independent, evaluation.no_capacity) == (9, 2, 1)
    assert (evaluation.routes, evaluation.routes_no_capacity) == (3, 2)
    scores = evaluation.estimators["apriori"]
    assert dict(scores.params) == {
        "hop_probability": 0.6,
        "weight": 0.5,
        "penalty_half_life": 3600.0,
        "capacity_fraction": 1.0,
    }
    pairs = scores.pairs
    assert pairs.count == 9
    # Brier: 4 * 0.05**2 + 3 * 0.4**2 + 0.6**2 (the failure) + 0.8**2 = 0.01 + 0.48 + 0.36 + 0.64
    # = 1.49, over 9: 0.165555...
    assert pairs.brier == pytest.approx(1.49 / 9, rel=1e-12)
    # Log loss: (4 * -ln 0.95 + 3 * -ln 0.6 + -ln 0.4 + -ln 0.2) / 9
    # = (4 * 0.0512933 + 3 * 0.5108256 + 0.9162907 + 1.6094379) / 9 = 0.4737087
    assert pairs.log_loss == pytest.approx(0.4737087436840477, rel=1e-12)
    # Bins: 0.95 -> bin 9 (4, all successes); 0.6 -> bin 6 (4, 3 successes); and the "0.2":
    # in floating point 0.6 / 1.5 = 0.39999999999999997 (0.6 is stored a little below 0.6), so
    # it is 0.19999999999999998, and int(1.9999999999999998) puts it in bin 1, not bin 2.
    expected_bins = {9: (4, 0.95, 1.0), 6: (4, 0.6, 0.75), 1: (1, 0.2, 1.0)}
    assert len(pairs.bins) == BINS
    for k, b in enumerate(pairs.bins):
        assert (b.lo, b.hi) == (k / 10, (k + 1) / 10)
        count, mean, observed = expected_bins.get(k, (0, None, None))
        assert b.count == count
        assert b.mean_predicted == (None if mean is None else pytest.approx(mean, rel=1e-12))
        assert b.observed == observed
    routes = scores.routes
    assert routes.count == 3
    # Routes: 0.57 (success), 0.342 (failure), 0.114 (success).
    # Brier: (0.43**2 + 0.342**2 + 0.886**2) / 3 = (0.1849 + 0.116964 + 0.784996) / 3 = 0.3622867
    assert routes.brier == pytest.approx(1.08686 / 3, rel=1e-12)
    # Log loss: (-ln 0.57 - ln 0.658 - ln 0.114) / 3 = (0.5621189 + 0.4185503 + 2.1715568) / 3 = 1.0507420
    assert routes.log_loss == pytest.approx(1.0507420321326675, rel=1e-12)


def test_the_json_shape() -> None:
    document = evaluate(HISTORY, graph=GRAPH, estimators={"apriori": APRIORI}).to_json()
    assert list(document) == ["self_pubkey", "results", "observations", "estimators"]
    assert document["self_pubkey"] == S.hex() and document["results"] == 5
    assert document["observations"] == {
        "pairs": 9,
        "amount_independent": 2,
        "no_capacity": 1,
        "routes": 3,
        "routes_no_capacity": 2,
    }
    apriori = document["estimators"]["apriori"]  # type: ignore[index]
    assert list(apriori) == ["params", "pairs", "routes"]
    assert list(apriori["pairs"]) == ["count", "brier", "log_loss", "bins"]
    assert list(apriori["routes"]) == ["count", "brier", "log_loss"]
    assert apriori["pairs"]["bins"][0] == {"lo": 0.0, "hi": 0.1, "count": 0, "mean_predicted": None, "observed": None}
    assert apriori["pairs"]["bins"][9] == {"lo": 0.9, "hi": 1.0, "count": 4, "mean_predicted": 0.95, "observed": 1.0}


def test_calibration_by_hand() -> None:
    c = Calibration("x")
    assert c.scores().count == 0 and c.scores().brier is None and c.scores().log_loss is None and c.log_loss is None
    for p, y in [
        (0.0, False),
        (1.0, True),
        (0.0, True),
        (0.1, False),
        (0.7, True),
        (0.3, True),
        (0.09999999999999999, True),
    ]:
        c.add(p, y)
    s = c.scores()
    # Brier: 0 + 0 + 1 + 0.01 + 0.09 + 0.49 + 0.81 = 2.4, over 7.
    assert s.brier == pytest.approx(2.4 / 7, rel=1e-9)
    # Log loss: clipped, -ln(1 - 1e-6) twice, -ln(1e-6), then -ln 0.9, -ln 0.7, -ln 0.3, -ln 0.1.
    expected = (
        2 * -math.log(1 - CLIP)
        - math.log(CLIP)
        - math.log(0.9)
        - math.log(0.7)
        - math.log(0.3)
        - math.log(0.09999999999999999)
    ) / 7
    assert s.log_loss == pytest.approx(expected, rel=1e-12)
    # Bins as min(int(p * 10), 9): 0.1 * 10 = 1.0 -> 1; 0.7 * 10 = 7.000000000000001 -> 7;
    # 0.3 * 10 = 3.0000000000000004 -> 3; just under 0.1 -> 0; 1.0 -> 9.
    assert [b.count for b in s.bins] == [3, 1, 0, 1, 0, 0, 0, 1, 0, 1]
    assert s.bins[0].observed == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"x: a probability must be in \[0, 1\], got nan"):
        c.add(math.nan, True)
    with pytest.raises(ValueError, match="got 1.5"):
        c.add(1.5, True)


def test_our_node_defaults_to_the_source_and_several_sources_are_refused() -> None:
    other = PaymentResult(9, T + 9000 * NS, T + 9001 * NS, Route(B, 1000, [Hop(3, C, 1000)]))
    with pytest.raises(ValueError, match=f"2 source nodes \\({S.hex()}, {B.hex()}\\).*--self"):
        evaluate([*HISTORY, other], graph=GRAPH)
    # Given: B's channel is local, S's are not (S-A is in the graph, so they are scored).
    evaluation = evaluate([*HISTORY, other], graph=GRAPH, self_pubkey=B, estimators={"apriori": APRIORI})
    assert evaluation.self_pubkey == B and evaluation.sources == {S, B}
    assert evaluation.pairs == 10
    # The (S, A) pair is no longer ours: an untried pair's 0.6 in result 1, not 0.95.
    first = evaluate(HISTORY[:1], graph=GRAPH, self_pubkey=B, estimators={"apriori": APRIORI})
    assert first.estimators["apriori"].pairs.bins[6].count == 2


def test_an_empty_history_and_a_route_without_hops() -> None:
    empty = evaluate([], graph=GRAPH)
    assert empty.self_pubkey is None and empty.results == 0
    assert list(empty.estimators) == list(ESTIMATORS)
    assert all(s.pairs.count == 0 and s.pairs.brier is None for s in empty.estimators.values())
    no_hops = evaluate([PaymentResult(1, T, T, Route(S, 1000, []))], graph=GRAPH)
    assert (no_hops.results, no_hops.pairs, no_hops.routes, no_hops.self_pubkey) == (1, 0, 0, S)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="graph must be a ChannelGraph"):
        Evaluator({})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no estimator"):
        Evaluator(GRAPH, {})
    with pytest.raises(ValueError, match="self_pubkey must be 33 bytes, got 2 bytes 0102"):
        Evaluator(GRAPH, self_pubkey=b"\x01\x02")
    with pytest.raises(TypeError, match="self_pubkey must be bytes"):
        evaluate([], graph=GRAPH, self_pubkey="02" * 33)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a PaymentResult, got str"):
        Evaluator(GRAPH).add("result")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'x' is a str, not an Estimator"):
        Evaluator(GRAPH, {"x": "apriori"})  # type: ignore[dict-item]


# -- hypothesis: histories over a small network ----------------------------------------------------


@given(histories())
def test_scores_are_bounded_and_every_observation_is_counted_once(
    history: tuple[list[PaymentResult], ChannelGraph],
) -> None:
    results, graph = history
    evaluation = evaluate(results, graph=graph)
    total = sum(len(interpret_result(r).pair_results) for r in results)
    assert evaluation.pairs + evaluation.amount_independent + evaluation.no_capacity == total
    assert evaluation.routes + evaluation.routes_no_capacity == len(results)
    for scores in evaluation.estimators.values():
        for s, count in ((scores.pairs, evaluation.pairs), (scores.routes, evaluation.routes)):
            assert s.count == count
            assert sum(b.count for b in s.bins) == count
            if count:
                assert s.brier is not None and s.log_loss is not None
                assert 0.0 <= s.brier <= 1.0
                assert 0.0 <= s.log_loss <= -math.log(CLIP) * (1 + 1e-12)
            for b in s.bins:
                if b.count:
                    assert b.mean_predicted is not None and b.observed is not None
                    # A mean of sums: ten predictions of 0.6 average 0.5999999999999999.
                    assert b.lo - 1e-12 <= b.mean_predicted <= b.hi + 1e-12 and 0.0 <= b.observed <= 1.0


@given(histories(max_results=10))
def test_estimators_scored_side_by_side_score_as_they_do_alone(
    history: tuple[list[PaymentResult], ChannelGraph],
) -> None:
    results, graph = history
    together = evaluate(results, graph=graph)
    for name, estimator in default_estimators().items():
        alone = evaluate(results, graph=graph, estimators={name: estimator})
        assert alone.estimators[name] == together.estimators[name]


class Oracle:
    """A perfect predictor: it knows every pair's outcome (by time, target and amount) in advance
    (and says 0.5 for a route's hop that is not a pair observation)."""

    name: ClassVar[str] = "oracle"

    def __init__(self, results: list[PaymentResult]) -> None:
        self.outcomes: dict[tuple[int, bytes, int | None], bool] = {}
        for r in results:
            source = r.route.source_pubkey
            for (frm, to), (success, amount) in interpret_result(r).pair_results.items():
                self.outcomes[(r.time_fwd_ns, to, None if frm == source else amount)] = success

    def pair_probability(
        self,
        now_ns: int,
        results: Mapping[bytes, TimedPairResult],
        to_pubkey: bytes,
        amount_msat: int,
        capacity_sat: int,
    ) -> float:
        return float(self.outcomes.get((now_ns, to_pubkey, amount_msat), 0.5))

    def local_pair_probability(self, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes) -> float:
        return float(self.outcomes.get((now_ns, to_pubkey, None), 0.5))


@given(histories())
def test_a_perfect_predictor_scores_zero(history: tuple[list[PaymentResult], ChannelGraph]) -> None:
    results, graph = history
    # Distinct forwarding times, so that (time, target, amount) names one pair observation.
    results = [PaymentResult(r.id, r.time_fwd_ns + r.id, r.time_reply_ns, r.route, r.failure) for r in results]
    pairs = evaluate(results, graph=graph, estimators={"oracle": Oracle(results)}).estimators["oracle"].pairs
    if pairs.count:
        assert pairs.brier == 0.0
        assert pairs.log_loss == pytest.approx(-math.log(1 - CLIP))  # the clip's floor, ~1e-6
        assert {k for k, b in enumerate(pairs.bins) if b.count} <= {0, 9}


@given(histories(max_results=12), st.sampled_from(list(ESTIMATORS)))
def test_an_evaluator_fed_by_hand_is_evaluate(history: tuple[list[PaymentResult], ChannelGraph], name: str) -> None:
    results, graph = history
    evaluator = Evaluator(graph, {name: ESTIMATORS[name]()})
    for r in results:
        evaluator.score(r)
        evaluator.state.apply_result(r)
    expected = evaluate(results, graph=graph, estimators={name: ESTIMATORS[name]()})
    assert evaluator.evaluation() == expected


def test_bimodal_scores_are_its_pair_probabilities() -> None:
    """The bimodal estimator's first prediction on the hand-made history: untried pair A->B,
    capacity 1000 sat, 10_000 msat: its own formula, no node history."""
    bimodal = BimodalEstimator()
    evaluation = evaluate(HISTORY[:1], graph=GRAPH, estimators={"bimodal": bimodal})
    p = bimodal.pair_probability(T + 1000 * NS, {}, B, 10_000, 1_000)
    # Two observations: (S, A), local with no failure: 1.0; (A, B): p. Both successes.
    assert evaluation.estimators["bimodal"].pairs.brier == pytest.approx((1 - p) ** 2 / 2, rel=1e-12)
