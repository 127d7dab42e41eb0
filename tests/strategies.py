"""Hypothesis strategies for mcstore's data model, shared by the test modules.

``payment_results()`` draws arbitrary valid :class:`~mcstore.model.PaymentResult` values,
covering every BigSize width, empty and long routes, and every failure shape.
"""

from __future__ import annotations

from hypothesis import strategies as st

from mcstore.model import (
    FAILURE_CODE_NAMES,
    PUBKEY_LEN,
    U64_MAX,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)

__all__ = [
    "bigsize_values",
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
