"""A Lightning node paying over a synthetic or a real network: the networks of ``mcstore demo``.

:class:`SyntheticNetwork` is a graph of nodes (random 33-byte keys starting with 0x02/0x03)
and channels (short channel ids built from block, transaction index and output), grown by
preferential attachment so that, as on the real network, a few hubs have many channels. Each
direction of a channel has its own forwarding policy (base fee, proportional fee, CLTV delta).

:func:`simulate` makes payments from one node of that network and yields the mission control
result of every attempt, as lnd would record it: routes of 1 to 6 hops whose amounts grow
towards the source by each hop's fee; BOLT 4 failures at a hop that can report them, with
their payloads (a ``channel_update`` for the update-carrying codes); retries after a failure;
replies that arrive out of order; and a few results delivered twice. It picks routes at random,
without mission control: it makes varied, realistic test data (the tests use it). ``mcstore
demo`` itself routes its payments with mission control over this network
(:mod:`mcstore.cli.routing`).

:class:`GraphNetwork` is the same kind of network over a real topology (a
:class:`~mcstore.mission.ChannelGraph`: ``mcstore demo --graph mainnet-2025`` or a graph
file), with synthetic channel ids and policies and a node of ours. :data:`BUILTIN_GRAPHS` is
the one registry of the graphs that ``demo``, ``eval`` and ``fit`` take by name.

Everything is deterministic for a seed: the network is always the same (so a node's history
continues across runs), and ``simulate(seed=s, start_ns=t, first_id=i)`` always yields the
same results.
"""

from __future__ import annotations

import heapq
import math
import random
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from types import MappingProxyType
from typing import Final

from ..mission.graph import PACKAGED_GRAPHS, ChannelGraph, packaged_graph
from ..model import (
    AMOUNT_BELOW_MINIMUM,
    CHANNEL_DISABLED,
    EXPIRY_TOO_SOON,
    FEE_INSUFFICIENT,
    INCORRECT_CLTV_EXPIRY,
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    MPP_TIMEOUT,
    PERMANENT_CHANNEL_FAILURE,
    TEMPORARY_CHANNEL_FAILURE,
    TEMPORARY_NODE_FAILURE,
    UNKNOWN_NEXT_PEER,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)

__all__ = [
    "BUILTIN_GRAPHS",
    "DEFAULT_NODES",
    "GRAPH_AMOUNTS_SAT",
    "GRAPH_FEES",
    "GRAPH_NETWORK",
    "MAX_HOPS",
    "NETWORK_SEED",
    "OUR_CHANNELS",
    "OUR_CHANNEL_SAT",
    "Channel",
    "GraphNetwork",
    "Network",
    "Policy",
    "SimulatedResult",
    "SyntheticNetwork",
    "builtin_network",
    "demo_graph",
    "demo_network",
    "simulate",
]

NETWORK_SEED: Final = 0x6D6373746F7265
"""The seed of the demo's network: fixed, so that every demo run pays from the same node."""
DEFAULT_NODES: Final = 200
"""Nodes in the demo's network."""
MAX_HOPS: Final = 6
"""The longest route the demo builds."""

_MS: Final = 1_000_000  # nanoseconds
_S: Final = 1_000_000_000

# Hop counts of real payments cluster around 2 to 4 hops.
_HOP_WEIGHTS: Final = {1: 10, 2: 25, 3: 30, 4: 20, 5: 10, 6: 5}
_SUCCESS_SHARE: Final = 0.3
"""Share of attempts that succeed (per attempt; payments retry, so more payments succeed)."""
_DUPLICATE_SHARE: Final = 0.03
"""Share of results that are delivered a second time."""
_MAX_ATTEMPTS: Final = 5

# Failures reported by an intermediate node (or our own node, for a one-hop route), with
# weights after what a routing node sees: temporary_channel_failure (no liquidity) dominates.
_FORWARDING_FAILURES: Final = (
    (TEMPORARY_CHANNEL_FAILURE, 40),
    (UNKNOWN_NEXT_PEER, 8),
    (FEE_INSUFFICIENT, 7),
    (CHANNEL_DISABLED, 5),
    (TEMPORARY_NODE_FAILURE, 3),
    (EXPIRY_TOO_SOON, 3),
    (AMOUNT_BELOW_MINIMUM, 2),
    (PERMANENT_CHANNEL_FAILURE, 2),
    (INCORRECT_CLTV_EXPIRY, 1),
)
# Failures that only the final node reports.
_FINAL_FAILURES: Final = (
    (INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, 12),
    (MPP_TIMEOUT, 5),
)
_UNREADABLE_WEIGHT: Final = 2
"""Weight of failures whose source lnd could not decode (stored as an empty failure)."""
_FAILURE_KINDS: Final = (
    tuple((code, "forward") for code, _ in _FORWARDING_FAILURES)
    + tuple((code, "final") for code, _ in _FINAL_FAILURES)
    + ((0, "unreadable"),)
)
_FAILURE_WEIGHTS: Final = (
    tuple(w for _, w in _FORWARDING_FAILURES) + tuple(w for _, w in _FINAL_FAILURES) + (_UNREADABLE_WEIGHT,)
)

# lnd's MPP receive timeout: the final node fails a partial payment after 60 s.
_MPP_TIMEOUT_NS: Final = 60 * _S
# The bitcoin genesis block hash, in the byte order BOLT 7 uses for chain_hash.
_CHAIN_HASH: Final = bytes.fromhex("6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000")
_CHANNEL_UPDATE_TYPE: Final = 258
_BLOCK_HEIGHT_AT_START: Final = 870_000
_CHANNEL_UPDATE: Final = struct.Struct(">H64s32sQIBBHQIIQ")


@dataclass(frozen=True, slots=True)
class Policy:
    """How a node forwards out through one of its channels (one direction of the channel)."""

    base_fee_msat: int
    fee_ppm: int
    cltv_delta: int
    htlc_minimum_msat: int

    def fee(self, amount_msat: int) -> int:
        """The fee, in msat, for forwarding ``amount_msat`` (BOLT 7's formula)."""
        return self.base_fee_msat + amount_msat * self.fee_ppm // 1_000_000


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel between ``node_a`` and ``node_b``, with one policy per direction."""

    scid: int
    node_a: int
    node_b: int
    capacity_sat: int
    policy_a: Policy
    """Policy of ``node_a`` when it forwards out through this channel."""
    policy_b: Policy

    def policy_of(self, node: int) -> Policy:
        """The policy of ``node`` (one of the two ends) for forwarding out through this channel."""
        return self.policy_a if node == self.node_a else self.policy_b

    def direction_of(self, node: int) -> int:
        """BOLT 7's direction bit for updates sent by ``node``: 0 for node_a, 1 for node_b."""
        return 0 if node == self.node_a else 1


def _random_policy(rng: random.Random) -> Policy:
    return Policy(
        base_fee_msat=rng.choice((0, 0, 1000, 1000, 1000, 500, 100)),
        fee_ppm=min(5000, int(rng.lognormvariate(4.5, 1.2))),
        cltv_delta=rng.choice((40, 80, 80, 144)),
        htlc_minimum_msat=rng.choice((1, 1000)),
    )


class Network:
    """A Lightning network the demo pays over: nodes, channels with a policy per direction, our node.

    Node ``i`` has the key ``pubkeys[i]`` and the channels ``peers[i]``; :attr:`source` is our
    node, the one that pays. Built by :class:`SyntheticNetwork` (random) or
    :class:`GraphNetwork` (a real topology); immutable once built.
    """

    pubkeys: list[bytes]
    channels: list[Channel]
    peers: list[list[Channel]]
    source: int
    """Our node: the one that pays."""
    description: str
    """What the network is, for messages ("a synthetic network of 200 nodes and 412 channels")."""
    amount_exponents: tuple[float, float] = (5.0, 9.0)
    """Payments are log-uniform between ``10**lo`` and ``10**hi`` msat (100 sat to 1M sat here)."""

    def _add(self, channel: Channel) -> None:
        self.channels.append(channel)
        self.peers[channel.node_a].append(channel)
        self.peers[channel.node_b].append(channel)

    @property
    def source_pubkey(self) -> bytes:
        """The public key of our node."""
        return self.pubkeys[self.source]

    @cached_property
    def payees(self) -> list[int]:
        """The nodes our node can reach (over channels of any capacity), but itself, in index order."""
        seen = {self.source}
        frontier = [self.source]
        while frontier:
            node = frontier.pop()
            for channel in self.peers[node]:
                other = channel.node_b if channel.node_a == node else channel.node_a
                if other not in seen:
                    seen.add(other)
                    frontier.append(other)
        return [node for node in range(len(self.pubkeys)) if node in seen and node != self.source]

    _graph: ChannelGraph | None = None

    @property
    def graph(self) -> ChannelGraph:
        """The capacities of the network's channels, as ``mcstore eval --graph`` reads them for it.

        By short channel id and by node pair; a :class:`GraphNetwork` gives back the graph it was
        built from, which knows the same capacities by node pair (and not our node's channels,
        which an evaluation never looks up: they are local).
        """
        if self._graph is None:
            keys = self.pubkeys
            self._graph = ChannelGraph.from_channels(
                ((keys[c.node_a], keys[c.node_b], c.capacity_sat, c.scid) for c in self.channels), source="demo"
            )
        return self._graph

    def random_path(self, rng: random.Random, length: int) -> list[tuple[Channel, int]]:
        """A loop-free walk of up to ``length`` hops from our node: ``(channel, node reached)``.

        Shorter than ``length`` only where the walk reaches a dead end; at least one hop.
        """
        path: list[tuple[Channel, int]] = []
        visited = {self.source}
        node = self.source
        while len(path) < length:
            options = [
                (channel, other)
                for channel in self.peers[node]
                if (other := channel.node_b if channel.node_a == node else channel.node_a) not in visited
            ]
            if not options:
                break
            channel, node = rng.choice(options)
            visited.add(node)
            path.append((channel, node))
        return path


def _new_scid(rng: random.Random, taken: set[int]) -> int:
    """A short channel id (block, transaction index, output) not in ``taken``, which it joins."""
    while True:
        block = rng.randrange(505_000, _BLOCK_HEIGHT_AT_START)
        scid = (block << 40) | (rng.randrange(1, 3000) << 16) | rng.randrange(0, 4)
        if scid not in taken:
            taken.add(scid)
            return scid


class SyntheticNetwork(Network):
    """A random Lightning network: ``nodes`` nodes, the last one is ours (:attr:`source`).

    Deterministic for ``seed``. Each new node opens 1 to 5 channels to existing nodes,
    preferring well-connected ones; our node opens 6.
    """

    def __init__(self, seed: int = NETWORK_SEED, nodes: int = DEFAULT_NODES) -> None:
        if nodes < 3:
            raise ValueError(f"a network needs at least 3 nodes, got {nodes}")
        rng = random.Random(seed)
        self.pubkeys = [bytes((rng.choice((2, 3)),)) + rng.randbytes(32) for _ in range(nodes)]
        self.channels = []
        self.peers = [[] for _ in range(nodes)]
        self._scids: set[int] = set()
        # Three founders, connected to each other.
        for a, b in ((0, 1), (1, 2), (0, 2)):
            self._open(rng, a, b)
        for node in range(3, nodes):
            wanted = 6 if node == nodes - 1 else rng.choice((1, 2, 2, 3, 3, 4, 5))
            candidates = list(range(node))
            weights = [len(self.peers[c]) + 1 for c in candidates]
            chosen: set[int] = set()
            while len(chosen) < min(wanted, node):
                chosen.add(rng.choices(candidates, weights)[0])
            for peer in sorted(chosen):
                self._open(rng, peer, node)
        self.source = nodes - 1
        self.description = f"a synthetic network of {nodes} nodes and {len(self.channels)} channels"

    def _open(self, rng: random.Random, a: int, b: int) -> None:
        scid = _new_scid(rng, self._scids)
        self._add(Channel(scid, a, b, int(10 ** rng.uniform(5, 7.3)), _random_policy(rng), _random_policy(rng)))


OUR_CHANNELS: Final = 6
"""Channels of our own node in a :class:`GraphNetwork`: to the best-connected nodes."""
OUR_CHANNEL_SAT: Final = 20_000_000
"""The capacity of each of our node's channels in a :class:`GraphNetwork`, in sat."""
GRAPH_FEES: Final = "base fee uniform in 0-1000 msat, fee rate log-uniform in 1-2000 ppm, CLTV delta 40, 80 or 144"
"""The forwarding policies a :class:`GraphNetwork` draws for each direction of each channel."""
_GRAPH_PPM_MAX: Final = 2000
GRAPH_AMOUNTS_SAT: Final = (1_000, 3_000_000)
"""Payments over a :class:`GraphNetwork` are log-uniform between these amounts (its channels have 5M sat and more)."""
GRAPH_NETWORK: Final = (
    f"each node pair is a channel, each direction's policy drawn ({GRAPH_FEES}); our node is added, with "
    f"channels of {OUR_CHANNEL_SAT:,} sat to the {OUR_CHANNELS} best-connected nodes; payments are log-uniform "
    f"from {GRAPH_AMOUNTS_SAT[0]:,} to {GRAPH_AMOUNTS_SAT[1]:,} sat"
)
"""What :class:`GraphNetwork` adds to a graph, for the command's help."""


def _graph_policy(rng: random.Random) -> Policy:
    return Policy(
        base_fee_msat=rng.randint(0, 1000),
        fee_ppm=int(_GRAPH_PPM_MAX ** rng.random()),  # log-uniform in [1, 2000)
        cltv_delta=rng.choice((40, 80, 144)),
        htlc_minimum_msat=1000,
    )


class GraphNetwork(Network):
    """The demo's network over a real topology: the node pairs of ``graph``, and a node of ours.

    Each node pair of the graph is one channel of the pair's capacity (a pair's several
    channels merged, as the graph gives them and as lnd's pathfinding sees their liquidity),
    with a synthetic short channel id that the graph does not know (so that ``mcstore eval``
    over the same graph finds the channel by its node pair) and a policy per direction drawn
    as :data:`GRAPH_FEES` says. Our node is not one of the graph's: it has
    :data:`OUR_CHANNELS` channels of :data:`OUR_CHANNEL_SAT` sat to the best-connected nodes
    (most pairs; ties by pubkey), as a paying node opens channels to hubs. Payments are
    log-uniform between :data:`GRAPH_AMOUNTS_SAT`.

    Deterministic for ``(graph, name)``: nodes and pairs are taken in pubkey order, drawn from a
    fixed seed. Raises ``ValueError`` for a graph without channels.
    """

    amount_exponents = (math.log10(GRAPH_AMOUNTS_SAT[0] * 1000), math.log10(GRAPH_AMOUNTS_SAT[1] * 1000))

    def __init__(self, graph: ChannelGraph, name: str) -> None:
        pairs = sorted(graph.pairs.items())
        if not pairs:
            raise ValueError(f"{name}: the graph has no channels")
        rng = random.Random(f"mcstore-graph-network-{NETWORK_SEED}")
        keys = sorted({key for pair, _capacity in pairs for key in pair})
        index = {key: i for i, key in enumerate(keys)}
        me = keys[0]
        while me in index:
            me = bytes((rng.choice((2, 3)),)) + rng.randbytes(32)
        self.pubkeys = [*keys, me]
        self.source = len(keys)
        self.channels = []
        self.peers = [[] for _ in self.pubkeys]
        self._graph = graph
        taken = set(graph.channels)
        degree = [0] * len(keys)
        for a, b in graph.pairs:
            degree[index[a]] += 1
            degree[index[b]] += 1
        hubs = sorted(range(len(keys)), key=lambda node: (-degree[node], keys[node]))[:OUR_CHANNELS]
        # Our channels first, so that a route search meets them first at a hub (see find_route).
        for hub in hubs:
            scid = _new_scid(rng, taken)
            self._add(Channel(scid, hub, self.source, OUR_CHANNEL_SAT, _graph_policy(rng), _graph_policy(rng)))
        for (a, b), capacity in pairs:
            scid = _new_scid(rng, taken)
            self._add(Channel(scid, index[a], index[b], capacity, _graph_policy(rng), _graph_policy(rng)))
        self.description = (
            f"the graph {name} ({len(keys)} nodes, {len(pairs)} channels) and our node, with {len(hubs)} "
            "channels to its best-connected nodes"
        )

@lru_cache(maxsize=1)
def demo_network() -> SyntheticNetwork:
    """The network every demo run pays over (built once per process)."""
    return SyntheticNetwork(NETWORK_SEED, DEFAULT_NODES)


def demo_graph() -> ChannelGraph:
    """The synthetic network of ``mcstore demo``, as a channel graph (capacities by channel id and pair)."""
    return demo_network().graph


def _packaged(name: str) -> Callable[[], ChannelGraph]:
    return lambda: packaged_graph(name)


BUILTIN_GRAPHS: Final[Mapping[str, Callable[[], ChannelGraph]]] = MappingProxyType(
    {"demo": demo_graph, **{name: _packaged(name) for name in PACKAGED_GRAPHS}}
)
"""The graphs that ``--graph`` (of ``demo``, ``eval`` and ``fit``) takes by name instead of a file
(a file of that name: ``./NAME``): ``demo``, the demo's synthetic network, and the graphs that
ship with mcstore (:data:`~mcstore.mission.graph.PACKAGED_GRAPHS`: ``mainnet-2025``)."""


@cache
def builtin_network(name: str) -> Network:
    """The demo's network over the built-in graph ``name`` (built once per process): for ``demo``,
    :func:`demo_network`; for a packaged graph, its :class:`GraphNetwork`. ``KeyError`` for another name."""
    if name == "demo":
        return demo_network()
    return GraphNetwork(BUILTIN_GRAPHS[name](), name)


@dataclass(frozen=True, slots=True)
class SimulatedResult:
    """One result as the simulated node records it."""

    result: PaymentResult
    duplicate: bool
    """True when this is a second delivery of a result already yielded."""
    payments_started: int
    """How many payments had started when this result was recorded (for progress)."""


def _channel_update(
    rng: random.Random,
    channel: Channel,
    node: int,
    timestamp_ns: int,
    *,
    disabled: bool = False,
    fee_ppm_factor: int = 1,
) -> bytes:
    """A BOLT 7 ``channel_update`` from ``node`` for ``channel``, as BOLT 4 failures carry it.

    It starts with its message type (258) and carries ``htlc_maximum_msat``. The signature is
    random bytes: nothing here verifies it.
    """
    policy = channel.policy_of(node)
    channel_flags = channel.direction_of(node) | (2 if disabled else 0)
    return _CHANNEL_UPDATE.pack(
        _CHANNEL_UPDATE_TYPE,
        rng.randbytes(64),
        _CHAIN_HASH,
        channel.scid,
        (timestamp_ns // _S) & 0xFFFF_FFFF,
        1,  # message_flags: htlc_maximum_msat is present
        channel_flags,
        policy.cltv_delta,
        policy.htlc_minimum_msat,
        policy.base_fee_msat,
        policy.fee_ppm * fee_ppm_factor,
        channel.capacity_sat * 1000,
    )


def _with_update(update: bytes, prefix: bytes = b"") -> bytes:
    return prefix + struct.pack(">H", len(update)) + update


def _failure_payload(
    rng: random.Random, code: int, channel: Channel, node: int, amount_msat: int, now_ns: int, height: int
) -> bytes:
    """The BOLT 4 payload of ``code``, reported by ``node`` about its outgoing ``channel``."""
    if code == TEMPORARY_CHANNEL_FAILURE or code == EXPIRY_TOO_SOON:
        return _with_update(_channel_update(rng, channel, node, now_ns))
    if code == FEE_INSUFFICIENT:
        # The node raised its fee since the gossip we routed with; the update says by how much.
        update = _channel_update(rng, channel, node, now_ns, fee_ppm_factor=2)
        return _with_update(update, struct.pack(">Q", amount_msat))
    if code == AMOUNT_BELOW_MINIMUM:
        return _with_update(_channel_update(rng, channel, node, now_ns), struct.pack(">Q", amount_msat))
    if code == INCORRECT_CLTV_EXPIRY:
        cltv = height + channel.policy_of(node).cltv_delta
        return _with_update(_channel_update(rng, channel, node, now_ns), struct.pack(">I", cltv))
    if code == CHANNEL_DISABLED:
        update = _channel_update(rng, channel, node, now_ns, disabled=True)
        return _with_update(update, struct.pack(">H", 0))
    if code == INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS:
        return struct.pack(">QI", amount_msat, height)
    # unknown_next_peer, permanent_channel_failure, temporary_node_failure, mpp_timeout.
    return b""


def _amounts(path: list[tuple[Channel, int]], amount_msat: int) -> tuple[list[int], int]:
    """Each hop's amount to forward, and the total the source sends, for ``amount_msat`` delivered.

    As lnd builds a route: the last hop forwards the payment amount, and each earlier hop
    forwards what the next one receives, which includes the next one's fee for its outgoing
    channel.
    """
    n = len(path)
    forwards = [0] * n
    forwards[-1] = amount_msat
    incoming = amount_msat
    for i in range(n - 2, -1, -1):
        forwards[i] = incoming
        node = path[i][1]
        incoming = forwards[i] + path[i + 1][0].policy_of(node).fee(forwards[i])
    return forwards, incoming


@dataclass(slots=True)
class _Attempt:
    result: PaymentResult
    final: bool
    """The payment stops after this attempt (success or a final failure)."""


def _attempt(
    rng: random.Random, network: SyntheticNetwork, attempt_id: int, fwd_ns: int, amount_msat: int, height: int
) -> _Attempt:
    length = rng.choices(list(_HOP_WEIGHTS), list(_HOP_WEIGHTS.values()))[0]
    path = network.random_path(rng, length)
    forwards, total = _amounts(path, amount_msat)
    n = len(path)
    hops = [
        Hop(
            channel.scid,
            network.pubkeys[node],
            forwards[i],
            # Keysend and some wallets attach custom records for the final hop.
            has_custom_records=(i == n - 1 and rng.random() < 0.05),
        )
        for i, (channel, node) in enumerate(path)
    ]
    route = Route(network.source_pubkey, total, hops)
    # Each hop adds a network round trip.
    latencies = [rng.randint(30, 250) * _MS for _ in range(n)]
    if rng.random() < _SUCCESS_SHARE:
        reply_ns = fwd_ns + sum(latencies) + rng.randint(5, 50) * _MS
        return _Attempt(PaymentResult(attempt_id, fwd_ns, reply_ns, route), final=True)
    code, kind = rng.choices(_FAILURE_KINDS, _FAILURE_WEIGHTS)[0]
    if kind == "unreadable":
        reply_ns = fwd_ns + sum(latencies)
        return _Attempt(PaymentResult(attempt_id, fwd_ns, reply_ns, route, PaymentFailure()), final=False)
    if kind == "final":
        # lnd's source index counts our node as 0, so the final hop is index n.
        index = n
        reply_ns = fwd_ns + (_MPP_TIMEOUT_NS if code == MPP_TIMEOUT else 0) + sum(latencies)
        payload = _failure_payload(rng, code, path[-1][0], path[-1][1], amount_msat, reply_ns, height)
        failure = PaymentFailure.from_code(index, code, payload)
        return _Attempt(PaymentResult(attempt_id, fwd_ns, reply_ns, route, failure), final=True)
    # A forwarding failure: node at index i (0 is us, i >= 1 is hops[i-1]) could not forward
    # over the next channel, path[i]. A one-hop route can only fail locally or at the end.
    if n == 1 or rng.random() < 0.05:
        index, reporter = 0, network.source
        code = TEMPORARY_CHANNEL_FAILURE if n == 1 else code
    else:
        index = rng.randrange(1, n)
        reporter = path[index - 1][1]
    reply_ns = fwd_ns + sum(latencies[: index + 1])
    # BOLT 4 reports the amount of the HTLC that reached the failing node.
    incoming = total if index <= 1 else forwards[index - 2]
    payload = _failure_payload(rng, code, path[index][0], reporter, incoming, reply_ns, height)
    failure = PaymentFailure.from_code(index, code, payload)
    return _Attempt(PaymentResult(attempt_id, fwd_ns, reply_ns, route, failure), final=False)


def simulate(
    payments: int,
    *,
    seed: int,
    start_ns: int,
    first_id: int = 1,
    network: SyntheticNetwork | None = None,
) -> Iterator[SimulatedResult]:
    """Simulate ``payments`` payments from our node; yield each result as it is recorded.

    Payments start ``start_ns`` onwards, about 1.5 s apart on average, and several are in
    flight at once. A failed attempt is retried on a new route (up to 5 attempts) unless the
    failure is final. Attempt ids count up from ``first_id``. Results come in the order their
    replies are processed, which is not key order: replies arrive out of order, and a few
    results are delivered a second time (``duplicate=True``, the same result again).

    Streams: memory stays bounded however many payments are asked for. Deterministic for
    ``(payments, seed, start_ns, first_id, network)``; ``network`` defaults to
    :func:`demo_network`.
    """
    if payments < 0:
        raise ValueError(f"payments must be >= 0, got {payments}")
    net = network if network is not None else demo_network()
    rng = random.Random(seed)
    # (time the reply is processed, tie-breaker, result, duplicate)
    pending: list[tuple[int, int, PaymentResult, bool]] = []
    order = 0
    next_id = first_id
    clock = start_ns
    for started in range(1, payments + 1):
        clock += int(rng.expovariate(1 / 1.5) * _S)
        # Everything processed before this payment starts can be yielded: later payments'
        # results are all processed after their own start.
        while pending and pending[0][0] <= clock:
            _, _, result, duplicate = heapq.heappop(pending)
            yield SimulatedResult(result, duplicate, started - 1)
        amount_msat = max(1000, int(10 ** rng.uniform(6, 9.7)) // 1000 * 1000)
        height = _BLOCK_HEIGHT_AT_START + (clock - start_ns) // (600 * _S)
        fwd_ns = clock
        for _ in range(_MAX_ATTEMPTS):
            attempt = _attempt(rng, net, next_id, fwd_ns, amount_msat, height)
            next_id += 1
            result = attempt.result
            processed = result.time_reply_ns + int(rng.expovariate(1 / 0.3) * _S)
            heapq.heappush(pending, (processed, order, result, False))
            order += 1
            if rng.random() < _DUPLICATE_SHARE:
                again = processed + rng.randint(200, 30_000) * _MS
                heapq.heappush(pending, (again, order, result, True))
                order += 1
            if attempt.final:
                break
            fwd_ns = result.time_reply_ns + rng.randint(5, 40) * _MS
    while pending:
        _, _, result, duplicate = heapq.heappop(pending)
        yield SimulatedResult(result, duplicate, payments)
