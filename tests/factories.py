"""Small, readable builders of PaymentResults for tests."""

from __future__ import annotations

from mcstore import Hop, PaymentFailure, PaymentResult, Route

SOURCE = bytes([2]) + bytes(range(1, 33))
PEER = bytes([3]) + bytes(range(33, 65))


def result(
    id: int,
    reply: int | None = None,
    *,
    fwd: int | None = None,
    failure: PaymentFailure | None = None,
    source: bytes = SOURCE,
    hops: int = 1,
) -> PaymentResult:
    """A result whose reply time defaults to ``1000 + id`` (so key order follows ``id``)."""
    time_reply = 1_000 + id if reply is None else reply
    return PaymentResult(
        id=id,
        time_fwd_ns=time_reply - 1 if fwd is None else fwd,
        time_reply_ns=time_reply,
        route=Route(
            source_pubkey=source,
            total_amount_msat=1_000 + id,
            hops=[Hop(channel_id=100 + n, pubkey=PEER, amount_to_forward_msat=1_000) for n in range(hops)],
        ),
        failure=failure,
    )


def failed(id: int, reply: int | None = None) -> PaymentResult:
    """A failed result: temporary_channel_failure reported by hop 1."""
    return result(id, reply, failure=PaymentFailure(source_index=1, message=b"\x10\x07"))
