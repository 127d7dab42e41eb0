"""Tests of ``mcstore eval`` and ``mcstore fit``, through the real command.

On a demo database, on one imported from an lnd ``channel.sqlite`` with ``import-lnd`` (the
fixture of ``test_cli_mission``, over this module's demo database), and on PostgreSQL.
Expected values come from the library (:func:`mcstore.mission.evaluate` and
:func:`mcstore.mission.fit`) fed with the results fetched through a store, independently of
the commands' read-only streaming path.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import trio
from test_cli_mission import digest, files_beside, one_line_error, run, stored_results
from test_cli_mission import lnd_db as lnd_db  # the fixture: import-lnd of this module's demo_db

from mcstore import Hop, PaymentResult, Route, open_store
from mcstore.backends._lock import NamespaceLock
from mcstore.cli import calibrate
from mcstore.cli.demo import demo_network
from mcstore.mission import (
    ESTIMATORS,
    AprioriEstimator,
    ChannelGraph,
    Evaluator,
    evaluate,
    fit,
    load_graph,
)

T = 1_767_225_600 * 1_000_000_000


def store(db: Path | str, results: list[PaymentResult]) -> None:
    async def main() -> None:
        async with open_store(db, max_records=0) as s:
            for r in results:
                s.add_result(r)

    trio.run(main)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    result = run("demo", "--db", str(db), "--payments", "300", "--seed", "3", "--max-records", "0")
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture(params=["demo", "lnd"])
def any_db(request: pytest.FixtureRequest, demo_db: Path, lnd_db: Path) -> Path:
    return demo_db if request.param == "demo" else lnd_db


@pytest.fixture(scope="module")
def graph_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's network as a CSV (pairs only) and as lncli describegraph JSON (channel ids)."""
    directory = tmp_path_factory.mktemp("graphs")
    network = demo_network()
    keys = network.pubkeys
    csv_path = directory / "demo.csv"
    csv_path.write_text(
        "node1_pubkey,node2_pubkey,capacity_sat\n"
        + "".join(f"{keys[c.node_a].hex()},{keys[c.node_b].hex()},{c.capacity_sat}\n" for c in network.channels)
    )
    json_path = directory / "describegraph.json"
    edges = [
        {
            "channel_id": str(c.scid),
            "node1_pub": keys[c.node_a].hex(),
            "node2_pub": keys[c.node_b].hex(),
            "capacity": str(c.capacity_sat),
            "node1_policy": {"fee_base_msat": str(c.policy_a.base_fee_msat)},
        }
        for c in network.channels
    ]
    json_path.write_text(json.dumps({"nodes": [], "edges": edges}, indent=4))
    return {"csv": csv_path, "json": json_path}


# -- eval ----------------------------------------------------------------------------------------


def test_eval_json_is_the_library_evaluation_for_every_graph_form(any_db: Path, graph_files: dict[str, Path]) -> None:
    results = stored_results(any_db)
    assert len(results) > 250
    builtin = run("eval", str(any_db), "--graph", "demo", "--json")
    assert builtin.exit_code == 0, builtin.output
    document = json.loads(builtin.stdout)
    assert document == evaluate(results, graph=calibrate.demo_graph()).to_json()
    assert document["self_pubkey"] == demo_network().source_pubkey.hex()
    assert document["observations"]["pairs"] > 300 and document["observations"]["no_capacity"] == 0
    from_json = run("eval", str(any_db), "--graph", str(graph_files["json"]), "--json")
    assert json.loads(from_json.stdout) == document  # the same channels, by id
    from_csv = run("eval", str(any_db), "--graph", str(graph_files["csv"]), "--json")
    assert json.loads(from_csv.stdout) == evaluate(results, graph=load_graph(graph_files["csv"])).to_json()


def test_eval_json_shape(demo_db: Path) -> None:
    document = json.loads(run("eval", str(demo_db), "--graph", "demo", "--json").stdout)
    assert list(document)[:4] == ["self_pubkey", "results", "observations", "estimators"]
    assert bytes.fromhex(document["self_pubkey"]) == demo_network().source_pubkey
    assert isinstance(document["results"], int)
    assert {"pairs", "amount_independent", "no_capacity"} <= set(document["observations"])
    assert list(document["estimators"]) == list(ESTIMATORS)
    for name, scores in document["estimators"].items():
        assert scores["params"] == ESTIMATORS[name]().params()
        pairs, routes = scores["pairs"], scores["routes"]
        assert pairs["count"] == document["observations"]["pairs"]
        for s in (pairs, routes):
            assert isinstance(s["count"], int) and 0 <= s["brier"] <= 1 and s["log_loss"] >= 0
        bins = pairs["bins"]
        assert [(b["lo"], b["hi"]) for b in bins] == [(k / 10, (k + 1) / 10) for k in range(10)]
        assert sum(b["count"] for b in bins) == pairs["count"]
        for b in bins:
            assert list(b) == ["lo", "hi", "count", "mean_predicted", "observed"]
            assert (b["observed"] is None) == (b["count"] == 0) == (b["mean_predicted"] is None)


def test_eval_table(demo_db: Path) -> None:
    result = run("eval", str(demo_db), "--graph", "demo")
    assert result.exit_code == 0, result.output
    evaluation = evaluate(stored_results(demo_db), graph=calibrate.demo_graph())
    out = result.stdout
    assert f"Scored {evaluation.results} results of namespace 'default' in {demo_db}" in out
    assert f"Pair observations: {evaluation.pairs} scored" in out
    for name, scores in evaluation.estimators.items():
        assert f"{name}: " in out
        pairs_row = next(
            line for line in out.splitlines() if line.startswith("│pairs ") and f"{scores.pairs.brier:.4g}" in line
        )
        assert f"{scores.pairs.log_loss:.4g}" in pairs_row and str(scores.pairs.count) in pairs_row
    assert out.count("p in [0.9, 1.0]") == len(ESTIMATORS)
    assert max(len(line) for line in out.splitlines() if line[:1] in "┏┃┡│├└") <= 80  # tables fit a terminal


def test_eval_set_and_estimator_choose_what_is_scored(demo_db: Path) -> None:
    result = run(
        "eval", str(demo_db), "--graph", "demo", "--json", "--estimator", "apriori",
        "--set", "apriori.hop_probability=0.5", "--set", "apriori.penalty_half_life=7200",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document["estimators"]) == ["apriori"]
    model = AprioriEstimator(hop_probability=0.5, penalty_half_life=7200.0)
    expected = evaluate(stored_results(demo_db), graph=calibrate.demo_graph(), estimators={"apriori": model})
    assert document == expected.to_json()
    assert document["estimators"]["apriori"]["params"]["hop_probability"] == 0.5


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--set", "nope.x=1"], ["--set", "'nope.x=1'", "unknown estimator 'nope'", "known: apriori"]),
        (["--set", "apriori.nope=1"], ["'apriori.nope=1'", "no parameter 'nope'", "hop_probability"]),
        (["--set", "apriori.hop_probability=abc"], ["'abc' is not a number"]),
        (["--set", "apriori.hop_probability=1.5"], ["apriori.hop_probability=1.5", "must be in [0, 1], got 1.5"]),
        (["--set", "bimodal.scale_msat=1.5"], ["scale_msat takes a whole number, got '1.5'"]),
        (["--set", "apriori"], ["'apriori': write NAME.PARAM=VALUE"]),
        (["--estimator", "apriori", "--set", "bimodal.node_weight=0.1"], ["bimodal is not evaluated"]),
        (["--estimator", "nope"], ["--estimator", "'nope' is not one of"]),
        (["--self", "zz"], ["--self", "'zz' is not hex"]),
    ],
)
def test_eval_usage_errors_name_the_value(demo_db: Path, args: list[str], needles: list[str]) -> None:
    one_line_error(run("eval", str(demo_db), "--graph", "demo", *args), 2, *needles)


def test_eval_our_node_of_a_history_with_several_sources(tmp_path: Path) -> None:
    db = tmp_path / "two.sqlite"
    a, b, c = (bytes([2, i]) + bytes(31) for i in (1, 2, 3))
    store(db, [
        PaymentResult(1, T, T + 1, Route(a, 1000, [Hop(7, b, 1000)])),
        PaymentResult(2, T + 5, T + 6, Route(b, 1000, [Hop(8, c, 1000)])),
    ])  # fmt: skip
    graph = tmp_path / "g.csv"
    graph.write_text(f"node1_pubkey,node2_pubkey,capacity_sat\n{a.hex()},{b.hex()},100\n{b.hex()},{c.hex()},100\n")
    one_line_error(run("eval", str(db), "--graph", str(graph)), 1, "2 source nodes", a.hex(), b.hex(), "--self")
    one_line_error(run("fit", str(db), "--graph", str(graph), "--estimator", "apriori"), 1, "2 source nodes")
    chosen = run("eval", str(db), "--graph", str(graph), "--self", b.hex(), "--json")
    assert chosen.exit_code == 0, chosen.output
    document = json.loads(chosen.stdout)
    assert document["self_pubkey"] == b.hex()
    assert document == evaluate(stored_results(db), graph=load_graph(graph), self_pubkey=b).to_json()


def test_eval_is_read_only_and_takes_no_lock(demo_db: Path, tmp_path: Path) -> None:
    before, files = digest(demo_db), files_beside(demo_db)
    lock = NamespaceLock(str(demo_db), "default")
    lock.acquire()
    try:
        assert run("eval", str(demo_db), "--graph", "demo", "--json").exit_code == 0
        assert run("fit", str(demo_db), "--graph", "demo", "--estimator", "apriori", "--json").exit_code == 0
    finally:
        lock.release()
    assert digest(demo_db) == before
    assert files_beside(demo_db) == files


def test_eval_graph_errors_are_one_line(demo_db: Path, tmp_path: Path) -> None:
    one_line_error(run("eval", str(demo_db), "--graph", str(tmp_path / "nope.csv")), 1, "nope.csv", "No such file")
    bad = tmp_path / "bad.csv"
    bad.write_text("node1_pubkey,node2_pubkey,capacity_sat\n02,03,x\n")
    one_line_error(run("eval", str(demo_db), "--graph", str(bad)), 1, f"{bad}:2: node1_pubkey must be 33 bytes")
    one_line_error(run("fit", str(demo_db), "--graph", str(bad), "--estimator", "apriori"), 1, f"{bad}:2:")
    one_line_error(run("eval", str(demo_db), "--graph", str(tmp_path)), 1, str(tmp_path))
    one_line_error(run("eval", str(tmp_path / "no.sqlite"), "--graph", "demo"), 1, "no.sqlite")
    assert not (tmp_path / "no.sqlite").exists()


def test_eval_of_an_unknown_namespace_scores_nothing(demo_db: Path) -> None:
    result = run("eval", str(demo_db), "--graph", "demo", "--namespace", "nope", "--json")
    assert result.exit_code == 0 and "namespace 'nope' holds no records" in result.stderr
    document = json.loads(result.stdout)
    assert document["results"] == 0 and document["self_pubkey"] is None
    assert all(s["pairs"]["brier"] is None for s in document["estimators"].values())


def test_eval_plot(demo_db: Path, tmp_path: Path) -> None:
    plot = tmp_path / "reliability.png"
    result = run("eval", str(demo_db), "--graph", "demo", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_mode & 0o077 == 0  # private, as the history is
    assert f"Reliability diagram: {plot}" in result.stdout
    missing = tmp_path / "no" / "r.png"
    error = run("eval", str(demo_db), "--graph", "demo", "--plot", str(missing))
    one_line_error(error, 1, "directory", "does not exist")
    assert error.stdout == ""  # checked before the run


def test_eval_ctrl_c_exits_130(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Evaluator, result: PaymentResult) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Evaluator, "score", interrupted)
    result = run("eval", str(demo_db), "--graph", "demo")
    assert result.exit_code == 130 and result.stderr.strip() == "Error: interrupted"


# -- fit -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_json_is_the_library_fit(any_db: Path, name: str) -> None:
    result = run("fit", str(any_db), "--graph", "demo", "--estimator", name, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    outcome = fit(stored_results(any_db), name, graph=calibrate.demo_graph())
    assert document == outcome.to_json()
    assert list(document)[:7] == [
        "estimator",
        "train_results",
        "test_results",
        "default",
        "fitted",
        "lncli",
        "lnd_conf",
    ]
    assert document["estimator"] == name
    assert document["train_results"] + document["test_results"] == len(stored_results(any_db))
    for which in ("default", "fitted"):
        assert list(document[which])[:3] == ["params", "log_loss", "brier"]
        assert set(document[which]["params"]) == {p.name for p in ESTIMATORS[name].parameters}
    assert document["fitted"]["log_loss"] <= document["default"]["log_loss"]
    assert document["fitted"]["brier"] <= document["default"]["brier"]
    if name in ("apriori", "bimodal"):
        assert document["lncli"].startswith(f"lncli setmccfg --estimator {name} --")
        lines = document["lnd_conf"].splitlines()
        assert all(line.startswith(f"routerrpc.{name}.") for line in lines[:-1])
        assert lines[-1] == f"routerrpc.estimator={name}"
    else:
        assert document["lncli"] is None and document["lnd_conf"] is None and "no lnd setting" in document["lnd"]


def test_fit_text(demo_db: Path) -> None:
    result = run("fit", str(demo_db), "--graph", "demo", "--estimator", "bimodal", "--test-fraction", "0.4")
    assert result.exit_code == 0, result.output
    outcome = fit(stored_results(demo_db), "bimodal", graph=calibrate.demo_graph(), test_fraction=0.4)
    out = result.stdout
    assert f"tested on the next {outcome.test_results} ({outcome.test_pairs} pair observations)" in out
    assert re.search(rf"test log loss +{outcome.default.log_loss:.4g} +{outcome.fitted.log_loss:.4g}\n", out), out
    lnd = outcome.lnd
    assert lnd is not None
    assert f"  {lnd[0]}\n" in out
    assert "lnd.conf, section [routerrpc]:\n  routerrpc.bimodal.scale=" in out
    assert ("keeping the defaults (fallback)" in out) == outcome.fallback


def test_fit_fallback_is_said(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Failures forgotten within minutes, and the node's other channels trusted blindly: on the
    # demo's test results, worse than lnd's defaults (test log loss 0.056 against 0.051).
    worse = {"hop_probability": 0.6, "weight": 0.0, "penalty_half_life": 60.0, "capacity_fraction": 0.9999}
    monkeypatch.setattr("mcstore.mission.fitting.search", lambda parameters, objective, start: (worse, 0.0, 1))
    result = run("fit", str(demo_db), "--graph", "demo", "--estimator", "apriori")
    assert result.exit_code == 0, result.output
    assert "keeping the defaults (fallback)" in result.stdout and "(log loss 0." in result.stdout
    assert "Apply lnd's defaults to lnd" in result.stdout and "--apriorihopprob 0.6 " in result.stdout
    document = json.loads(run("fit", str(demo_db), "--graph", "demo", "--estimator", "apriori", "--json").stdout)
    assert document["fallback"] is True and document["fitted"] == document["default"]


def test_fit_errors(demo_db: Path, tmp_path: Path) -> None:
    one_line_error(run("fit", str(demo_db), "--graph", "demo"), 2, "--estimator")
    one_line_error(run("fit", str(demo_db), "--graph", "demo", "--estimator", "apriori", "--test-fraction", "1"), 2,
                   "--test-fraction")  # fmt: skip
    short = tmp_path / "short.sqlite"
    store(short, stored_results(demo_db)[:2])
    one_line_error(run("fit", str(short), "--graph", "demo", "--estimator", "apriori"), 1, "too little history")
    with closing(sqlite3.connect(short)) as conn:
        assert conn.execute("SELECT count(*) FROM mc_results").fetchone() == (2,)


# -- PostgreSQL ----------------------------------------------------------------------------------


def test_eval_and_fit_on_postgresql(pg_dsn: str) -> None:
    demo = run("demo", "--db", pg_dsn, "--payments", "60", "--seed", "5", "--max-records", "0")
    assert demo.exit_code == 0, demo.output
    results = stored_results(pg_dsn)
    evaluated = run("eval", pg_dsn, "--graph", "demo", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout) == evaluate(results, graph=calibrate.demo_graph()).to_json()
    fitted = run("fit", pg_dsn, "--graph", "demo", "--estimator", "apriori", "--json")
    assert fitted.exit_code == 0, fitted.output
    assert json.loads(fitted.stdout) == fit(results, "apriori", graph=calibrate.demo_graph()).to_json()
    assert stored_results(pg_dsn) == results
    # A URL's password is never shown (the test server trusts any password).
    with_password = pg_dsn.replace("postgresql://mcstore@", "postgresql://mcstore:hunter2@")
    assert with_password != pg_dsn
    for command in ("eval", "fit"):
        shown = run(command, with_password, "--graph", "demo", "--estimator", "bimodal")
        assert shown.exit_code == 0, shown.output
        assert "hunter2" not in shown.stdout + shown.stderr and "postgresql://mcstore@" in shown.stdout


def test_demo_graph_is_the_demo_network() -> None:
    graph = calibrate.demo_graph()
    network = demo_network()
    assert isinstance(graph, ChannelGraph) and len(graph.channels) == len(network.channels)
    for c in network.channels:
        assert graph.capacity(network.pubkeys[c.node_a], network.pubkeys[c.node_b], c.scid) == c.capacity_sat


def test_verbose_logs_the_evaluation_and_the_fit(demo_db: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    for command, needles in (
        (["eval", str(demo_db), "--graph", "demo", "-v"], ["INFO mcstore.mission: Evaluated ", "apriori.brier="]),
        (["-vv", "fit", str(demo_db), "--graph", "demo", "--estimator", "apriori"],
         ["DEBUG mcstore.mission: Fit candidate 1:", "INFO mcstore.mission: Fitted apriori: "]),
    ):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "mcstore", *command], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        for needle in needles:
            assert needle in proc.stderr, (needle, proc.stderr[-2000:])
