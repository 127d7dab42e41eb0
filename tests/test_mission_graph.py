"""Tests of the channel graph loader (:mod:`mcstore.mission.graph`): CSV and lncli describegraph JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import mcstore.mission
from mcstore.mission import ChannelGraph, GraphError, load_graph
from mcstore.mission.graph import MAX_LINE

DATA = Path(__file__).parent / "data"
EXCERPT = DATA / "ln-graph-2025-04-30-excerpt.csv"
# The whole graph, as the package ships it (mcstore/mission/data; a copy of ../shared/data's).
REAL_GRAPH = Path(mcstore.mission.__file__).parent / "data" / "ln-graph-2025-04-30" / "channels.csv"

A = bytes([2]) + bytes(range(1, 33))
B = bytes([3]) + bytes(range(33, 65))
C = bytes([2]) + bytes(32)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_real_graphs_excerpt() -> None:
    """Every row of the excerpt (25 pairs of the real network) is found, in both directions."""
    graph = load_graph(EXCERPT)
    with EXCERPT.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 25 and len(graph) == 25
    assert graph.source == str(EXCERPT)
    for row in rows:
        a, b = bytes.fromhex(row["node1_pubkey"]), bytes.fromhex(row["node2_pubkey"])
        assert graph.capacity(a, b) == int(row["capacity_sat"])
        assert graph.capacity(b, a) == int(row["capacity_sat"])
        assert graph.capacity(a, b, channel_id=123) == int(row["capacity_sat"])  # a CSV has no ids
    assert graph.capacity(A, B) is None
    assert graph.channels == {}


def test_the_whole_real_graph() -> None:
    graph = load_graph(REAL_GRAPH)
    assert len(graph) == 10_275  # as its README says
    assert len({key for pair in graph.pairs for key in pair}) == 1_924
    assert min(graph.pairs.values()) > 5_000_000


def test_csv_sums_the_channels_of_a_pair_whatever_their_direction_and_ignores_other_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "g.csv",
        f"capacity_sat,node2_pubkey,note,node1_pubkey\n"
        f"100,{B.hex()},x,{A.hex()}\n"
        f"\n"
        f"250,{A.hex()},y,{B.hex()}\n"
        f"7,{C.hex()},z,{A.hex()}\n",
    )
    graph = load_graph(path)
    assert graph.capacity(A, B) == graph.capacity(B, A) == 350
    assert graph.capacity(C, A) == 7
    assert graph.capacity(B, C) is None
    assert len(graph) == 2


def test_a_byte_order_mark_and_leading_white_space_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes(b"\xef\xbb\xbfnode1_pubkey,node2_pubkey,capacity_sat\r\n" + f"{A.hex()},{B.hex()},5\r\n".encode())
    assert load_graph(path).capacity(A, B) == 5
    edges = {"edges": [{"channel_id": "1", "node1_pub": A.hex(), "node2_pub": B.hex(), "capacity": "9"}]}
    path.write_bytes(b"\xef\xbb\xbf\n  " + json.dumps(edges).encode())
    assert load_graph(path).capacity(A, B) == 9


def describegraph(*edges: tuple[str | int, bytes, bytes, str | int]) -> str:
    """The shape lncli prints (64-bit integers as strings), with policies and nodes that the loader drops."""
    policy = {"time_lock_delta": 80, "min_htlc": "1000", "fee_base_msat": "1000", "disabled": False}
    return json.dumps(
        {
            "nodes": [{"pub_key": A.hex(), "alias": "a", "addresses": [], "features": {"0": {"name": "x"}}}],
            "edges": [
                {
                    "channel_id": cid,
                    "chan_point": "00" * 32 + ":0",
                    "last_update": 0,
                    "node1_pub": n1.hex(),
                    "node2_pub": n2.hex(),
                    "capacity": cap,
                    "node1_policy": policy,
                    "node2_policy": None,
                    "custom_records": {},
                }
                for cid, n1, n2, cap in edges
            ],
        },
        indent=4,
    )


def test_describegraph_looks_channels_up_by_id_first_then_by_pair(tmp_path: Path) -> None:
    path = write(
        tmp_path / "graph.json",
        describegraph(("946055475327746049", A, B, "1000000"), ("17", B, A, 500), (18, C, A, "30")),
    )
    graph = load_graph(path)
    assert graph.channels == {946055475327746049: 1_000_000, 17: 500, 18: 30}
    assert graph.capacity(A, B, 946055475327746049) == 1_000_000  # the channel itself
    assert graph.capacity(B, A, 17) == 500
    assert graph.capacity(A, B, 99) == 1_000_500  # unknown id: the pair, both channels
    assert graph.capacity(A, B) == 1_000_500
    assert graph.capacity(A, C) == 30
    assert graph.capacity(B, C, 17) == 500  # an id wins over the pair it names (lnd's scid lookup)


def test_from_channels_and_repr() -> None:
    graph = ChannelGraph.from_channels([(A, B, 10, 1), (B, A, 5, None)], source="here")
    assert graph.capacity(A, B) == 15 and graph.capacity(A, B, 1) == 10
    assert "pairs=1 channels=1" in repr(graph) and "here" in repr(graph)


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a,b,c\n1,2,3\n", ":1:", "must name node1_pubkey, node2_pubkey, capacity_sat (missing node1_pubkey"),
        ("", ":1:", "missing node1_pubkey"),
        (
            f"node1_pubkey,node2_pubkey,capacity_sat\n{A.hex()},{B.hex()},10\n{A.hex()},zz,5\n",
            ":3:",
            "node2_pubkey is not hex: 'zz'",
        ),
        (
            f"node1_pubkey,node2_pubkey,capacity_sat\n{A.hex()[:-2]},{B.hex()},10\n",
            ":2:",
            "node1_pubkey must be 33 bytes",
        ),
        (
            f"node1_pubkey,node2_pubkey,capacity_sat\n{A.hex()},{B.hex()},-1\n",
            ":2:",
            "capacity_sat must be a whole number from 1",
        ),
        (f"node1_pubkey,node2_pubkey,capacity_sat\n{A.hex()},{B.hex()},0\n", ":2:", "got '0'"),
        (f"node1_pubkey,node2_pubkey,capacity_sat\n{A.hex()},{B.hex()},1.5\n", ":2:", "got '1.5'"),
        (f"node1_pubkey,node2_pubkey,capacity_sat\n{A.hex()},{B.hex()}\n", ":2:", "expected 3 columns, got 2"),
        (f"node1_pubkey,node2_pubkey,capacity_sat\n{A.hex()},{A.hex()},3\n", ":2:", "to itself"),
        ('{"edges": [', ":1:12:", "not valid JSON"),
        ('{"nodes": []}', ".json:", 'expected an object with an "edges" list'),
        ("[1, 2]", ".json:", 'expected an object with an "edges" list'),
    ],
)
def test_bad_input_names_the_place_and_the_value(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = write(tmp_path / ("g.json" if text.lstrip().startswith(("{", "[")) else "g.csv"), text)
    with pytest.raises(GraphError) as info:
        load_graph(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert where in message and problem in message, message


@pytest.mark.parametrize(
    ("edge", "path", "problem"),
    [
        ({"channel_id": "1", "node1_pub": A.hex(), "node2_pub": B.hex()}, "edges[1].capacity", "missing"),
        ({"channel_id": "1", "node1_pub": A.hex(), "node2_pub": B.hex(), "capacity": "x"}, "edges[1].capacity", "'x'"),
        (
            {"channel_id": "-3", "node1_pub": A.hex(), "node2_pub": B.hex(), "capacity": 1},
            "edges[1].channel_id",
            "'-3'",
        ),
        ({"channel_id": 1, "node1_pub": 5, "node2_pub": B.hex(), "capacity": 1}, "edges[1].node1_pub", "got 5"),
        ({"channel_id": 1, "node1_pub": A.hex(), "node2_pub": "0102", "capacity": 1}, "edges[1].node2_pub", "33 bytes"),
        ({"channel_id": 1, "node1_pub": A.hex(), "node2_pub": B.hex(), "capacity": True}, "edges[1].capacity", "True"),
    ],
)
def test_a_bad_describegraph_edge_is_named_by_its_json_path(
    tmp_path: Path, edge: dict[str, object], path: str, problem: str
) -> None:
    good = {"channel_id": "7", "node1_pub": A.hex(), "node2_pub": B.hex(), "capacity": "10"}
    file = write(tmp_path / "g.json", json.dumps({"edges": [good, edge]}))
    with pytest.raises(GraphError) as info:
        load_graph(file)
    assert str(info.value).startswith(f"{file}: {path}: ") and problem in str(info.value), str(info.value)


def test_a_line_too_long_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "g.csv", "node1_pubkey,node2_pubkey,capacity_sat\n" + "x" * (10 * MAX_LINE) + "\n")
    with pytest.raises(GraphError, match=r"g\.csv:2: line longer than"):
        load_graph(path)


def test_not_text_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes(b"node1_pubkey,node2_pubkey,capacity_sat\n\xff\xfe\n")
    with pytest.raises(GraphError, match="not UTF-8"):
        load_graph(path)
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "missing.csv")
