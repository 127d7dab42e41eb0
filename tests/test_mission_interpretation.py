"""lnd's interpretation vectors (result_interpretation_test.go, all 26) and interpret_result's contract."""

from __future__ import annotations

import pytest
from hypothesis import given
from strategies import payment_results

from mcstore.mission import FinalFailureReason, Interpretation, PairOutcome, interpret_result
from mcstore.model import (
    CHANNEL_DISABLED,
    EXPIRY_TOO_SOON,
    FEE_INSUFFICIENT,
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    INVALID_ONION_BLINDING,
    INVALID_ONION_KEY,
    INVALID_ONION_PAYLOAD,
    MPP_TIMEOUT,
    TEMPORARY_CHANNEL_FAILURE,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)

N = [bytes([2]) + bytes([i]) * 32 for i in range(5)]  # N0 is the source
ERROR = FinalFailureReason.ERROR
DETAILS = FinalFailureReason.INCORRECT_PAYMENT_DETAILS


def route(*hops: tuple[int, int, bool]) -> Route:
    """hops: (node index, amount to forward, has blinding point); TotalAmount is 100."""
    return Route(N[0], 100, [Hop(i, N[node], amt, blinded) for i, (node, amt, blinded) in enumerate(hops, 1)])


R1 = route((1, 99, False))
R2 = route((1, 99, False), (2, 97, False))
R3 = route((1, 99, False), (2, 97, False), (3, 94, False))
R4 = route((1, 99, False), (2, 97, False), (3, 94, False), (4, 90, False))
BMH = route((1, 99, False), (2, 0, True), (3, 0, False), (4, 77, False))
BSH = route((1, 99, False), (2, 0, True), (3, 88, False))
BMI = route((1, 0, True), (2, 0, False), (3, 58, False))
BIR = route((1, 95, False), (2, 90, True))


def pairs(spec: str) -> dict[tuple[bytes, bytes], PairOutcome]:
    """'S01=100 F12=99' -> {(N0, N1): success 100, (N1, N2): failure 99}."""
    out = {}
    for item in spec.split():
        kind, amt = item.split("=")
        out[(N[int(kind[1])], N[int(kind[2])])] = PairOutcome(kind[0] == "S", int(amt))
    return out


# (name, route, source index or None for success, code, expected pairs, node, final, policy)
VECTORS = [
    ("fail", R2, 1, TEMPORARY_CHANNEL_FAILURE, "S01=100 F12=99", None, None, None),
    ("fail expiry too soon", R4, 3, EXPIRY_TOO_SOON, "F01=0 F10=0 F12=0 F21=0 F23=0 F32=0", None, None, None),
    ("fail incorrect details", R2, 2, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, "S01=100 S12=99", None, DETAILS, None),
    ("success direct", R1, None, None, "S01=100", None, None, None),
    ("success", R2, None, None, "S01=100 S12=99", None, None, None),
    ("malformed from direct peer", R2, 0, INVALID_ONION_KEY, "F01=0 F10=0 F12=0 F21=0", 1, None, None),
    ("malformed from direct final peer", R1, 0, INVALID_ONION_KEY, "F01=0 F10=0", 1, ERROR, None),
    ("fee insufficient intermediate", R4, 2, FEE_INSUFFICIENT, "S01=100 F12=0 F21=0", None, None, (2, 3)),
    (
        "invalid onion payload final hop four", R4, 4, INVALID_ONION_PAYLOAD,
        "S01=100 S12=99 S23=97 F34=0 F43=0", 4, ERROR, None,
    ),
    (
        "invalid onion payload final hop three", R3, 3, INVALID_ONION_PAYLOAD,
        "S01=100 S12=99 F23=0 F32=0", 3, ERROR, None,
    ),
    (
        "invalid onion payload intermediate", R4, 3, INVALID_ONION_PAYLOAD,
        "S01=100 S12=99 F23=0 F32=0 F34=0 F43=0", 3, None, None,
    ),
    ("invalid onion payload direct", R1, 1, INVALID_ONION_PAYLOAD, "F01=0 F10=0", 1, ERROR, None),
    ("one hop mpp timeout", R1, 1, MPP_TIMEOUT, "S01=100", None, None, None),
    ("two hop mpp timeout", R2, 2, MPP_TIMEOUT, "S01=100 S12=99", None, None, None),
    ("two hop channel disabled", R2, 1, CHANNEL_DISABLED, "S01=100 F12=0 F21=0", None, None, (1, 2)),
    ("error after introduction", BMI, 2, EXPIRY_TOO_SOON, "F01=0 F10=0 F12=0 F21=0", 1, None, None),
    (
        "final failure expected intro", BMH, 4, INVALID_ONION_BLINDING,
        "S01=100 F12=0 F21=0 F23=0 F32=0", 2, ERROR, None,
    ),
    ("blinded multi-hop introduction", BMH, 2, INVALID_ONION_BLINDING, "S01=100 S12=99 F34=77", None, None, None),
    ("blinded multi-hop introduction peer", BMI, 1, INVALID_ONION_BLINDING, "S01=100 F23=58", None, None, None),
    ("blinded single hop introduction failure", BSH, 2, INVALID_ONION_BLINDING, "S01=100 S12=99", None, ERROR, None),
    ("error before introduction", BMH, 1, INVALID_ONION_BLINDING, "F01=0 F10=0 F12=0 F21=0", 1, None, None),
    (
        "intermediate unexpected blinding", R3, 2, INVALID_ONION_BLINDING,
        "S01=100 F12=0 F21=0 F23=0 F32=0", 2, None, None,
    ),
    ("peer unexpected blinding", R3, 1, INVALID_ONION_BLINDING, "F01=0 F10=0 F12=0 F21=0", 1, None, None),
    (
        "final node unexpected blinding", R3, 3, INVALID_ONION_BLINDING,
        "S01=100 S12=99 F23=0 F32=0", 3, ERROR, None,
    ),
    ("final node intro blinding", BIR, 2, INVALID_ONION_BLINDING, "S01=100 F12=0 F21=0", 2, ERROR, None),
    ("blinded multi-hop success", BMI, None, None, "S01=100 S12=58 S23=58", None, None, None),
]


def result(rt: Route, source: int | None, code: int | None) -> PaymentResult:
    failure = None if source is None else PaymentFailure.from_code(source, code or 0)
    return PaymentResult(1, 0, 0, rt, failure)


@pytest.mark.parametrize(
    ("rt", "source", "code", "spec", "node", "final", "policy"),
    [v[1:] for v in VECTORS],
    ids=[v[0] for v in VECTORS],
)
def test_lnd_interpretation_vectors(
    rt: Route, source: int | None, code: int | None, spec: str,
    node: int | None, final: FinalFailureReason | None, policy: tuple[int, int] | None,
) -> None:
    got = interpret_result(result(rt, source, code))
    assert dict(got.pair_results) == pairs(spec)
    assert got.node_failure == (None if node is None else N[node])
    assert got.final_failure_reason is final
    assert got.policy_failure == (None if policy is None else (N[policy[0]], N[policy[1]]))


def test_vector_count() -> None:
    assert len(VECTORS) == 26


@pytest.mark.parametrize(
    ("rt", "failure", "spec", "node", "final"),
    [
        # Unreadable failure: a direct payment blames the peer, longer routes every channel.
        (R1, PaymentFailure(), "F01=0 F10=0", 1, ERROR),
        (R3, PaymentFailure(), "F01=0 F10=0 F12=0 F21=0 F23=0 F32=0", None, None),
        # A known source without a message (undecodable): the reporting node is at fault.
        (R3, PaymentFailure(2), "F12=0 F21=0 F23=0 F32=0", 2, None),
        (R2, PaymentFailure(2), "S01=100 F12=0 F21=0", 2, ERROR),
        # Our own channel's other failures teach nothing.
        (R2, PaymentFailure.from_code(0, TEMPORARY_CHANNEL_FAILURE), "", None, None),
        # An unknown code from an intermediate node: node failure.
        (R3, PaymentFailure.from_code(1, 0x7777), "F01=0 F10=0 F12=0 F21=0", 1, None),
        # Beyond lnd: no hops, and a source index past the recipient (treated as unreadable).
        (Route(N[0], 5, []), PaymentFailure(3), "", None, None),
        (R2, PaymentFailure.from_code(7, TEMPORARY_CHANNEL_FAILURE), "F01=0 F10=0 F12=0 F21=0", None, None),
    ],
)
def test_other_shapes(
    rt: Route, failure: PaymentFailure, spec: str, node: int | None, final: FinalFailureReason | None
) -> None:
    got = interpret_result(PaymentResult(1, 0, 0, rt, failure))
    assert dict(got.pair_results) == pairs(spec)
    assert got.node_failure == (None if node is None else N[node])
    assert got.final_failure_reason is final


def test_interpretation_is_read_only() -> None:
    got = interpret_result(result(R2, None, None))
    assert isinstance(got, Interpretation)
    with pytest.raises(TypeError):
        got.pair_results[(N[0], N[1])] = PairOutcome(False, 0)  # type: ignore[index]
    with pytest.raises(AttributeError):
        got.node_failure = N[1]  # type: ignore[misc]
    with pytest.raises(TypeError, match="PaymentResult"):
        interpret_result("nope")  # type: ignore[arg-type]


@given(payment_results())
def test_interpret_result_never_raises(r: PaymentResult) -> None:
    got = interpret_result(r)
    nodes = {r.route.source_pubkey, *(h.pubkey for h in r.route.hops)}
    for (a, b), outcome in got.pair_results.items():
        assert a in nodes and b in nodes
        assert isinstance(outcome.success, bool) and 0 <= outcome.amount_msat < 2**64
    assert got.node_failure is None or got.node_failure in nodes
