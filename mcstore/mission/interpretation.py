"""What a payment attempt's outcome says about each channel on its route (lnd's ``interpretResult``).

:func:`interpret_result` turns one :class:`~mcstore.model.PaymentResult` into an
:class:`Interpretation`: a success or failure per directed node pair, an optional failed
node, an optional reason to stop the payment, and an optional pair whose policy may be out
of date. The rules are lnd's (``routing/result_interpretation.go``, lnd 0.19 to 0.21),
for every BOLT 4 failure code, the source's own failures, intermediate and final hops,
unreadable failures and blinded routes.

Notation used in the comments: the route's source is node 0, hop ``i`` (0-based) leads to
node ``i + 1``; channel ``j`` is the directed pair node ``j`` -> node ``j + 1`` and carries
``total_amount_msat`` for ``j == 0``, else hop ``j - 1``'s ``amount_to_forward_msat``. A
failure's ``source_index`` ``k`` names node ``k`` (0 is the source itself, ``n`` the
recipient of an ``n``-hop route).

Where lnd would crash, the outcome is defined instead, so that :func:`interpret_result`
never raises for a valid result (lnd never builds these, but a database can hold anything):

* a route without hops tells nothing: the interpretation is empty;
* a ``source_index`` beyond the recipient names no node of the route, so the failure is
  treated as unreadable (as a failure without a source index).

The failure code is read from the message's first two bytes; a message whose payload does not
parse is interpreted by its code (lnd cannot load such a record at all). A code that lnd
does not know is handled as lnd handles an undecodable message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from ..model import (
    AMOUNT_BELOW_MINIMUM,
    CHANNEL_DISABLED,
    EXPIRY_TOO_SOON,
    FEE_INSUFFICIENT,
    FINAL_EXPIRY_TOO_SOON,
    FINAL_INCORRECT_CLTV_EXPIRY,
    FINAL_INCORRECT_HTLC_AMOUNT,
    INCORRECT_CLTV_EXPIRY,
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    INCORRECT_PAYMENT_AMOUNT,
    INVALID_ONION_BLINDING,
    INVALID_ONION_HMAC,
    INVALID_ONION_KEY,
    INVALID_ONION_PAYLOAD,
    INVALID_ONION_VERSION,
    MPP_TIMEOUT,
    PERMANENT_CHANNEL_FAILURE,
    TEMPORARY_CHANNEL_FAILURE,
    UNKNOWN_NEXT_PEER,
    PaymentResult,
    Route,
)

__all__ = ["FinalFailureReason", "Interpretation", "PairOutcome", "interpret_result"]


class FinalFailureReason(enum.Enum):
    """Why retrying the payment along another route makes no sense (lnd's ``FailureReason``)."""

    ERROR = "error"
    """The recipient (or a direct peer) failed in a way no other route can fix."""
    INCORRECT_PAYMENT_DETAILS = "incorrect_payment_details"
    """The recipient rejected the payment hash, amount or final CLTV delta."""


class PairOutcome(NamedTuple):
    """The outcome for one directed node pair: a success for ``amount_msat``, or a failure.

    A failure's ``amount_msat`` is the smallest amount it applies to; 0 means it applies to
    every amount (lnd's amount-independent failure).
    """

    success: bool
    amount_msat: int


@dataclass(frozen=True, slots=True)
class Interpretation:
    """The interpretation of one payment result (lnd's ``interpretedResult``).

    ``pair_results`` maps ``(from_pubkey, to_pubkey)`` to a :class:`PairOutcome` (read-only);
    ``node_failure`` is a node all of whose channels are to blame; ``final_failure_reason``
    says the payment should stop; ``policy_failure`` is the pair whose channel policy the
    failing node claims we got wrong (used by mission control's second chance).
    """

    pair_results: Mapping[tuple[bytes, bytes], PairOutcome]
    node_failure: bytes | None = None
    final_failure_reason: FinalFailureReason | None = None
    policy_failure: tuple[bytes, bytes] | None = None


_FAIL0 = PairOutcome(False, 0)
# A NamedTuple's __new__ is a Python function around tuple.__new__; the replay makes several
# outcomes per result (and a _Raw), so they are made by tuple.__new__ directly (the same object).
_outcome = tuple.__new__
_ERROR = FinalFailureReason.ERROR
_DETAILS = FinalFailureReason.INCORRECT_PAYMENT_DETAILS
_BAD_ONION = frozenset({INVALID_ONION_VERSION, INVALID_ONION_HMAC, INVALID_ONION_KEY})
_POLICY = frozenset({AMOUNT_BELOW_MINIMUM, FEE_INSUFFICIENT, INCORRECT_CLTV_EXPIRY})


class _Raw(NamedTuple):
    """The interpretation before it is wrapped for the public API (the state uses it directly)."""

    pairs: dict[tuple[bytes, bytes], PairOutcome]
    node_failure: bytes | None
    final_failure_reason: FinalFailureReason | None
    policy_failure: tuple[bytes, bytes] | None


class _Builder:
    """Collects pair outcomes for one route; later writes to a pair overwrite earlier ones."""

    __slots__ = ("amounts", "last_amount", "node_failure", "nodes", "pairs")

    def __init__(self, route: Route) -> None:
        # nodes[k] is node k (nodes[0] the source); amounts[j] what channel j carried.
        nodes = [route.source_pubkey]
        amounts = [route.total_amount_msat]
        for hop in route.hops:
            nodes.append(hop.pubkey)
            amounts.append(hop.amount_to_forward_msat)
        self.last_amount = amounts.pop()  # what the recipient was to receive
        self.nodes = nodes
        self.amounts = amounts
        self.pairs: dict[tuple[bytes, bytes], PairOutcome] = {}
        self.node_failure: bytes | None = None

    def success_range(self, first: int, last: int) -> None:
        """Channels ``first..last`` (inclusive) forwarded what they carried."""
        nodes, amounts, pairs = self.nodes, self.amounts, self.pairs
        for j in range(first, last + 1):
            pairs[(nodes[j], nodes[j + 1])] = _outcome(PairOutcome, (True, amounts[j]))

    def fail_pair(self, j: int) -> None:
        """Channel ``j`` failed for every amount, in both directions."""
        a, b = self.nodes[j], self.nodes[j + 1]
        self.pairs[(a, b)] = _FAIL0
        self.pairs[(b, a)] = _FAIL0

    def fail_range(self, first: int, last: int) -> None:
        for j in range(first, last + 1):
            self.fail_pair(j)

    def fail_balance(self, j: int) -> None:
        """Channel ``j`` could not carry its amount (one direction only)."""
        self.pairs[(self.nodes[j], self.nodes[j + 1])] = _outcome(PairOutcome, (False, self.amounts[j]))

    def fail_node(self, k: int) -> None:
        """Node ``k`` (1..n) failed: its incoming and, unless it is the recipient, outgoing channel."""
        self.node_failure = self.nodes[k]
        self.fail_pair(k - 1)
        if k < len(self.nodes) - 1:
            self.fail_pair(k)


def _intro_index(route: Route) -> int:
    """Index of the introduction node (1 + index of the first hop with a blinding point), 0 if none."""
    for i, hop in enumerate(route.hops):
        if hop.has_blinding_point:
            return i + 1
    return 0


def _interpret(result: PaymentResult) -> _Raw:
    """interpret_result without the public wrapper: a dict of pair outcomes and the three fields."""
    route = result.route
    hops = route.hops
    n = len(hops)
    failure = result.failure
    if n == 0:
        return _outcome(_Raw, ({}, None, None, None))
    b = _Builder(route)
    if failure is None:
        intro = _intro_index(route)
        if intro:
            b.success_range(0, intro - 1)
            # Hops inside a blinded route carry no amount: they all forwarded the recipient's.
            amt = b.last_amount
            nodes = b.nodes
            for j in range(intro, n):
                b.pairs[(nodes[j], nodes[j + 1])] = PairOutcome(True, amt)
        else:
            b.success_range(0, n - 1)
        return _outcome(_Raw, (b.pairs, None, None, None))

    k = failure.source_index
    if k is None:
        return _unknown(b, n)
    code = failure.code  # None: no message, handled as lnd handles an undecodable one
    final: FinalFailureReason | None = None
    policy: tuple[bytes, bytes] | None = None
    intro = _intro_index(route)
    if intro and intro < k:
        # Anything from beyond the introduction node: it failed to convert the error.
        b.fail_node(intro)
        if intro > 1:
            b.success_range(0, intro - 2)
        if k == n:
            final = _ERROR
    elif k > n:
        return _unknown(b, n)  # names no node of the route (lnd would crash)
    elif k == 0:
        if code in _BAD_ONION:
            b.fail_node(1)
            if n == 1:
                final = _ERROR
        # Any other failure of our own channel is temporary: nothing is learnt.
    elif k == n:
        final = _final_hop(b, n, code)
    else:
        policy = _intermediate(b, n, k, code, intro)
        if code == INVALID_ONION_BLINDING and intro and k == intro and intro == n - 1:
            final = _ERROR
    return _outcome(_Raw, (b.pairs, b.node_failure, final, policy))


def _unknown(b: _Builder, n: int) -> _Raw:
    """No readable failure: blame the recipient of a direct payment, else every channel."""
    if n == 1:
        b.fail_node(1)
        return _outcome(_Raw, (b.pairs, b.node_failure, _ERROR, None))
    b.fail_range(0, n - 1)
    return _outcome(_Raw, (b.pairs, None, None, None))


def _final_hop(b: _Builder, n: int, code: int | None) -> FinalFailureReason | None:
    """A failure reported by the recipient; returns the final failure reason."""
    if code == FINAL_INCORRECT_CLTV_EXPIRY or code == FINAL_INCORRECT_HTLC_AMOUNT:
        if n == 1:
            b.fail_node(1)
            return _ERROR
        # Either the recipient or the node before it is at fault: blame their channel.
        b.fail_pair(n - 1)
        b.success_range(0, n - 2)
        return None
    if code == INCORRECT_PAYMENT_AMOUNT or code == INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS:
        b.success_range(0, n - 1)
        return _DETAILS
    if code == FINAL_EXPIRY_TOO_SOON:
        return _DETAILS
    if code == MPP_TIMEOUT:
        b.success_range(0, n - 1)
        return None
    # InvalidBlinding, every other code, and no message: the recipient is broken.
    b.fail_node(n)
    if n > 1:
        b.success_range(0, n - 2)
    return _ERROR


def _intermediate(b: _Builder, n: int, k: int, code: int | None, intro: int) -> tuple[bytes, bytes] | None:
    """A failure reported by node ``k`` (0 < k < n); returns the policy failure pair, if any."""
    if code in _BAD_ONION or code == UNKNOWN_NEXT_PEER or code == PERMANENT_CHANNEL_FAILURE:
        b.fail_pair(k)
    elif code == INVALID_ONION_PAYLOAD:
        b.fail_node(k)
        if k > 1:
            b.success_range(0, k - 2)
    elif code == CHANNEL_DISABLED:
        b.fail_pair(k)
        b.success_range(0, k - 1)
        return (b.nodes[k], b.nodes[k + 1])
    elif code in _POLICY:
        # The node, its predecessor tampering with the HTLC, or our stale copy of its policy
        # (the second chance in the state handles that one) is to blame.
        if k == 1:
            b.fail_node(1)
        else:
            b.fail_pair(k - 1)
            b.success_range(0, k - 2)
        return (b.nodes[k], b.nodes[k + 1])
    elif code == TEMPORARY_CHANNEL_FAILURE:
        b.fail_balance(k)
        b.success_range(0, k - 1)
    elif code == EXPIRY_TOO_SOON:
        if k == 1:
            b.fail_node(1)
        else:
            b.fail_range(0, k - 1)
    elif code == INVALID_ONION_BLINDING:
        if not intro or k < intro:
            b.fail_node(k)
            if k > 1:
                b.success_range(0, k - 2)
        else:
            # From the introduction node itself: the route up to it worked.
            b.success_range(0, intro - 1)
            if intro != n - 1:
                # Penalise the blinded route through its last pair only, for the amount
                # the recipient was to receive (the caller sets the final reason otherwise).
                b.pairs[(b.nodes[n - 1], b.nodes[n])] = PairOutcome(False, b.last_amount)
    else:
        b.fail_node(k)
    return None


def interpret_result(result: PaymentResult) -> Interpretation:
    """Interpret one payment result as lnd's mission control does (``interpretResult``).

    Pure and cheap; never raises for a valid :class:`~mcstore.model.PaymentResult` (see the
    module docstring for the cases lnd leaves undefined).

    Args:
        result: The payment result to read.

    Raises:
        TypeError: ``result`` is not a :class:`~mcstore.model.PaymentResult`.
    """
    if not isinstance(result, PaymentResult):
        raise TypeError(f"interpret_result() expects a PaymentResult, got {type(result).__name__}: {result!r}")
    raw = _interpret(result)
    return Interpretation(
        MappingProxyType(raw.pairs), raw.node_failure, raw.final_failure_reason, raw.policy_failure
    )
