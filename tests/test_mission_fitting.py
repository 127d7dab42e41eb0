"""Tests of :mod:`mcstore.mission.fitting`: the recorded replay, the search, the fit and lnd's settings."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import histories

from mcstore import PaymentResult
from mcstore.cli.calibrate import demo_graph
from mcstore.cli.demo import simulate
from mcstore.mission import (
    ESTIMATORS,
    LND_SETTINGS,
    AprioriEstimator,
    BimodalEstimator,
    ChannelGraph,
    Evaluator,
    MissionControlState,
    Parameter,
    RecordedHistory,
    evaluate,
    fit,
    lnd_settings,
)
from mcstore.mission import fitting as fitting_module
from mcstore.mission.fitting import go_duration, search, split_index

T = 1_767_225_600 * 1_000_000_000


def simulated(payments: int, seed: int) -> list[PaymentResult]:
    """A demo node's history (random routes over the demo's network), as a store keeps it."""
    by_key = {s.result.key: s.result for s in simulate(payments, seed=seed, start_ns=T)}
    return [by_key[k] for k in sorted(by_key)]


@given(histories(), st.sampled_from(list(ESTIMATORS)), st.integers(0, 25))
def test_the_recorded_replay_predicts_what_the_live_state_does(
    history: tuple[list[PaymentResult], ChannelGraph], name: str, split: int
) -> None:
    """Node failures, second chances and the relax interval included: the journal replays
    every change of the state, so each recorded prediction is the live one."""
    results, graph = history
    recorded = RecordedHistory(graph)
    for r in results:
        recorded.add(r)
    assert recorded.state.pairs() == replayed(results).pairs()
    live = evaluate(results, graph=graph, estimators={name: ESTIMATORS[name]()}).estimators[name].pairs
    train, test = recorded.score(ESTIMATORS[name](), 0)
    assert train.count == 0
    assert test.scores() == live
    train, test = recorded.score(ESTIMATORS[name](), split)
    assert train.count + test.count == live.count


def replayed(results: list[PaymentResult]) -> MissionControlState:
    state = MissionControlState()
    for r in results:
        state.apply_result(r)
    return state


@given(histories(max_results=20), st.sampled_from(list(ESTIMATORS)), st.sampled_from([0.2, 0.3, 0.5]))
def test_the_fit_never_scores_worse_than_the_defaults_on_the_test_results(
    history: tuple[list[PaymentResult], ChannelGraph], name: str, fraction: float
) -> None:
    results, graph = history
    try:
        outcome = fit(results, name, graph=graph, test_fraction=fraction)
    except ValueError as exc:
        assert "too little history" in str(exc)
        assume(False)
    assert outcome.fitted.log_loss <= outcome.default.log_loss
    assert outcome.fitted.brier <= outcome.default.brier
    assert outcome.searched.train_log_loss <= outcome.default.train_log_loss
    assert outcome.fallback == (outcome.fitted is outcome.default)
    assert outcome.train_results + outcome.test_results == len(results)
    assert dict(outcome.default.params) == ESTIMATORS[name]().params()


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_a_fit_on_a_demo_history(name: str) -> None:
    results = simulated(200, seed=7)
    graph = demo_graph()
    outcome = fit(results, name, graph=graph)
    assert outcome == fit(results, name, graph=graph)  # deterministic
    assert (
        outcome.test_results == math.floor(len(results) * 0.3)
        and outcome.train_results == len(results) - outcome.test_results
    )
    assert outcome.fitted.log_loss <= outcome.default.log_loss and outcome.fitted.brier <= outcome.default.brier
    assert outcome.searched.train_log_loss <= outcome.default.train_log_loss
    # The scores are those of an evaluation of the same parameters: the test results'
    # observations of a replay through all the results.
    model = ESTIMATORS[name](**outcome.fitted.params)
    evaluator = Evaluator(graph, {name: model})
    split = outcome.train_results
    for i, r in enumerate(results):
        if i == split:
            evaluator = Evaluator(graph, {name: model}, state=evaluator.state, self_pubkey=evaluator.self_pubkey)
        evaluator.add(r)
    tested = evaluator.evaluation().estimators[name].pairs
    assert tested.count == outcome.test_pairs
    assert tested.log_loss == pytest.approx(outcome.fitted.log_loss, rel=1e-12)
    assert tested.brier == pytest.approx(outcome.fitted.brier, rel=1e-12)
    document = outcome.to_json()
    assert list(document["default"])[:3] == ["params", "log_loss", "brier"]  # type: ignore[call-overload]


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_dropping_worse_sets_early_changes_nothing_but_the_time(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    results = simulated(120, seed=3)
    history = RecordedHistory(demo_graph())
    for r in results:
        history.add(r)
    pruned = fit(history, name)
    stopped: list[int] = []
    score = RecordedHistory.score

    def without_limit(self: RecordedHistory, *args: object, train_limit: float = math.inf, **kwargs: object) -> object:
        train, test = score(self, *args, **kwargs)  # type: ignore[arg-type]
        stopped.append(int(train.log_loss_total > train_limit))
        return train, test

    monkeypatch.setattr(RecordedHistory, "score", without_limit)
    assert fit(history, name) == pruned
    assert sum(stopped) > 0  # some sets were worse, and the pruned search dropped them


def test_a_search_that_does_worse_on_the_test_results_falls_back_to_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = simulated(200, seed=7)
    # Near-certain success everywhere, failures remembered for a month: worse than the defaults.
    terrible = {"hop_probability": 0.99, "weight": 0.0, "penalty_half_life": 2592000.0, "capacity_fraction": 0.9999}
    monkeypatch.setattr(fitting_module, "search", lambda parameters, objective, start: (terrible, 9.0, 1))
    outcome = fit(results, "apriori", graph=demo_graph())
    assert outcome.fallback
    assert dict(outcome.searched.params) == terrible
    assert outcome.searched.log_loss > outcome.default.log_loss
    assert outcome.fitted == outcome.default
    assert outcome.to_json()["fallback"] is True
    assert outcome.lnd is not None and "--apriorihopprob 0.6 " in outcome.lnd[0]


def test_the_search_finds_a_minimum_in_log_and_linear_space() -> None:
    parameters = (
        Parameter("scale", 1000.0, 1.0, 1e9, log_scale=True, integer=True),
        Parameter("share", 0.5, 0.0, 1.0),
    )

    def objective(p: dict[str, float | int], bound: float) -> float:
        return (math.log10(p["scale"]) - 6.3) ** 2 + (p["share"] - 0.137) ** 2

    best, value, tried = search(parameters, objective, {"scale": 1000, "share": 0.5})
    assert isinstance(best["scale"], int)
    assert abs(math.log10(best["scale"]) - 6.3) < 0.15 and abs(best["share"] - 0.137) < 0.02
    assert value == objective(best, 0) and value < objective({"scale": 1000, "share": 0.5}, 0)
    assert tried < 60
    assert search(parameters, objective, {"scale": 1000, "share": 0.5}) == (best, value, tried)
    # A start that is already the best is kept: ties never replace it.
    flat_best, flat_value, _ = search(parameters, lambda p, bound: 1.0, {"scale": 1000, "share": 0.5})
    assert flat_best == {"scale": 1000, "share": 0.5} and flat_value == 1.0


def test_split_index() -> None:
    # The last floor(n * f) results are the test set (10 * 0.3 = 3.0000000000000004 -> 3).
    assert [split_index(n, 0.3) for n in (0, 1, 3, 4, 10, 100, 1000)] == [0, 1, 3, 3, 7, 70, 700]
    assert split_index(10, 0.5) == 5 and split_index(7, 0.999) == 1


def test_go_durations_as_lnd_prints_them() -> None:
    assert [go_duration(s) for s in (0, 0.4, 1, 59.6, 60, 90, 3600, 8950.2, 604800)] == [
        "0s",
        "0s",
        "1s",
        "1m0s",
        "1m0s",
        "1m30s",
        "1h0m0s",
        "2h29m10s",
        "168h0m0s",
    ]


def test_lnd_settings_of_the_defaults_are_lnds_defaults() -> None:
    # lnd's own defaults: routerrpc.apriori.hopprob=0.6, weight=0.5, penaltyhalflife=1h0m0s,
    # capacityfraction=0.9999; bimodal.scale=300000000, nodeweight=0.2, decaytime=168h0m0s.
    assert lnd_settings("apriori", AprioriEstimator().params()) == (
        "lncli setmccfg --estimator apriori --apriorihopprob 0.6 --aprioriweight 0.5 --apriorihalflife 1h0m0s "
        "--aprioricapacityfraction 0.9999",
        "routerrpc.apriori.hopprob=0.6\nrouterrpc.apriori.weight=0.5\nrouterrpc.apriori.penaltyhalflife=1h0m0s\n"
        "routerrpc.apriori.capacityfraction=0.9999\nrouterrpc.estimator=apriori",
    )
    assert lnd_settings("bimodal", BimodalEstimator().params()) == (
        "lncli setmccfg --estimator bimodal --bimodalscale 300000000 --bimodalweight 0.2 --bimodaldecaytime 168h0m0s",
        "routerrpc.bimodal.scale=300000000\nrouterrpc.bimodal.nodeweight=0.2\nrouterrpc.bimodal.decaytime=168h0m0s\n"
        "routerrpc.estimator=bimodal",
    )
    assert lnd_settings("historical", {}) is None
    # Every parameter of lnd's estimators has its setting, and no other.
    for name, settings in LND_SETTINGS.items():
        assert {s.param for s in settings} == {p.name for p in ESTIMATORS[name].parameters}


def test_fit_errors() -> None:
    results = simulated(30, seed=1)
    graph = demo_graph()
    with pytest.raises(ValueError, match="unknown estimator 'nope'"):
        fit(results, "nope", graph=graph)
    for fraction in (0, 1, 1.5, True):
        with pytest.raises(ValueError, match="test_fraction must be a number in"):
            fit(results, "apriori", graph=graph, test_fraction=fraction)
    with pytest.raises(TypeError, match="needs graph"):
        fit(results, "apriori")
    with pytest.raises(ValueError, match=r"too little history to fit: 0 results"):
        fit([], "apriori", graph=graph)
    with pytest.raises(ValueError, match=r"too little history to fit: 1 results give 1 training results"):
        fit(results[:1], "apriori", graph=graph)
    other = PaymentResult(1, T, T, results[0].route.__class__(bytes(33), 1000, results[0].route.hops))
    with pytest.raises(ValueError, match="2 source nodes"):
        fit([*results, other], "apriori", graph=graph)
