"""Hypothesis strategies for mcstore's data model, shared by the test modules.

``payment_results()`` draws arbitrary valid :class:`~mcstore.model.PaymentResult` values,
covering every BigSize width, empty and long routes, and every failure shape. ``histories()``
draws a node's history over a small network, with a channel graph, for mission control.
"""

from __future__ import annotations

from hypothesis import strategies as st

from mcstore.mission import ChannelGraph
from mcstore.model import (
    FAILURE_CODE_NAMES,
    FEE_INSUFFICIENT,
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    PUBKEY_LEN,
    TEMPORARY_CHANNEL_FAILURE,
    TEMPORARY_NODE_FAILURE,
    U64_MAX,
    UNKNOWN_NEXT_PEER,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)

__all__ = [
    "MISSION_SOURCE",
    "bigsize_values",
    "histories",
    "hops",
    "payment_failures",
    "payment_results",
    "pubkeys",
    "routes",
    "u64s",
]


def u64s() -> st.SearchStrategy[int]:
    """Any u64, with the edges 0 and 2**64-1 likely."""
    return st.integers(min_value=0, max_value=U64_MAX)


def bigsize_values() -> st.SearchStrategy[int]:
    """u64 values spread over the four BigSize widths (1, 3, 5 and 9 bytes)."""
    return st.one_of(
        st.integers(0, 0xFC),
        st.integers(0xFD, 0xFFFF),
        st.integers(0x1_0000, 0xFFFF_FFFF),
        st.integers(0x1_0000_0000, U64_MAX),
    )


def pubkeys() -> st.SearchStrategy[bytes]:
    """33-byte public keys: mostly shaped like compressed keys, sometimes any bytes."""
    compressed = st.builds(
        lambda prefix, body: prefix + body,
        st.sampled_from([b"\x02", b"\x03"]),
        st.binary(min_size=PUBKEY_LEN - 1, max_size=PUBKEY_LEN - 1),
    )
    return compressed | st.binary(min_size=PUBKEY_LEN, max_size=PUBKEY_LEN)


def hops() -> st.SearchStrategy[Hop]:
    """Any valid Hop."""
    return st.builds(
        Hop,
        channel_id=u64s(),
        pubkey=pubkeys(),
        amount_to_forward_msat=bigsize_values(),
        has_blinding_point=st.booleans(),
        has_custom_records=st.booleans(),
    )


def routes(max_hops: int = 20) -> st.SearchStrategy[Route]:
    """Any valid Route, from no hops up to ``max_hops`` (long enough for 3-byte lengths)."""
    return st.builds(
        Route,
        source_pubkey=pubkeys(),
        total_amount_msat=bigsize_values(),
        hops=st.lists(hops(), max_size=max_hops),
    )


def _messages() -> st.SearchStrategy[bytes]:
    codes = st.sampled_from(sorted(FAILURE_CODE_NAMES)) | st.integers(0, 0xFFFF)
    # Payloads over 250 bytes make the message length a 3-byte BigSize.
    payloads = st.binary(max_size=8) | st.binary(min_size=250, max_size=400)
    return st.builds(lambda c, p: c.to_bytes(2, "big") + p, codes, payloads)


def payment_failures() -> st.SearchStrategy[PaymentFailure]:
    """Every failure shape: source unknown, source only, source and message."""
    index = st.integers(0, 255)
    return st.one_of(
        st.just(PaymentFailure()),
        st.builds(PaymentFailure, source_index=index),
        st.builds(PaymentFailure, source_index=index, message=_messages()),
    )


def payment_results() -> st.SearchStrategy[PaymentResult]:
    """Any valid PaymentResult, successes and failures alike."""
    return st.builds(
        PaymentResult,
        id=u64s(),
        time_fwd_ns=u64s(),
        time_reply_ns=u64s(),
        route=routes(),
        failure=st.none() | payment_failures(),
    )


_NS = 1_000_000_000
_T0 = 1_767_225_600 * _NS  # 2026-01-01
_NODES = [bytes([3, i]) + bytes(31) for i in range(6)]
MISSION_SOURCE = _NODES[0]
"""The node whose history :func:`histories` draws."""
_PAIRS = [(a, b) for i, a in enumerate(_NODES) for b in _NODES[i + 1 :]]
_CODES = [
    TEMPORARY_CHANNEL_FAILURE,
    UNKNOWN_NEXT_PEER,
    TEMPORARY_NODE_FAILURE,
    FEE_INSUFFICIENT,
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
]


@st.composite
def histories(draw: st.DrawFn, *, max_results: int = 25) -> tuple[list[PaymentResult], ChannelGraph]:
    """A history in key order: results along loop-free routes from MISSION_SOURCE over six nodes
    (successes, the common failures, node failures, unreadable ones, replies up to two hours
    apart), and a channel graph that knows all but up to four of the network's pairs."""
    results = []
    clock = _T0
    for i in range(draw(st.integers(0, max_results))):
        path = draw(st.permutations(_NODES[1:]))[: draw(st.integers(1, 4))]
        amount = draw(st.integers(1, 10**9))
        # What each channel carries, growing towards the source by a fee of 1000 msat a hop.
        carried = [amount + 1000 * (len(path) - 1 - j) for j in range(len(path))]
        hops = [
            Hop(channel_id=j + 1, pubkey=node, amount_to_forward_msat=carried[min(j + 1, len(path) - 1)])
            for j, node in enumerate(path)
        ]
        failure = draw(
            st.none()
            | st.builds(
                PaymentFailure,
                st.integers(0, len(path)),
                st.sampled_from(_CODES).map(lambda c: c.to_bytes(2, "big")),
            )
            | st.just(PaymentFailure())
        )
        clock += draw(st.integers(0, 7200 * _NS))
        reply = clock + draw(st.integers(0, 5 * _NS))
        results.append(PaymentResult(i, clock, reply, Route(MISSION_SOURCE, carried[0], hops), failure))
    results.sort(key=lambda r: r.key)
    missing = draw(st.sets(st.sampled_from(_PAIRS), max_size=4))
    capacities = draw(st.lists(st.integers(1, 10**7), min_size=len(_PAIRS), max_size=len(_PAIRS)))
    graph = ChannelGraph.from_channels(
        (a, b, cap, None) for (a, b), cap in zip(_PAIRS, capacities, strict=True) if (a, b) not in missing
    )
    return results, graph
