"""Tests of ``mcstore querymc``, ``mcstore queryprob`` and the learning demo, through the real command.

Each command runs in-process with ``CliRunner`` on real SQLite files: a demo database and a
database imported from an lnd ``channel.sqlite`` with ``mcstore import-lnd``. Expected values
come from the library (:mod:`mcstore.mission`), fed independently of the command's own code
path, so that the command's replay, conversions and JSON are what is checked.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result
from lnd_fixture import build_channel_db

from mcstore import Hop, PaymentFailure, PaymentResult, Route, encode_result, open_store
from mcstore.backends._lock import NamespaceLock
from mcstore.cli import cli
from mcstore.cli import routing as routing_module
from mcstore.cli.demo import SyntheticNetwork, demo_network
from mcstore.cli.mission_cmds import pair_data, parse_time
from mcstore.cli.routing import (
    MIN_ROUTE_PROBABILITY,
    PaymentOutcome,
    RoutedPayments,
    find_route,
    learning,
    success_curve,
)
from mcstore.mission import (
    AprioriEstimator,
    HistoricalEstimator,
    MissionControlState,
    TimedPairResult,
    make_estimator,
)
from mcstore.model import TEMPORARY_CHANNEL_FAILURE, UNKNOWN_NEXT_PEER

NS = 1_000_000_000
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
PAIR_DATA_KEYS = ["fail_time", "fail_amt_sat", "fail_amt_msat", "success_time", "success_amt_sat", "success_amt_msat"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(result: Result, exit_code: int, *needles: str) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def stored_results(db: Path, namespace: str = "default") -> list[PaymentResult]:
    async def main() -> list[PaymentResult]:
        async with open_store(db, namespace=namespace, max_records=0) as store:
            return await store.fetch_all()

    return trio.run(main)


def replayed_state(db: Path, namespace: str = "default", learners: tuple[object, ...] = ()) -> MissionControlState:
    """The state the library builds from the stored results (fetched through a store, in key
    order), teaching ``learners``."""
    state = MissionControlState(learners=learners)
    for result in stored_results(db, namespace):
        state.apply_result(result)
    return state


def files_beside(db: Path) -> set[str]:
    return {p.name for p in db.parent.iterdir()}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    result = run("demo", "--db", str(db), "--payments", "150", "--seed", "3")
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture(scope="module")
def lnd_db(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> Path:
    """An mcstore database imported with ``import-lnd`` from an lnd ``channel.sqlite``."""
    directory = tmp_path_factory.mktemp("lnd")
    lnd = directory / "channel.sqlite"
    rows = [encode_result(r) for r in stored_results(demo_db)]
    build_channel_db(str(lnd), {"default": rows})
    db = directory / "imported.sqlite"
    result = run("import-lnd", str(lnd), str(db), "--max-records", "0")
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture(params=["demo", "lnd"])
def any_db(request: pytest.FixtureRequest, demo_db: Path, lnd_db: Path) -> Path:
    return demo_db if request.param == "demo" else lnd_db


# -- querymc ----------------------------------------------------------------------------------


def expected_querymc(state: MissionControlState) -> dict[str, object]:
    return {
        "pairs": [
            {"node_from": a.hex(), "node_to": b.hex(), "history": pair_data(h)}
            for (a, b), h in sorted(state.pairs().items())
        ]
    }


def test_querymc_json_is_the_replayed_state_in_lncli_shape(any_db: Path) -> None:
    result = run("querymc", str(any_db), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    state = replayed_state(any_db)
    assert len(state.pairs()) > 20
    assert document == expected_querymc(state)
    for pair in document["pairs"]:
        assert list(pair) == ["node_from", "node_to", "history"]
        assert list(pair["history"]) == PAIR_DATA_KEYS
        assert all(isinstance(v, str) and re.fullmatch(r"-?\d+", v) for v in pair["history"].values())
        history = state.pairs()[(bytes.fromhex(pair["node_from"]), bytes.fromhex(pair["node_to"]))]
        assert int(pair["history"]["fail_amt_msat"]) == history.fail_amt_msat
        assert int(pair["history"]["success_time"]) == (
            0 if history.success_time_ns is None else history.success_time_ns // NS
        )


def test_querymc_json_of_a_known_history_exactly(tmp_path: Path) -> None:
    """lnd's rules and lncli's marshalling, worked out by hand for one failed attempt."""
    src, n1, n2 = (bytes([2, i]) + bytes(31) for i in (1, 2, 3))
    route = Route(src, 100_999, [Hop(1, n1, 50_500), Hop(2, n2, 50_500)])
    # Node 1 could not forward 50_500 msat to node 2 (temporary_channel_failure at index 1):
    # lnd records a success src -> n1 for 100_999 msat and a failure n1 -> n2 for 50_500 msat;
    # lncli shows both, times in Unix seconds (rounded down), amounts in msat and in whole sat.
    failed = PaymentResult(7, T0, T0 + 1_500_000_000, route, PaymentFailure.from_code(1, TEMPORARY_CHANNEL_FAILURE))
    db = tmp_path / "mc.sqlite"
    trio.run(_store, db, [failed])
    result = run("querymc", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        json.dumps(
            {
                "pairs": [
                    {
                        "node_from": src.hex(),
                        "node_to": n1.hex(),
                        "history": {
                            "fail_time": "0",
                            "fail_amt_sat": "0",
                            "fail_amt_msat": "0",
                            "success_time": "1767225601",
                            "success_amt_sat": "100",
                            "success_amt_msat": "100999",
                        },
                    },
                    {
                        "node_from": n1.hex(),
                        "node_to": n2.hex(),
                        "history": {
                            "fail_time": "1767225601",
                            "fail_amt_sat": "50",
                            "fail_amt_msat": "50500",
                            "success_time": "0",
                            "success_amt_sat": "0",
                            "success_amt_msat": "0",
                        },
                    },
                ]
            },
            indent=4,
        )
        + "\n"
    )


async def _store(db: Path, results: list[PaymentResult]) -> None:
    async with open_store(db, max_records=0) as store:
        for r in results:
            store.add_result(r)


def test_pair_data_conversions() -> None:
    # Go: int64(uint64) wraps, Time.Unix() rounds down, ToSatoshis() truncates.
    data = pair_data(TimedPairResult(fail_time_ns=-1, fail_amt_msat=2**64 - 1, success_time_ns=1_999_999_999))
    assert data == {
        "fail_time": "-1",
        "fail_amt_sat": str((2**64 - 1) // 1000),
        "fail_amt_msat": "-1",
        "success_time": "1",
        "success_amt_sat": "0",
        "success_amt_msat": "0",
    }
    assert pair_data(None) == dict.fromkeys(PAIR_DATA_KEYS, "0")


def test_querymc_table(any_db: Path) -> None:
    result = run("querymc", str(any_db))
    assert result.exit_code == 0, result.output
    state = replayed_state(any_db)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{len(state.pairs())} node pairs from ")
    assert lines[1].split()[:4] == ["from", "to", "fail", "time"]
    rows = lines[2:]
    assert len(rows) == len(state.pairs())
    for (a, b), history in sorted(state.pairs().items()):
        row = next(line for line in rows if line.startswith(f"{a.hex()}  {b.hex()}"))
        assert f"{history.success_amt_msat:,} msat" in row
        assert f"{history.fail_amt_msat:,} msat" in row


def test_querymc_is_read_only_and_takes_no_lock(demo_db: Path) -> None:
    before, files = digest(demo_db), files_beside(demo_db)
    # A writer holds the namespace: the readers need no lock, so they still work.
    lock = NamespaceLock(str(demo_db), "default")
    lock.acquire()
    try:
        assert run("querymc", str(demo_db), "--json").exit_code == 0
        assert run("querymc", str(demo_db)).exit_code == 0
        pubkey = demo_network().source_pubkey.hex()
        assert run("queryprob", str(demo_db), pubkey, pubkey, "1000", "--capacity-sat", "10").exit_code == 0
    finally:
        lock.release()
    assert digest(demo_db) == before
    assert files_beside(demo_db) == files


def test_querymc_errors_and_unknown_namespace(demo_db: Path, tmp_path: Path) -> None:
    one_line_error(run("querymc", str(tmp_path / "missing.sqlite")), 1, "missing.sqlite", "no such file")
    assert not (tmp_path / "missing.sqlite").exists()
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t(x)")
    one_line_error(run("querymc", str(other)), 1, "not an mcstore database")
    result = run("querymc", str(demo_db), "--namespace", "nope", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"pairs": []}
    assert "namespace 'nope' holds no records" in result.stderr


# -- queryprob --------------------------------------------------------------------------------


def some_pair(state: MissionControlState, *, failed: bool) -> tuple[bytes, bytes, TimedPairResult]:
    for (a, b), h in sorted(state.pairs().items()):
        if (h.fail_time_ns is not None) == failed and a != demo_network().source_pubkey:
            return a, b, h
    raise AssertionError("no such pair")


@pytest.mark.parametrize("estimator", ["apriori", "bimodal", "historical"])
@pytest.mark.parametrize("failed", [True, False])
def test_queryprob_is_the_estimate_of_the_replayed_state(any_db: Path, estimator: str, failed: bool) -> None:
    model = make_estimator(estimator)
    state = replayed_state(any_db, learners=(model,))  # the historical estimator learns the replay
    a, b, history = some_pair(state, failed=failed)
    last = max(history.fail_time_ns or 0, history.success_time_ns or 0)
    at_ns = last + 600 * NS + 123  # --at takes up to nine decimals: exact ns
    amount, capacity = 250_000_000, 2_000_000
    expected = model.pair_probability(at_ns, state.results_from(a), b, amount, capacity)
    if estimator == "historical":  # what it learnt matters: untaught, it gives another value
        assert expected != HistoricalEstimator().pair_probability(at_ns, state.results_from(a), b, amount, capacity)
    args = [str(any_db), a.hex(), b.hex(), str(amount), "--capacity-sat", str(capacity)]
    args += ["--estimator", estimator, "--at", f"{at_ns // NS}.{at_ns % NS:09d}"]
    result = run("queryprob", *args, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["probability", "history"]
    assert document["probability"] == expected
    assert document["history"] == pair_data(history)
    text = run("queryprob", *args)
    assert text.exit_code == 0
    assert f"probability  {expected:.6f}" in text.stdout
    assert f"{a.hex()} -> {b.hex()}" in text.stdout
    assert "pair estimate" in text.stdout


def test_queryprob_uses_the_local_estimate_for_our_own_channels(any_db: Path) -> None:
    state = replayed_state(any_db)
    me = demo_network().source_pubkey
    peers = sorted(state.results_from(me))
    assert peers
    peer = peers[0]
    at = "2026-01-01T01:00:00Z"
    at_ns = T0 + 3600 * NS
    local = AprioriEstimator().local_pair_probability(at_ns, state.results_from(me), peer)
    pair = AprioriEstimator().pair_probability(at_ns, state.results_from(me), peer, 1000, 100_000)
    base = ["queryprob", str(any_db), me.hex(), peer.hex(), "1000", "--capacity-sat", "100000", "--at", at, "--json"]
    # Without --self, the node is the source of the stored results.
    assert json.loads(run(*base).stdout)["probability"] == local
    assert json.loads(run(*base, "--self", me.hex()).stdout)["probability"] == local
    other = bytes([3]) + bytes(32)
    assert json.loads(run(*base, "--self", other.hex()).stdout)["probability"] == pair
    assert "local estimate" in run(*base[:-1]).stdout


def test_queryprob_of_an_unknown_pair(demo_db: Path) -> None:
    a, b = (bytes([2, i]) + bytes(31) for i in (8, 9))
    result = run("queryprob", str(demo_db), a.hex(), b.hex(), "0", "--capacity-sat", "1000", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"probability": 0.6, "history": dict.fromkeys(PAIR_DATA_KEYS, "0")}
    assert (
        "knows nothing of this pair"
        in run("queryprob", str(demo_db), a.hex(), b.hex(), "0", "--capacity-sat", "1").stdout
    )
    # Go's protobuf JSON writes a whole double without a fraction: 1, not 1.0.
    certain = ["queryprob", str(demo_db), a.hex(), b.hex(), "0", "--capacity-sat", "1000", "--estimator", "bimodal"]
    assert '"probability": 1,' in run(*certain, "--json").stdout


@pytest.mark.parametrize(
    "change, needles",
    [
        ({1: "zz"}, ["FROM", "'zz' is not hex"]),
        ({2: "0203"}, ["TO", "'0203' is 2 bytes"]),
        ({3: "12x"}, ["AMT_MSAT", "'12x' is not an amount"]),
        ({3: "-5"}, ["'-5'"]),  # click reads it as an option, and says so
        ({3: str(2**64)}, ["AMT_MSAT", str(2**64)]),
        ({"--at": "yesterday"}, ["--at", "'yesterday' is not a time"]),
        ({"--at": "2026-13-01"}, ["--at", "'2026-13-01'"]),
        ({"--self": "02" * 32}, ["--self", "is 32 bytes"]),
        ({"--capacity-sat": "-1"}, ["--capacity-sat", "-1"]),
        ({"--estimator": "linear"}, ["--estimator", "linear"]),
        ({"--capacity-sat": None}, ["--capacity-sat"]),
    ],
)
def test_queryprob_usage_errors_name_the_value(
    demo_db: Path, change: dict[object, str | None], needles: list[str]
) -> None:
    key = ("02" * 33, "03" * 33)
    positional = [str(demo_db), key[0], key[1], "1000"]
    options = {"--capacity-sat": "10"}
    for where, value in change.items():
        if isinstance(where, int):
            assert value is not None
            positional[where] = value
        elif value is None:
            del options[where]
        else:
            options[str(where)] = value
    args = positional + [x for item in options.items() for x in item]
    one_line_error(run("queryprob", *args), 2, *needles)


def test_parse_time() -> None:
    assert parse_time("1767225600") == T0
    assert parse_time("1767225600.5") == T0 + NS // 2
    assert parse_time("-1.25") == -1_250_000_000
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T00:00:00") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01T00:00:00.000001Z") == T0 + 1000
    assert abs(parse_time("now") - parse_time("NOW")) < 60 * NS
    with pytest.raises(ValueError, match="'soon' is not a time"):
        parse_time("soon")


@pytest.mark.parametrize("command", ["querymc", "queryprob"])
def test_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert f"{command} [OPTIONS] DB" in result.stdout
    assert "Read-only" in result.stdout


# -- the learning demo ------------------------------------------------------------------------


def demo_rows(result: Result) -> dict[str, list[str]]:
    """The summary's rows, by their first word(s): ``{"first tenth": ["84.0%", ...]}``."""
    rows: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        for label in ("first tenth", "last tenth", "attempts sent", "attempts", "routing", "replayed", "payments"):
            if line.startswith(label + " "):
                rows.setdefault(label, line[len(label) :].split())
                break
    return rows


def attempts_each(result: Result, which: str) -> float:
    match = re.search(r"([\d.]+) attempts each", " ".join(demo_rows(result)[which]))
    assert match is not None, result.stdout
    return float(match.group(1))


def rate(result: Result, which: str) -> float:
    return float(demo_rows(result)[which][0].rstrip("%"))


@pytest.mark.parametrize("seed, estimator", [(4, "apriori"), (5, "bimodal"), (6, "historical")])
def test_the_demo_learns(tmp_path: Path, seed: int, estimator: str) -> None:
    """With mission control the last tenth succeeds more often than the first, with fewer attempts,
    and more often than the same payments routed without mission control."""
    common = ["demo", "--payments", "1000", "--seed", str(seed)]
    learnt = run(*common, "--db", str(tmp_path / "mc.sqlite"), "--estimator", estimator)
    blind = run(*common, "--db", str(tmp_path / "none.sqlite"), "--estimator", "none")
    for result in (learnt, blind):
        assert result.exit_code == 0, result.output
        assert ": OK, the file passes PRAGMA quick_check and nothing accepted was lost." in result.stdout
    assert demo_rows(learnt)["routing"][:3] == [estimator, "mission", "control,"]
    assert demo_rows(blind)["routing"][:4] == ["none", "the", "cheapest", "route,"]
    assert rate(learnt, "last tenth") > rate(learnt, "first tenth")
    assert rate(learnt, "last tenth") > rate(blind, "last tenth")
    learnt_rows, blind_rows = demo_rows(learnt), demo_rows(blind)
    assert attempts_each(learnt, "last tenth") < attempts_each(learnt, "first tenth")
    assert float(learnt_rows["attempts"][0]) < float(blind_rows["attempts"][0])


def test_the_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    args = ["demo", "--payments", "120", "--seed", "9", "--max-records", "0"]
    first = run(*args, "--db", str(tmp_path / "a.sqlite"))
    second = run(*args, "--db", str(tmp_path / "b.sqlite"))
    assert first.exit_code == 0 and second.exit_code == 0
    assert demo_rows(first) == demo_rows(second)
    assert mc_rows(tmp_path / "a.sqlite") == mc_rows(tmp_path / "b.sqlite")
    other = run(*args[:-4], "--seed", "10", "--max-records", "0", "--db", str(tmp_path / "c.sqlite"))
    assert mc_rows(tmp_path / "c.sqlite") != mc_rows(tmp_path / "a.sqlite")
    assert other.exit_code == 0


def mc_rows(db: Path) -> list[tuple[str, bytes, bytes]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT namespace, key, value FROM mc_results ORDER BY 1, 2").fetchall()


def test_a_second_demo_run_replays_the_history(tmp_path: Path) -> None:
    db = tmp_path / "mc.sqlite"
    assert run("demo", "--payments", "50", "--seed", "1", "--db", str(db)).exit_code == 0
    stored = len(mc_rows(db))
    again = run("demo", "--payments", "50", "--seed", "2", "--db", str(db))
    assert again.exit_code == 0
    assert demo_rows(again)["replayed"][:3] == [str(stored), "stored", "results,"]


def test_demo_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "rate.png"
    result = run("demo", "--payments", "60", "--seed", "1", "--db", str(tmp_path / "mc.sqlite"), "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert f"Plot of the success rate over the run: {png}" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_plot_without_matplotlib_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = routing_module.importlib.util.find_spec

    def no_matplotlib(name: str, *args: object) -> object:
        return None if name == "matplotlib" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(routing_module.importlib.util, "find_spec", no_matplotlib)
    db = tmp_path / "mc.sqlite"
    one_line_error(run("demo", "--db", str(db), "--plot", str(tmp_path / "x.png")), 1, "--plot needs matplotlib")
    assert not db.exists()  # refused before anything was written


def test_demo_plot_into_a_missing_directory_fails_before_anything_runs(tmp_path: Path) -> None:
    # Issue 17 item 15: it failed only after the whole run. matplotlib does not matter here.
    db = tmp_path / "mc.sqlite"
    png = tmp_path / "no" / "such" / "rate.png"
    result = run("demo", "--db", str(db), "--plot", str(png))
    one_line_error(result, 1, str(png), f"directory {str(png.parent)!r} does not exist")
    assert not db.exists()  # refused before anything was written


def test_demo_rejects_an_unknown_estimator() -> None:
    one_line_error(run("demo", "--estimator", "magic"), 2, "--estimator", "magic")


# -- routing ----------------------------------------------------------------------------------


def small_network() -> SyntheticNetwork:
    return SyntheticNetwork(seed=5, nodes=40)


def check_route(network: SyntheticNetwork, target: int, amount: int, route: routing_module.FoundRoute) -> None:
    nodes = [network.source] + [node for _channel, node in route.path]
    assert nodes[-1] == target and len(set(nodes)) == len(nodes)  # loop-free
    previous = network.source
    for j, (channel, node) in enumerate(route.path):
        assert {channel.node_a, channel.node_b} == {previous, node}
        assert route.receives_msat[j] <= channel.capacity_sat * 1000
        if j + 1 < len(route.path):
            # Node j + 1 receives what it forwards plus its fee for the next channel.
            next_channel = route.path[j + 1][0]
            assert route.receives_msat[j] == route.receives_msat[j + 1] + next_channel.policy_of(node).fee(
                route.receives_msat[j + 1]
            )
        previous = node
    assert route.receives_msat[-1] == amount
    assert route.total_msat == route.receives_msat[0]


def cheapest_fee(network: SyntheticNetwork, target: int, amount: int) -> int:
    """Brute force over every loop-free path of up to 5 hops: the smallest weight (fees + time-lock risk)."""
    best = None

    def walk(node: int, visited: list[int], path: list[tuple[object, int]]) -> Iterator[list[tuple[object, int]]]:
        if node == target:
            yield list(path)
            return
        if len(path) == 5:
            return
        for channel in network.peers[node]:
            other = channel.node_b if channel.node_a == node else channel.node_a
            if other not in visited:
                yield from walk(other, [*visited, other], [*path, (channel, other)])

    for path in walk(network.source, [network.source], []):
        receives = amount
        weight = 0
        ok = True
        for j in range(len(path) - 1, -1, -1):
            channel, _node = path[j]
            if receives > channel.capacity_sat * 1000:  # type: ignore[attr-defined]
                ok = False
                break
            sender = network.source if j == 0 else path[j - 1][1]
            if sender != network.source:
                policy = channel.policy_of(sender)  # type: ignore[attr-defined]
                fee = policy.fee(receives)
                weight += fee + receives * policy.cltv_delta * 15 // 1_000_000_000
                receives += fee
        if ok and (best is None or weight < best):
            best = weight
    assert best is not None
    return best


def test_find_route_without_probabilities_is_the_cheapest_route() -> None:
    network = small_network()
    rng = random.Random(1)
    for _ in range(15):
        target = rng.randrange(len(network.pubkeys) - 1)
        amount = rng.choice((1000, 50_000_000, 400_000_000))
        route = find_route(network, target, amount, T0, None)
        if route is None:
            continue
        check_route(network, target, amount, route)
        weight = 0
        for j in range(1, len(route.path)):
            policy = route.path[j][0].policy_of(route.path[j - 1][1])
            fee = policy.fee(route.receives_msat[j])
            weight += fee + route.receives_msat[j] * policy.cltv_delta * 15 // 1_000_000_000
        if len(route.path) <= 5:
            assert weight == cheapest_fee(network, target, amount)


def test_find_route_follows_the_probabilities() -> None:
    network = small_network()
    target = 7
    plain = find_route(network, target, 10_000_000, T0, None)
    assert plain is not None
    # Make the route found impossible, channel by channel: the search must go around it.
    banned = {(network.pubkeys[a], network.pubkeys[b]) for a, b in _pairs(network, plain)}
    asked: list[float] = []

    def probability(a: bytes, b: bytes, amount: int, capacity: int, now: int) -> float:
        assert now == T0 and capacity > 0 and amount >= 10_000_000
        p = 0.0 if (a, b) in banned else 0.9
        asked.append(p)
        return p

    around = find_route(network, target, 10_000_000, T0, probability)
    assert asked
    if around is not None:
        check_route(network, target, 10_000_000, around)
        assert not set(_pairs(network, around)) & set(_pairs(network, plain))
        assert around.probability == pytest.approx(0.9 ** len(around.path))
    # A route below the minimum probability is not tried at all.
    assert find_route(network, target, 10_000_000, T0, lambda *_: MIN_ROUTE_PROBABILITY / 2) is None
    # Excluded pairs are avoided just as zero probabilities are.
    excluded = frozenset(_pairs(network, plain))
    other = find_route(network, target, 10_000_000, T0, None, excluded=excluded)
    assert other is None or not set(_pairs(network, other)) & excluded


def _pairs(network: SyntheticNetwork, route: routing_module.FoundRoute) -> list[tuple[int, int]]:
    nodes = [network.source] + [node for _channel, node in route.path]
    return list(zip(nodes, nodes[1:], strict=False))


def test_a_payment_is_listed_as_over_before_its_last_result_is_handed_out() -> None:
    # Issue 17 item 15: stopped by Ctrl-C, the demo said "payments 3919" and "over 3918
    # payments": the payment whose last result had been handed out was not listed yet. A
    # caller that stops after any result sees exactly the payments that are over, and at most
    # one more started.
    network = demo_network()
    full = RoutedPayments(network, seed=9, start_ns=T0)
    results = list(full.run(60))
    # After how many results each payment is over: its last attempt's, or for a payment that
    # found no route, the first result after it (the generator reaches it when resumed).
    over_at: list[int] = []
    seen = 0
    for outcome in full.outcomes:
        seen += outcome.attempts
        over_at.append(seen if outcome.attempts else seen + 1)
    payer = RoutedPayments(network, seed=9, start_ns=T0)
    for k, result in enumerate(payer.run(60), 1):
        assert result == results[k - 1]
        assert len(payer.outcomes) == sum(at <= k for at in over_at), k
        assert payer.outcomes == full.outcomes[: len(payer.outcomes)]
        assert payer.payments_started - len(payer.outcomes) in (0, 1)
    assert payer.outcomes == full.outcomes and len(payer.outcomes) == 60


def test_failures_follow_from_the_hidden_balances() -> None:
    network = demo_network()
    payer = RoutedPayments(network, seed=4, start_ns=T0)
    codes: set[int | None] = set()
    for result in payer.run(300):
        hops = result.route.hops
        nodes = [network.pubkeys.index(result.route.source_pubkey)] + [network.pubkeys.index(h.pubkey) for h in hops]
        channels = [next(c for c in network.channels if c.scid == h.channel_id) for h in hops]
        carried = [result.route.total_amount_msat] + [h.amount_to_forward_msat for h in hops[:-1]]
        failure = result.failure
        k = (
            len(hops)
            if failure is None or failure.code != TEMPORARY_CHANNEL_FAILURE and failure.code != UNKNOWN_NEXT_PEER
            else failure.source_index
        )
        assert k is not None
        codes.add(None if failure is None else failure.code)
        # Every channel before the failing one had the balance and was online...
        for j in range(1, k):
            assert channels[j].scid not in payer.liquidity.offline
            assert payer.liquidity.balance(channels[j], nodes[j]) >= carried[j]
        # ... and the failing one had not, or was offline.
        if k < len(hops):
            short = payer.liquidity.balance(channels[k], nodes[k]) < carried[k]
            offline = channels[k].scid in payer.liquidity.offline
            assert (failure is not None) and (
                (failure.code == UNKNOWN_NEXT_PEER and offline) or (failure.code == TEMPORARY_CHANNEL_FAILURE and short)
            )
    assert {None, TEMPORARY_CHANNEL_FAILURE} <= codes
    assert len(payer.outcomes) == 300


def test_learning_summary_and_curve() -> None:
    outcomes = [PaymentOutcome(i, 1000, 1 + (i < 10), i >= 5) for i in range(40)]
    summary = learning(outcomes)
    assert summary is not None
    assert (summary.tenth, summary.first_success_rate, summary.last_success_rate) == (4, 0.0, 1.0)
    assert (summary.first_attempts, summary.last_attempts, summary.mean_attempts) == (2.0, 1.0, 1.25)
    assert learning([]) is None
    assert success_curve(outcomes, 4)[:8] == [0, 0, 0, 0, 0, 0.25, 0.5, 0.75]
    with pytest.raises(ValueError):
        success_curve(outcomes, 0)


def test_querymc_skips_and_reports_undecodable_rows_without_deleting_them(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.sqlite"
    db.write_bytes(demo_db.read_bytes())
    results = stored_results(db)
    bad = results[len(results) // 2]
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE mc_results SET value = ? WHERE key = ?", (b"\x01\x02", bad.key))
        conn.commit()
    before = digest(db)
    result = run("querymc", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert f"skipping undecodable row key={bad.key.hex()}" in result.stderr
    state = MissionControlState()
    for r in results:
        if r.key != bad.key:
            state.apply_result(r)
    assert json.loads(result.stdout) == expected_querymc(state)
    assert digest(db) == before  # reported, never deleted
