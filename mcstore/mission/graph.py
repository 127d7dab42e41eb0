"""A channel graph with capacities: what an evaluation needs to know of the network.

:class:`ChannelGraph` answers "what is the capacity of the channel a hop used?" for
:mod:`.evaluation`: by the hop's short channel id when the graph knows channel ids, else by
the node pair, direction-independent (a pair with several channels has their summed capacity,
as lnd's pathfinding sees the pair when it merges parallel channels' liquidity).

:func:`load_graph` reads it from a file in one of two formats, told apart by the first
character that is not white space (``{`` or ``[``: JSON, anything else: CSV):

* CSV with a header naming ``node1_pubkey``, ``node2_pubkey`` and ``capacity_sat`` (other
  columns are ignored): one row per channel or per pair, hex pubkeys, capacities in sat, rows
  of one pair summed. The format of the real network's graph in ``ln-graph-2025-04-30``.
* The JSON that ``lncli describegraph`` prints: ``{"nodes": [...], "edges": [{"channel_id":
  "...", "node1_pub": "...", "node2_pub": "...", "capacity": "...", ...}]}``, where lncli writes
  64-bit integers as strings (plain JSON integers are accepted too). Each edge is a channel:
  its capacity is known by its id, and added to its pair's.

Bad input raises :class:`GraphError` naming the place: ``FILE:LINE`` for CSV,
``FILE:LINE:COLUMN`` for malformed JSON, ``FILE: edges[i].field`` for a bad edge. Memory: a
CSV is read a line at a time (a line longer than :data:`MAX_LINE` characters is an error);
a describegraph file is parsed whole, and each edge object is cut down to the four fields
used as soon as it is parsed (node announcements are dropped), so the parse tree does not
hold the policies and addresses of the whole network at once.

:func:`packaged_graph` loads a graph that ships with mcstore, by name (:data:`PACKAGED_GRAPHS`):
``mainnet-2025``, the Lightning Network's public channels of 5M sat and more on 2025-04-30
(1,924 nodes, 10,275 node pairs; ``mcstore/mission/data/ln-graph-2025-04-30/``, whose README
gives its source and whose LICENSE its terms: MIT, copyright 2025 Saurabh Kumar).
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import IO, Final

from ..model import PUBKEY_LEN

__all__ = ["CSV_COLUMNS", "MAX_LINE", "PACKAGED_GRAPHS", "ChannelGraph", "GraphError", "load_graph", "packaged_graph"]

CSV_COLUMNS: Final = ("node1_pubkey", "node2_pubkey", "capacity_sat")
"""The columns a CSV graph must have (in any order; others are ignored)."""
MAX_LINE: Final = 4096
"""The longest CSV line accepted, in characters: two pubkeys and a capacity need under 160."""
_U64: Final = (1 << 64) - 1
_EDGE_FIELDS: Final = ("channel_id", "node1_pub", "node2_pub", "capacity")
PACKAGED_GRAPHS: Final[Mapping[str, str]] = MappingProxyType({"mainnet-2025": "ln-graph-2025-04-30"})
"""The graphs that ship with mcstore: name -> directory under ``mcstore/mission/data/`` (its
``channels.csv`` is the graph, its ``README.md`` the source, its ``LICENSE`` the terms)."""


class GraphError(ValueError):
    """A graph file that cannot be read: ``str(exc)`` is ``"<where>: <problem>"``.

    ``where`` names the file and the place in it (``FILE:LINE``, or ``FILE: edges[3].capacity``).
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def _pair(a: bytes, b: bytes) -> tuple[bytes, bytes]:
    return (a, b) if a <= b else (b, a)


class ChannelGraph:
    """Channel capacities, by short channel id and by node pair (direction-independent).

    Build one with :func:`load_graph`, or :meth:`from_channels`. Immutable once built;
    lookups are O(1) dict reads.

    Args:
        pairs: A node pair (either order) -> its total capacity in sat.
        channels: A short channel id -> its capacity in sat.
        source: Where the graph came from (a file name), for messages.
    """

    __slots__ = ("_by_channel", "_by_pair", "source")

    def __init__(
        self,
        pairs: Mapping[tuple[bytes, bytes], int],
        channels: Mapping[int, int] | None = None,
        *,
        source: str = "",
    ) -> None:
        """``pairs`` maps a node pair (either order) to its total capacity in sat; ``channels``
        maps a short channel id to its capacity. ``source`` says where the graph came from."""
        by_pair: dict[tuple[bytes, bytes], int] = {}
        for (a, b), capacity in pairs.items():
            key = _pair(a, b)
            by_pair[key] = by_pair.get(key, 0) + capacity
        self._by_pair: Final = by_pair
        self._by_channel: Final = dict(channels or {})
        self.source: Final = source
        """Where the graph came from (a file name), for messages."""

    @classmethod
    def from_channels(
        cls, channels: Iterable[tuple[bytes, bytes, int, int | None]], *, source: str = ""
    ) -> ChannelGraph:
        """A graph of ``(node1, node2, capacity_sat, channel_id or None)`` channels: each pair's
        capacity is the sum over its channels; channel ids are looked up first.

        Args:
            channels: The channels, as ``(node1, node2, capacity_sat, channel_id or None)``.
            source: Where the graph came from (a file name), for messages.
        """
        pairs: dict[tuple[bytes, bytes], int] = {}
        by_channel: dict[int, int] = {}
        for a, b, capacity, channel_id in channels:
            key = _pair(a, b)
            pairs[key] = pairs.get(key, 0) + capacity
            if channel_id is not None:
                by_channel[channel_id] = capacity
        return cls(pairs, by_channel, source=source)

    def capacity(self, node_a: bytes, node_b: bytes, channel_id: int | None = None) -> int | None:
        """The capacity in sat of the channel ``channel_id`` if the graph knows it, else of the
        pair ``node_a``/``node_b`` (either direction); None when neither is known.

        Args:
            node_a: One end of the channel.
            node_b: The other end.
            channel_id: The short channel id, if known.
        """
        if channel_id is not None and self._by_channel:
            found = self._by_channel.get(channel_id)
            if found is not None:
                return found
        return self._by_pair.get((node_a, node_b) if node_a <= node_b else (node_b, node_a))

    @property
    def pairs(self) -> Mapping[tuple[bytes, bytes], int]:
        """Every node pair, ``(smaller pubkey, larger pubkey) -> capacity_sat`` (read-only)."""
        return MappingProxyType(self._by_pair)

    @property
    def channels(self) -> Mapping[int, int]:
        """Every known short channel id, ``channel_id -> capacity_sat`` (read-only; empty for a CSV)."""
        return MappingProxyType(self._by_channel)

    def __len__(self) -> int:
        """The number of node pairs."""
        return len(self._by_pair)

    def __repr__(self) -> str:
        return f"<ChannelGraph pairs={len(self._by_pair)} channels={len(self._by_channel)} source={self.source!r}>"


# -- reading ---------------------------------------------------------------------------------


def _pubkey(where: str, field: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise GraphError(where, f"{field} must be a hex pubkey string, got {value!r}")
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise GraphError(where, f"{field} is not hex: {value!r}") from None
    if len(key) != PUBKEY_LEN:
        raise GraphError(where, f"{field} must be {PUBKEY_LEN} bytes ({2 * PUBKEY_LEN} hex digits), got {value!r}")
    return key


def _whole(where: str, field: str, value: object, low: int) -> int:
    # lncli writes 64-bit integers as JSON strings; a CSV cell is a string too.
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not low <= number <= _U64:
        raise GraphError(where, f"{field} must be a whole number from {low} to {_U64}, got {value!r}")
    return number


def _bounded_lines(file: IO[str], name: str) -> Iterator[str]:
    line_no = 0
    while True:
        line = file.readline(MAX_LINE + 1)
        if not line:
            return
        line_no += 1
        if len(line) > MAX_LINE and not line.endswith("\n"):
            raise GraphError(f"{name}:{line_no}", f"line longer than {MAX_LINE} characters; not a graph CSV")
        yield line


def _read_csv(file: IO[str], name: str) -> ChannelGraph:
    reader = csv.reader(_bounded_lines(file, name))
    header = next(reader, None)
    columns = [c.strip() for c in header] if header is not None else []
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if missing:
        raise GraphError(
            f"{name}:1",
            f"not a graph: the CSV header must name {', '.join(CSV_COLUMNS)} (missing {', '.join(missing)}); "
            f"got {','.join(columns)!r}",
        )
    i1, i2, ic = (columns.index(c) for c in CSV_COLUMNS)
    width = max(i1, i2, ic) + 1
    pairs: dict[tuple[bytes, bytes], int] = {}
    for row in reader:
        where = f"{name}:{reader.line_num}"
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < width:
            raise GraphError(where, f"expected {len(columns)} columns, got {len(row)}: {','.join(row)!r}")
        a = _pubkey(where, "node1_pubkey", row[i1])
        b = _pubkey(where, "node2_pubkey", row[i2])
        if a == b:
            raise GraphError(where, f"a channel from node {a.hex()} to itself")
        capacity = _whole(where, "capacity_sat", row[ic], 1)
        key = _pair(a, b)
        pairs[key] = pairs.get(key, 0) + capacity
    return ChannelGraph(pairs, source=name)


def _trim(obj: dict[str, object]) -> object:
    """json's object_hook: keep an edge's four fields, drop node announcements."""
    if "node1_pub" in obj or "channel_id" in obj:
        return {k: obj[k] for k in _EDGE_FIELDS if k in obj}
    if "pub_key" in obj:
        return None
    return obj


def _read_describegraph(file: IO[str], name: str) -> ChannelGraph:
    try:
        document = json.load(file, object_hook=_trim)
    except json.JSONDecodeError as exc:
        raise GraphError(f"{name}:{exc.lineno}:{exc.colno}", f"not valid JSON: {exc.msg}") from None
    if not isinstance(document, dict) or not isinstance(document.get("edges"), list):
        raise GraphError(name, "not lncli describegraph JSON: expected an object with an \"edges\" list")
    channels: list[tuple[bytes, bytes, int, int | None]] = []
    for i, edge in enumerate(document["edges"]):
        where = f"{name}: edges[{i}]"
        if not isinstance(edge, dict):
            raise GraphError(where, f"an edge must be an object, got {edge!r}")
        for field in _EDGE_FIELDS:
            if field not in edge:
                raise GraphError(f"{where}.{field}", "missing")
        a = _pubkey(f"{where}.node1_pub", "node1_pub", edge["node1_pub"])
        b = _pubkey(f"{where}.node2_pub", "node2_pub", edge["node2_pub"])
        if a == b:
            raise GraphError(where, f"a channel from node {a.hex()} to itself")
        channel_id = _whole(f"{where}.channel_id", "channel_id", edge["channel_id"], 0)
        capacity = _whole(f"{where}.capacity", "capacity", edge["capacity"], 1)
        channels.append((a, b, capacity, channel_id))
    return ChannelGraph.from_channels(channels, source=name)


def load_graph(path: str | os.PathLike[str]) -> ChannelGraph:
    """Read a channel graph from ``path``: a CSV or ``lncli describegraph`` JSON (sniffed).

    UTF-8, with or without a byte-order mark.

    Args:
        path: The file: CSV lines ``node1_pubkey,node2_pubkey,capacity_sat``, or the JSON that
            ``lncli describegraph`` prints.

    Raises:
        GraphError: Content that is not a graph (naming the line, or the JSON path, and the
            value).
        OSError: The file cannot be read.
    """
    name = os.fspath(path)
    with open(name, encoding="utf-8-sig", newline="") as file:
        try:
            first = ""
            while True:
                char = file.read(1)
                if not char or not char.isspace():
                    first = char
                    break
            file.seek(0)
            if first in ("{", "["):  # "[": JSON, though not describegraph's: say so
                return _read_describegraph(file, name)
            return _read_csv(file, name)
        except UnicodeDecodeError as exc:
            raise GraphError(name, f"not UTF-8 text: {exc.reason}") from None


@functools.cache
def packaged_graph(name: str) -> ChannelGraph:
    """The graph called ``name`` that ships with mcstore (:data:`PACKAGED_GRAPHS`), read once per process.

    Read through :mod:`importlib.resources`, so it is found in an installed package as in a
    source tree. Its :attr:`~ChannelGraph.source` is ``name``. A CSV has no channel ids: hops
    are looked up by node pair.

    Args:
        name: a key of :data:`PACKAGED_GRAPHS`, e.g. ``"mainnet-2025"``.

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    directory = PACKAGED_GRAPHS.get(name)
    if directory is None:
        raise KeyError(f"no packaged graph {name!r}; known: {', '.join(PACKAGED_GRAPHS)}")
    resource = importlib.resources.files("mcstore.mission").joinpath("data", directory, "channels.csv")
    with resource.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as file:
        return _read_csv(file, name)
