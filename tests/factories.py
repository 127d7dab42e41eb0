"""The tests' results, in one place: small, readable builders of PaymentResults.

* :func:`result` and :func:`failed`: a result of ``id``, its fields defaulted from it.
* :func:`result_for`: a pure function of its id, for tests that rebuild in the parent what a
  child process (``scripts/crash_writer.py``, ``scripts/sigint_child.py``) wrote.
* :data:`PROBE_RESULT`: the one result ``scripts/open_probe.py`` writes.
"""

from __future__ import annotations

from mcstore import Hop, PaymentFailure, PaymentResult, Route

SOURCE = bytes([2]) + bytes(range(1, 33))
PEER = bytes([3]) + bytes(range(33, 65))
CHILD_SOURCE = b"\x02" + b"\x5a" * 32
CHILD_HOP = b"\x03" + b"\xa5" * 32


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


def result_for(id: int) -> PaymentResult:
    """The result with attempt id ``id``: a pure function of it, its key sorting by ``id``; one in
    three failed."""
    return PaymentResult(
        id=id,
        time_fwd_ns=1_700_000_000_000_000_000 + id * 1000,
        time_reply_ns=1_700_000_000_000_000_500 + id * 1000,
        route=Route(
            source_pubkey=CHILD_SOURCE,
            total_amount_msat=1000 + id,
            hops=(Hop(channel_id=id, pubkey=CHILD_HOP, amount_to_forward_msat=1000 + id),),
        ),
        failure=None if id % 3 else PaymentFailure(source_index=1, message=b"\x10\x07" + id.to_bytes(8, "big")),
    )


PROBE_RESULT = PaymentResult(
    id=7,
    time_fwd_ns=1,
    time_reply_ns=2,
    route=Route(source_pubkey=b"\x03" + b"\x77" * 32, total_amount_msat=1, hops=()),
)
"""What ``scripts/open_probe.py`` writes when it opens the namespace."""
