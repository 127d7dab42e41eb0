"""The demo over a real topology (issue 20, section 4): the packaged graph, ``demo --graph`` and
``--balances``, and the calibration the demo prints, checked against ``mcstore eval``.

Most tests use a small CSV graph cut from the packaged one (its 100 best-connected nodes and
the 2,073 pairs between them); one, marked slow, runs over the whole of ``mainnet-2025``.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from click.testing import Result
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli_mission import mc_rows, one_line_error, run, stored_results

import mcstore.mission
from mcstore.cli import calibrate
from mcstore.cli import routing as routing_module
from mcstore.cli.demo import (
    BUILTIN_GRAPHS,
    GRAPH_AMOUNTS_SAT,
    OUR_CHANNEL_SAT,
    OUR_CHANNELS,
    GraphNetwork,
    builtin_network,
    demo_network,
)
from mcstore.cli.ingest import DEMO_EPOCH_NS, DemoOutcome, run_demo
from mcstore.cli.routing import BALANCES, BIMODAL_BALANCE_SCALE_MSAT, HiddenLiquidity, RoutedPayments, score_text
from mcstore.mission import ChannelGraph, Evaluator, load_graph
from mcstore.mission.graph import PACKAGED_GRAPHS, packaged_graph

ROOT = Path(__file__).resolve().parent.parent
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"  # the demo's figures, as the docs give them


def write_csv(path: Path, pairs: dict[tuple[bytes, bytes], int]) -> Path:
    rows = "".join(f"{a.hex()},{b.hex()},{c}\n" for (a, b), c in pairs.items())
    path.write_text("node1_pubkey,node2_pubkey,capacity_sat\n" + rows)
    return path


def write_describegraph(path: Path, channels: list[tuple[bytes, bytes, int, int]]) -> Path:
    edges = [
        {"channel_id": str(scid), "node1_pub": a.hex(), "node2_pub": b.hex(), "capacity": str(capacity)}
        for a, b, capacity, scid in channels
    ]
    path.write_text(json.dumps({"nodes": [], "edges": edges}))
    return path


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged graph's 100 best-connected nodes and the pairs between them, as a CSV."""
    graph = packaged_graph("mainnet-2025")
    degree: dict[bytes, int] = {}
    for a, b in graph.pairs:
        degree[a] = degree.get(a, 0) + 1
        degree[b] = degree.get(b, 0) + 1
    top = set(sorted(degree, key=lambda key: (-degree[key], key))[:100])
    pairs = {(a, b): c for (a, b), c in graph.pairs.items() if a in top and b in top}
    return write_csv(tmp_path_factory.mktemp("graph") / "small.csv", pairs)


@pytest.fixture(scope="module")
def small_network(small_csv: Path) -> GraphNetwork:
    return GraphNetwork(load_graph(small_csv), str(small_csv))


# -- the packaged graph ----------------------------------------------------------------------------


def test_the_packaged_graph_loads_from_the_package_with_its_license_and_source() -> None:
    graph = packaged_graph("mainnet-2025")
    assert len(graph) == 10_275 and graph.source == "mainnet-2025" and graph.channels == {}
    assert len({key for pair in graph.pairs for key in pair}) == 1_924
    assert min(graph.pairs.values()) > 5_000_000
    assert packaged_graph("mainnet-2025") is graph  # read once per process
    data = importlib.resources.files("mcstore.mission").joinpath("data", PACKAGED_GRAPHS["mainnet-2025"])
    # Found inside the package that is imported, wherever it is installed.
    with importlib.resources.as_file(data.joinpath("channels.csv")) as path:
        assert path.is_relative_to(Path(mcstore.mission.__file__).parent)
        assert load_graph(path).pairs == graph.pairs
    assert data.joinpath("LICENSE").read_text().startswith("MIT License")
    assert "sorukumar/ln-graph-viz" in data.joinpath("README.md").read_text()
    assert data.joinpath("nodes.csv").read_text().count("\n") == 1_925  # a header and 1,924 nodes
    with pytest.raises(KeyError, match="'nope'.*mainnet-2025"):
        packaged_graph("nope")


def test_the_package_data_ships_every_file_of_the_graph() -> None:
    """pyproject.toml's package-data names the data, so that a wheel (a non-editable install) has it."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = ROOT / "mcstore" / "mission"
    files = [p.relative_to(package).as_posix() for p in (package / "data").rglob("*") if p.is_file()]
    assert sorted(Path(f).name for f in files) == ["LICENSE", "README.md", "channels.csv", "nodes.csv"]
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns["mcstore.mission"]), name


def test_one_registry_of_builtin_graphs_for_demo_eval_and_fit() -> None:
    assert calibrate.BUILTIN_GRAPHS is BUILTIN_GRAPHS
    assert list(BUILTIN_GRAPHS) == ["demo", "mainnet-2025"]
    assert BUILTIN_GRAPHS["mainnet-2025"]() is packaged_graph("mainnet-2025")
    assert BUILTIN_GRAPHS["demo"]() is demo_network().graph
    assert builtin_network("demo") is demo_network()
    assert builtin_network("mainnet-2025").graph is packaged_graph("mainnet-2025")
    for command in ("demo", "eval", "fit"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "mainnet-2025" in result.stdout, (command, result.output)


# -- the network over a graph ------------------------------------------------------------------------


def test_a_graph_network_has_a_channel_per_pair_and_a_node_of_ours(small_network: GraphNetwork) -> None:
    network = small_network
    graph = network.graph
    assert isinstance(graph, ChannelGraph) and len(network.channels) == len(graph) + OUR_CHANNELS
    keys = network.pubkeys
    me = network.source
    assert me == len(keys) - 1 and keys[me] not in {key for pair in graph.pairs for key in pair}
    ours = network.peers[me]
    degree = {node: len(network.peers[node]) - sum(c in ours for c in network.peers[node]) for node in range(me)}
    hubs = sorted(degree, key=lambda node: (-degree[node], keys[node]))[:OUR_CHANNELS]
    assert sorted(c.node_a for c in ours) == sorted(hubs) and all(c.node_b == me for c in ours)
    assert {c.capacity_sat for c in ours} == {OUR_CHANNEL_SAT}
    assert len({c.scid for c in network.channels}) == len(network.channels)
    for channel in network.channels:
        if channel not in ours:
            assert graph.capacity(keys[channel.node_a], keys[channel.node_b]) == channel.capacity_sat
        for policy in (channel.policy_a, channel.policy_b):  # as GRAPH_FEES and --graph's help say
            assert 0 <= policy.base_fee_msat <= 1000 and 1 <= policy.fee_ppm < 2000
            assert policy.cltv_delta in (40, 80, 144)
    assert network.payees == list(range(me))  # all reachable
    again = GraphNetwork(load_graph(graph.source), graph.source)
    assert again.pubkeys == keys and again.channels == network.channels  # deterministic


def test_payments_over_a_graph_are_between_the_stated_amounts(small_network: GraphNetwork) -> None:
    payer = RoutedPayments(small_network, seed=2, start_ns=DEMO_EPOCH_NS)
    for _ in payer.run(300):
        pass
    amounts = [o.amount_msat for o in payer.outcomes]
    low, high = (1000 * sat for sat in GRAPH_AMOUNTS_SAT)
    assert len(amounts) == 300 and all(low <= a <= high for a in amounts)
    assert min(amounts) < 10 * low and max(amounts) > high // 10  # spread over the range, log-uniform


def test_synthesized_channel_ids_avoid_the_graphs_own(small_network: GraphNetwork, tmp_path: Path) -> None:
    """A describegraph file has channel ids: the demo's are never among them, so that eval over the
    same file finds each channel by its node pair, with the capacity the demo routed with."""
    keys = small_network.pubkeys
    ours = set(small_network.peers[small_network.source])
    # The file's ids are the very ids the demo would have drawn: it must draw others.
    channels = [
        (keys[c.node_a], keys[c.node_b], c.capacity_sat, c.scid) for c in small_network.channels if c not in ours
    ]
    graph = load_graph(write_describegraph(tmp_path / "graph.json", channels))
    network = GraphNetwork(graph, "graph.json")
    assert not {c.scid for c in network.channels} & set(graph.channels)
    for c in network.channels:
        if network.source not in (c.node_a, c.node_b):
            assert graph.capacity(network.pubkeys[c.node_a], network.pubkeys[c.node_b], c.scid) == c.capacity_sat


def test_a_graph_without_channels_or_not_a_graph_is_a_one_line_error(tmp_path: Path) -> None:
    empty = write_csv(tmp_path / "empty.csv", {})
    with pytest.raises(ValueError, match="the graph has no channels"):
        GraphNetwork(load_graph(empty), "empty.csv")
    db = tmp_path / "mc.sqlite"
    one_line_error(run("demo", "--db", str(db), "--graph", str(empty)), 1, "empty.csv", "the graph has no channels")
    one_line_error(run("demo", "--db", str(db), "--graph", str(tmp_path / "none.csv")), 1, "none.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    one_line_error(run("demo", "--db", str(db), "--graph", str(tmp_path / "bad.csv")), 1, "bad.csv:1", "not a graph")
    assert not db.exists()  # refused before anything was written
    one_line_error(run("demo", "--balances", "lopsided"), 2, "--balances", "lopsided")


def near_an_end(liquidity: HiddenLiquidity, channels: list[routing_module.Channel], share: float) -> float:
    return sum(
        min(b := liquidity.balance(c, c.node_a), c.capacity_sat * 1000 - b) <= share * c.capacity_sat * 1000
        for c in channels
    ) / len(channels)


@settings(max_examples=max(5, settings().max_examples // 5))
@given(seed=st.integers(0, 2**32))
def test_balances_are_drawn_as_stated(small_network: GraphNetwork, seed: int) -> None:
    """uniform: a fifth of the channels within 10 % of an end, half the capacity on average;
    bimodal: nearly all (the channels have 5M sat and more), at 300k sat from the end on average."""
    channels = [c for c in small_network.channels if c.capacity_sat >= 5_000_000]
    assert len(channels) > 2000
    drawn = {kind: HiddenLiquidity(small_network, seed, kind) for kind in BALANCES}
    for liquidity in drawn.values():
        assert all(0 <= liquidity.balance(c, c.node_a) <= c.capacity_sat * 1000 for c in channels)
    uniform, bimodal = drawn["uniform"], drawn["bimodal"]
    assert 0.15 < near_an_end(uniform, channels, 0.1) < 0.25
    assert 0.45 < sum(uniform.balance(c, c.node_a) / (c.capacity_sat * 1000) for c in channels) / len(channels) < 0.55
    assert near_an_end(bimodal, channels, 0.1) > 0.9
    distance = sum(min(b := bimodal.balance(c, c.node_a), c.capacity_sat * 1000 - b) for c in channels) / len(channels)
    assert 0.88 * BIMODAL_BALANCE_SCALE_MSAT < distance < 1.12 * BIMODAL_BALANCE_SCALE_MSAT
    # Either end, with even odds.
    low = sum(bimodal.balance(c, c.node_a) < c.capacity_sat * 500 for c in channels) / len(channels)
    assert 0.4 < low < 0.6


# -- the demo's calibration, against mcstore eval ------------------------------------------------------


def calibration_rows(result: Result) -> tuple[int, dict[str, tuple[str, str]], str | None]:
    """The summary's calibration: the pairs scored, each estimator's (Brier, log loss) as printed,
    and the one marked as routing."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("calibration "))
    pairs = int(lines[start].split()[1])
    scores: dict[str, tuple[str, str]] = {}
    routed = None
    for line in lines[start + 1 : start + 4]:
        match = re.fullmatch(r"\s+(\w+)\s+(\S+)\s+Brier; log loss (\S+?)(; routed this run)?\s*", line)
        assert match is not None, line
        scores[match.group(1)] = (match.group(2), match.group(3))
        if match.group(4):
            routed = match.group(1)
    return pairs, scores, routed


def eval_json(db: Path, graph: str) -> dict[str, object]:
    result = run("eval", str(db), "--graph", graph, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(result.stdout)
    return document


def assert_printed_as_eval_scores(result: Result, db: Path, graph: str, routed: str | None) -> dict[str, object]:
    """The calibration the demo printed is what ``mcstore eval DB --graph GRAPH`` computes, and
    every channel the demo used is found in that graph."""
    document = eval_json(db, graph)
    observations = document["observations"]
    assert isinstance(observations, dict)
    assert observations["no_capacity"] == 0 and observations["routes_no_capacity"] == 0
    pairs, printed, marked = calibration_rows(result)
    assert marked == routed
    assert pairs == observations["pairs"] > 0
    estimators = document["estimators"]
    assert isinstance(estimators, dict) and list(printed) == list(estimators) == ["apriori", "bimodal", "historical"]
    for name, (brier, log_loss) in printed.items():
        scores = estimators[name]["pairs"]
        assert (brier, log_loss) == (score_text(scores["brier"]), score_text(scores["log_loss"])), name
    return document


def demo_args(db: Path, *extra: str) -> list[str]:
    return ["demo", "--db", str(db), "--max-records", "0", *extra]


def test_demo_over_a_csv_graph_prints_what_eval_computes(small_csv: Path, tmp_path: Path) -> None:
    db = tmp_path / "mc.sqlite"
    result = run(*demo_args(db, "--graph", str(small_csv), "--balances", "bimodal", "--payments", "80", "--seed", "3"))
    assert result.exit_code == 0, result.output
    assert f"over the graph {small_csv} (100 nodes, 2073 channels) and our node, with 6 channels" in result.stdout
    assert "Hidden balances: within an exponential distance (mean 300,000 sat" in result.stdout
    assert ": OK, the file passes PRAGMA quick_check and nothing accepted was lost." in result.stdout
    assert_printed_as_eval_scores(result, db, str(small_csv), "apriori")


def test_without_mission_control_the_side_by_side_calibration_is_shown_anyway(tmp_path: Path) -> None:
    db = tmp_path / "mc.sqlite"
    result = run(*demo_args(db, "--estimator", "none", "--payments", "60", "--seed", "4"))
    assert result.exit_code == 0, result.output
    assert_printed_as_eval_scores(result, db, "demo", None)


def demo_outcome(db: Path, **options: object) -> DemoOutcome:
    return trio.run(lambda: run_demo(str(db), max_records=0, **options))  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["demo", "describegraph"])
def test_the_demos_evaluation_is_evals_exactly(form: str, small_network: GraphNetwork, tmp_path: Path) -> None:
    """Not only as printed: the demo's Evaluation is eval's JSON, to the last bit."""
    if form == "demo":
        network, graph = demo_network(), "demo"
    else:
        keys = small_network.pubkeys
        path = write_describegraph(
            tmp_path / "graph.json",
            [(keys[c.node_a], keys[c.node_b], c.capacity_sat, 1000 + i) for i, c in enumerate(small_network.channels)
             if small_network.source not in (c.node_a, c.node_b)],
        )
        network, graph = GraphNetwork(load_graph(path), str(path)), str(path)
    db = tmp_path / "mc.sqlite"
    outcome = demo_outcome(db, payments=70, seed=5, network=network, estimator="bimodal", balances="uniform")
    assert outcome.calibration is not None and outcome.calibration.pairs > 0
    assert outcome.calibration.to_json() == eval_json(db, graph)


def test_a_continued_run_is_predicted_from_the_whole_history(tmp_path: Path) -> None:
    """The second run's results are scored from the state that the first run's left, as mission
    control routed them: the stored history is learnt first, not scored."""
    db = tmp_path / "mc.sqlite"
    first = demo_outcome(db, payments=40, seed=1, estimator="historical")
    second = demo_outcome(db, payments=40, seed=2, estimator="historical")
    assert second.replayed == first.results_sent
    expected = Evaluator(demo_network().graph, self_pubkey=demo_network().source_pubkey)
    for result in stored_results(db):
        if result.key in first.model_keys:
            expected.apply(result)
        else:
            expected.add(result)
    assert second.calibration is not None and second.calibration.results == second.results_sent
    assert second.calibration.to_json() == expected.evaluation().to_json()
    alone = Evaluator(demo_network().graph, self_pubkey=demo_network().source_pubkey)
    for result in stored_results(db):
        if result.key not in first.model_keys:
            alone.add(result)
    assert alone.evaluation().to_json() != second.calibration.to_json()  # the history mattered


def test_the_routing_estimator_is_scored_on_the_probabilities_it_routed_with(
    small_network: GraphNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each attempt's route probability, as the route search computed it with mission control,
    is the route prediction the evaluation scores for the estimator that routed."""
    searched: list[float] = []
    real: Callable[..., routing_module.FoundRoute | None] = routing_module.find_route

    def recording(*args: object, **kwargs: object) -> routing_module.FoundRoute | None:
        found = real(*args, **kwargs)
        if found is not None:
            searched.append(found.probability)
        return found

    monkeypatch.setattr(routing_module, "find_route", recording)
    outcome = demo_outcome(
        tmp_path / "mc.sqlite", payments=60, seed=8, network=small_network, estimator="bimodal", balances="bimodal"
    )
    results = stored_results(tmp_path / "mc.sqlite")
    assert len(searched) == len(results) == outcome.results_sent
    brier = sum((p - (r.failure is None)) ** 2 for p, r in zip(searched, results, strict=True)) / len(results)
    assert outcome.calibration is not None
    routes = outcome.calibration.estimators["bimodal"].routes
    assert routes.count == len(results) and routes.brier == pytest.approx(brier, rel=1e-9)


def test_over_a_graph_the_demo_is_deterministic_for_a_seed(small_csv: Path, tmp_path: Path) -> None:
    args = ["--graph", str(small_csv), "--payments", "50", "--seed", "9", "--balances", "bimodal"]
    first = run(*demo_args(tmp_path / "a.sqlite", *args))
    second = run(*demo_args(tmp_path / "b.sqlite", *args))
    assert first.exit_code == 0 and second.exit_code == 0
    assert calibration_rows(first) == calibration_rows(second)
    assert mc_rows(tmp_path / "a.sqlite") == mc_rows(tmp_path / "b.sqlite")
    uniform = run(*demo_args(tmp_path / "c.sqlite", *args[:-1], "uniform"))
    assert uniform.exit_code == 0 and mc_rows(tmp_path / "c.sqlite") != mc_rows(tmp_path / "a.sqlite")


def test_demo_plot_over_a_graph(small_csv: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "rate.png"
    result = run(*demo_args(tmp_path / "mc.sqlite", "--graph", str(small_csv), "--payments", "30", "--plot", str(png)))
    assert result.exit_code == 0, result.output
    assert f"Plot of the success rate over the run: {png}" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_eval_and_fit_over_mainnet(tmp_path: Path) -> None:
    """A modest run over the whole real graph; eval and fit then read its database with the same graph name."""
    db = tmp_path / "mainnet.sqlite"
    result = run(*demo_args(db, "--graph", "mainnet-2025", "--payments", "200", "--seed", "1", "--balances", "bimodal"))
    assert result.exit_code == 0, result.output
    assert "over the graph mainnet-2025 (1924 nodes, 10275 channels) and our node" in result.stdout
    document = assert_printed_as_eval_scores(result, db, "mainnet-2025", "apriori")
    assert document["self_pubkey"] == builtin_network("mainnet-2025").source_pubkey.hex()
    fitted = run("fit", str(db), "--graph", "mainnet-2025", "--estimator", "bimodal", "--json")
    assert fitted.exit_code == 0, fitted.output
    assert json.loads(fitted.stdout)["test_results"] > 0


# -- the docs' figures ---------------------------------------------------------------------------------


def documented_demo_rows() -> list[tuple[str, str, list[str]]]:
    """The rows of the CLI page's table of the default demo, seed 42: (estimator, database, figures)."""
    rows = []
    for line in CLI_PAGE.read_text().splitlines():
        match = re.fullmatch(r"\| `mcstore demo --seed 42 --estimator (\w+) --db (\w+\.sqlite)` \| (.*) \|", line)
        if match:
            rows.append((match.group(1), match.group(2), [cell.strip() for cell in match.group(3).split("|")]))
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["apriori", "none"])
def test_the_documented_figures_of_the_default_demo_still_hold(estimator: str, tmp_path: Path) -> None:
    (row,) = [r for r in documented_demo_rows() if r[0] == estimator]
    result = run("demo", "--seed", "42", "--estimator", estimator, "--db", str(tmp_path / row[1]))
    assert result.exit_code == 0, result.output
    summary = {line.split("  ")[0].strip(): line for line in result.stdout.splitlines()}

    def cells(label: str) -> str:
        match = re.search(r"([\d.]+)%\s+succeeded of \d+ payments, ([\d.]+) attempts each", summary[label])
        assert match is not None, summary[label]
        return f"{match.group(1)} %, {match.group(2)}"

    assert [cells("first tenth"), cells("last tenth"), summary["attempts"].split()[1]] == row[2]
