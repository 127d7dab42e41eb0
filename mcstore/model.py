"""The data model of lnd mission control results, validated on construction.

Every class here is a frozen, slotted dataclass that checks its fields in ``__post_init__``,
so an instance that exists is always encodable in lnd's format. A field of the wrong type
raises :class:`TypeError` (``bool`` is never accepted where an int is expected); a value
out of range raises :class:`ValueError`. Both messages name the field and the offending value.

Limits follow lnd: every integer is a u64 (``0 <= x < 2**64``), every public key is exactly
33 bytes, and a failure source index is a u8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final

from librt.strings import BytesWriter
from mypy_extensions import mypyc_attr

# Relative, so that the compiled copy of this module imports the compiled byte helpers (one
# mypyc group: native calls). U64_MAX, the largest value of any integer field, is re-exported.
from ._bytes import U64_MAX, put_u64

__all__ = [
    "AMOUNT_BELOW_MINIMUM",
    "BADONION",
    "CHANNEL_DISABLED",
    "EXPIRY_TOO_FAR",
    "EXPIRY_TOO_SOON",
    "FAILURE_CODE_NAMES",
    "FEE_INSUFFICIENT",
    "FINAL_EXPIRY_TOO_SOON",
    "FINAL_INCORRECT_CLTV_EXPIRY",
    "FINAL_INCORRECT_HTLC_AMOUNT",
    "INCORRECT_CLTV_EXPIRY",
    "INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS",
    "INCORRECT_PAYMENT_AMOUNT",
    "INVALID_ONION_BLINDING",
    "INVALID_ONION_HMAC",
    "INVALID_ONION_KEY",
    "INVALID_ONION_PAYLOAD",
    "INVALID_ONION_VERSION",
    "INVALID_REALM",
    "KEY_LEN",
    "MPP_TIMEOUT",
    "NODE",
    "PERM",
    "PERMANENT_CHANNEL_FAILURE",
    "PERMANENT_NODE_FAILURE",
    "PUBKEY_LEN",
    "REQUIRED_CHANNEL_FEATURE_MISSING",
    "REQUIRED_NODE_FEATURE_MISSING",
    "TEMPORARY_CHANNEL_FAILURE",
    "TEMPORARY_NODE_FAILURE",
    "U8_MAX",
    "U64_MAX",
    "UNKNOWN_NEXT_PEER",
    "UPDATE",
    "Hop",
    "PaymentFailure",
    "PaymentResult",
    "Route",
]

PUBKEY_LEN: Final = 33
"""Length of a compressed secp256k1 public key, as lnd stores it (``route.Vertex``)."""

KEY_LEN: Final = 49
"""Length of a result's database key: u64 time_reply_ns + u64 id + 33-byte source pubkey."""

U8_MAX: Final = 255
"""Largest failure source index (lnd stores it as a u8)."""

# -- BOLT 4 failure codes ---------------------------------------------------------------
# The flag bits are part of the code numbers, so they are spelled out here once and the
# codes are composed from them exactly as BOLT 4 writes them.

BADONION = 0x8000
"""BOLT 4 flag: the onion could not be parsed by the reporting node."""
PERM = 0x4000
"""BOLT 4 flag: the failure is permanent."""
NODE = 0x2000
"""BOLT 4 flag: the failure concerns the node rather than a channel."""
UPDATE = 0x1000
"""BOLT 4 flag: the failure message carries a ``channel_update``."""

INVALID_REALM = PERM | 1
TEMPORARY_NODE_FAILURE = NODE | 2
PERMANENT_NODE_FAILURE = PERM | NODE | 2
REQUIRED_NODE_FEATURE_MISSING = PERM | NODE | 3
INVALID_ONION_VERSION = BADONION | PERM | 4
INVALID_ONION_HMAC = BADONION | PERM | 5
INVALID_ONION_KEY = BADONION | PERM | 6
TEMPORARY_CHANNEL_FAILURE = UPDATE | 7
PERMANENT_CHANNEL_FAILURE = PERM | 8
REQUIRED_CHANNEL_FEATURE_MISSING = PERM | 9
UNKNOWN_NEXT_PEER = PERM | 10
AMOUNT_BELOW_MINIMUM = UPDATE | 11
FEE_INSUFFICIENT = UPDATE | 12
INCORRECT_CLTV_EXPIRY = UPDATE | 13
EXPIRY_TOO_SOON = UPDATE | 14
INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15
# 16 and 17 were removed from BOLT 4 (folded into code 15), but older peers still send
# them and lnd still knows them, so results stored years ago can carry them.
INCORRECT_PAYMENT_AMOUNT = PERM | 16
FINAL_EXPIRY_TOO_SOON = 17
FINAL_INCORRECT_CLTV_EXPIRY = 18
FINAL_INCORRECT_HTLC_AMOUNT = 19
CHANNEL_DISABLED = UPDATE | 20
EXPIRY_TOO_FAR = 21
INVALID_ONION_PAYLOAD = PERM | 22
MPP_TIMEOUT = 23
INVALID_ONION_BLINDING = BADONION | PERM | 24

FAILURE_CODE_NAMES: Mapping[int, str] = MappingProxyType(
    {
        INVALID_REALM: "invalid_realm",
        TEMPORARY_NODE_FAILURE: "temporary_node_failure",
        PERMANENT_NODE_FAILURE: "permanent_node_failure",
        REQUIRED_NODE_FEATURE_MISSING: "required_node_feature_missing",
        INVALID_ONION_VERSION: "invalid_onion_version",
        INVALID_ONION_HMAC: "invalid_onion_hmac",
        INVALID_ONION_KEY: "invalid_onion_key",
        TEMPORARY_CHANNEL_FAILURE: "temporary_channel_failure",
        PERMANENT_CHANNEL_FAILURE: "permanent_channel_failure",
        REQUIRED_CHANNEL_FEATURE_MISSING: "required_channel_feature_missing",
        UNKNOWN_NEXT_PEER: "unknown_next_peer",
        AMOUNT_BELOW_MINIMUM: "amount_below_minimum",
        FEE_INSUFFICIENT: "fee_insufficient",
        INCORRECT_CLTV_EXPIRY: "incorrect_cltv_expiry",
        EXPIRY_TOO_SOON: "expiry_too_soon",
        INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: "incorrect_or_unknown_payment_details",
        INCORRECT_PAYMENT_AMOUNT: "incorrect_payment_amount",
        FINAL_EXPIRY_TOO_SOON: "final_expiry_too_soon",
        FINAL_INCORRECT_CLTV_EXPIRY: "final_incorrect_cltv_expiry",
        FINAL_INCORRECT_HTLC_AMOUNT: "final_incorrect_htlc_amount",
        CHANNEL_DISABLED: "channel_disabled",
        EXPIRY_TOO_FAR: "expiry_too_far",
        INVALID_ONION_PAYLOAD: "invalid_onion_payload",
        MPP_TIMEOUT: "mpp_timeout",
        INVALID_ONION_BLINDING: "invalid_onion_blinding",
    }
)
"""Read-only map from every BOLT 4 failure code (flag bits included) to its BOLT 4 name."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


# -- validation helpers ---------------------------------------------------------------------
# Each __post_init__ runs an inline fast check (exact type and range) and only calls these
# on the rare slow path, where they either normalise the value or raise the detailed error.
# That keeps construction cheap for the decoder, which builds several objects per row.


def _show(value: object) -> str:
    """repr() of a value, shortened so a huge bytes object cannot flood an error message."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def _check_u64(owner: str, name: str, value: object) -> int:
    """Return ``value`` as a plain int if it is a u64; raise TypeError/ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {_show(value)}")
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"{owner}.{name} must be a u64 (0 <= x < 2**64), got {_show(value)}")
    # An int subclass (say an IntEnum) is accepted but stored as a plain int, so equality,
    # hashing and repr do not depend on what the caller happened to pass.
    return int(value)


def _check_u8(owner: str, name: str, value: object) -> int:
    """Return ``value`` as a plain int if it is a u8; raise TypeError/ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int or None, got {type(value).__name__} {_show(value)}")
    if not 0 <= value <= U8_MAX:
        raise ValueError(f"{owner}.{name} must be a u8 (0 <= x < 256), got {_show(value)}")
    return int(value)


def _check_bytes(owner: str, name: str, value: object) -> bytes:
    """Return ``value`` as plain bytes; accept bytes, bytearray and memoryview only."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{owner}.{name} must be bytes, got {type(value).__name__} {_show(value)}")


def _check_pubkey(owner: str, name: str, value: object) -> bytes:
    """Return ``value`` as 33 plain bytes; raise TypeError/ValueError otherwise."""
    data = _check_bytes(owner, name, value)
    if len(data) != PUBKEY_LEN:
        raise ValueError(
            f"{owner}.{name} must be exactly {PUBKEY_LEN} bytes, got {len(data)} bytes {_show(data)}"
        )
    return data


def _code_bytes(owner: str, value: object) -> bytes:
    """The 2 big-endian bytes of the BOLT 4 failure code ``value`` (a u16); raise
    TypeError/ValueError naming ``owner``'s ``code`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner} code must be an int, got {type(value).__name__} {_show(value)}")
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{owner} code must be a u16 (0 <= x < 65536), got {_show(value)}")
    return value.to_bytes(2, "big")


def _check_bool(owner: str, name: str, value: object) -> None:
    """Raise TypeError unless ``value`` is a bool (0/1 ints are refused to catch mix-ups)."""
    if type(value) is not bool:
        raise TypeError(f"{owner}.{name} must be a bool, got {type(value).__name__} {_show(value)}")


# -- the model ------------------------------------------------------------------------------


# Each class writes its own ``__init__`` (``init=False``) instead of the one dataclasses
# generates: the same checks as a ``__post_init__``, but every field is stored once, with
# ``object.__setattr__(self, "name", value)``, which is what a frozen dataclass does and which
# mypyc compiles to a direct store. The inline range check ``x >> 64`` is non-zero exactly
# when an int is not a u64 (negative, or 2**64 or more); unlike ``x <= U64_MAX`` it needs no
# big-int comparison in compiled code. The parameters are typed ``object`` because the checks
# below, not a compiled argument check, must report a wrong type (with the field's name).
# Instances pickle and copy through ``__reduce__``, i.e. through the constructor and its checks.
#
# ``mypyc_attr(acyclic=True)`` (a no-op on the pure path) makes the compiled classes invisible to
# CPython's cyclic garbage collector: their instances are never tracked (``gc.is_tracked`` is
# False), so a program that keeps many results does not make every collection walk them (issue
# 21: decoding 20k results into a list with the collector on cost 2.9x the same with it off).
# That is safe because no instance can be part of a reference cycle: every field holds an exact
# int, bytes, bool or None (the checks convert subclasses), a compiled model object, or (Route.hops)
# a tuple of Hop, and an interpreted class cannot subclass a compiled one. A tuple holding only
# untracked objects is untracked by the collector itself the first time it survives a collection.


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Hop:
    """One hop of a route, reduced to what mission control keeps.

    ``Hop(channel_id, pubkey, amount_to_forward_msat, has_blinding_point=False,
    has_custom_records=False)``.

    Args:
        channel_id: The short channel id of the channel to this hop's node (a u64).
        pubkey: The hop's node: exactly 33 bytes (bytearray/memoryview are converted to bytes).
        amount_to_forward_msat: What this hop forwards, in msat (a u64).
        has_blinding_point: Whether the hop carried a blinding point (a bool).
        has_custom_records: Whether the hop carried custom records (a bool).

    Raises:
        TypeError: A field of the wrong type, naming it and the value.
        ValueError: A value out of range (an integer that is not a u64, a pubkey that is not
            33 bytes), naming it and the value.
    """

    channel_id: int
    pubkey: bytes
    amount_to_forward_msat: int
    has_blinding_point: bool = False
    has_custom_records: bool = False

    def __init__(
        self,
        channel_id: object,
        pubkey: object,
        amount_to_forward_msat: object,
        has_blinding_point: object = False,
        has_custom_records: object = False,
    ) -> None:
        if type(channel_id) is not int or channel_id >> 64:
            channel_id = _check_u64("Hop", "channel_id", channel_id)
        if type(pubkey) is not bytes or len(pubkey) != PUBKEY_LEN:
            pubkey = _check_pubkey("Hop", "pubkey", pubkey)
        if type(amount_to_forward_msat) is not int or amount_to_forward_msat >> 64:
            amount_to_forward_msat = _check_u64("Hop", "amount_to_forward_msat", amount_to_forward_msat)
        if type(has_blinding_point) is not bool:
            _check_bool("Hop", "has_blinding_point", has_blinding_point)
        if type(has_custom_records) is not bool:
            _check_bool("Hop", "has_custom_records", has_custom_records)
        object.__setattr__(self, "channel_id", channel_id)
        object.__setattr__(self, "pubkey", pubkey)
        object.__setattr__(self, "amount_to_forward_msat", amount_to_forward_msat)
        object.__setattr__(self, "has_blinding_point", has_blinding_point)
        object.__setattr__(self, "has_custom_records", has_custom_records)

    def __reduce__(self) -> tuple[type[Hop], tuple[int, bytes, int, bool, bool]]:
        return Hop, (
            self.channel_id,
            self.pubkey,
            self.amount_to_forward_msat,
            self.has_blinding_point,
            self.has_custom_records,
        )


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Route:
    """The route a payment attempt took: who sent it, how much, and through which hops.

    ``Route(source_pubkey, total_amount_msat, hops)``. ``hops`` may be any sequence of
    :class:`Hop` (not str/bytes) and is stored as a tuple, so two routes compare equal
    whatever sequence type built them. Empty hops are allowed.

    Args:
        source_pubkey: The sending node: exactly 33 bytes.
        total_amount_msat: The amount sent, fees included, in msat (a u64).
        hops: The hops, in order, as any sequence of :class:`Hop`.

    Raises:
        TypeError: A wrong type (including a non-Hop element of ``hops``).
        ValueError: A ``source_pubkey`` that is not 33 bytes, or a ``total_amount_msat`` that
            is not a u64.
    """

    source_pubkey: bytes
    total_amount_msat: int
    hops: tuple[Hop, ...]

    def __init__(self, source_pubkey: object, total_amount_msat: object, hops: object) -> None:
        if type(source_pubkey) is not bytes or len(source_pubkey) != PUBKEY_LEN:
            source_pubkey = _check_pubkey("Route", "source_pubkey", source_pubkey)
        if type(total_amount_msat) is not int or total_amount_msat >> 64:
            total_amount_msat = _check_u64("Route", "total_amount_msat", total_amount_msat)
        if type(hops) is list:
            # What users write; checked first, as the ABC check below costs more than the copy.
            hops = tuple(hops)
        elif type(hops) is not tuple:
            # str and bytes are sequences too, but never a sensible list of hops.
            if isinstance(hops, (str, bytes, bytearray, memoryview)) or not isinstance(hops, Sequence):
                raise TypeError(f"Route.hops must be a sequence of Hop, got {type(hops).__name__} {_show(hops)}")
            hops = tuple(hops)
        for i, hop in enumerate(hops):
            if not isinstance(hop, Hop):
                raise TypeError(f"Route.hops[{i}] must be a Hop, got {type(hop).__name__} {_show(hop)}")
        object.__setattr__(self, "source_pubkey", source_pubkey)
        object.__setattr__(self, "total_amount_msat", total_amount_msat)
        object.__setattr__(self, "hops", hops)

    def __reduce__(self) -> tuple[type[Route], tuple[bytes, int, tuple[Hop, ...]]]:
        return Route, (self.source_pubkey, self.total_amount_msat, self.hops)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class PaymentFailure:
    """Why a payment attempt failed, as far as lnd could tell.

    ``PaymentFailure(source_index=None, message=None, *, code=None)``; ``PaymentFailure()``
    means "failed, source unknown". ``source_index`` is the index of the reporting hop
    (0..255). ``message`` is the raw BOLT 4 failure message (a big-endian u16 code, then its
    payload, so at least 2 bytes); it can only be present together with ``source_index``,
    because lnd can only decrypt a message whose source it knows. ``code=`` (a u16) instead of
    ``message=`` gives the message of that code with no payload:
    ``PaymentFailure(source_index=1, code=TEMPORARY_CHANNEL_FAILURE)``; :meth:`from_code` also
    takes a payload. Give ``message`` or ``code``, not both.

    Args:
        source_index: The index of the hop that reported the failure (0..255), or None.
        message: The raw BOLT 4 failure message (at least 2 bytes), or None.
        code: A BOLT 4 failure code (a u16), instead of ``message``.

    Raises:
        TypeError: A wrong type, or both ``message`` and ``code`` given.
        ValueError: An index out of range, a code that is not a u16, a message shorter than
            2 bytes, or a message without a source index.
    """

    source_index: int | None = None
    message: bytes | None = None

    def __init__(self, source_index: object = None, message: object = None, *, code: object = None) -> None:
        if code is not None:
            if message is not None:
                raise TypeError(
                    f"PaymentFailure takes message= or code=, not both; got message={_show(message)}, "
                    f"code={_show(code)}"
                )
            message = _code_bytes("PaymentFailure", code)
        if source_index is not None and (type(source_index) is not int or source_index >> 8):
            source_index = _check_u8("PaymentFailure", "source_index", source_index)
        if message is not None:
            if type(message) is not bytes:
                message = _check_bytes("PaymentFailure", "message", message)
            if len(message) < 2:
                raise ValueError(
                    f"PaymentFailure.message must be at least 2 bytes (a u16 failure code), got {_show(message)}"
                )
            if source_index is None:
                raise ValueError(
                    "PaymentFailure.message requires a source_index (lnd can only decrypt a "
                    f"failure whose source is known), got source_index=None, message={_show(message)}"
                )
        object.__setattr__(self, "source_index", source_index)
        object.__setattr__(self, "message", message)

    def __reduce__(self) -> tuple[type[PaymentFailure], tuple[int | None, bytes | None]]:
        return PaymentFailure, (self.source_index, self.message)

    @classmethod
    def from_code(cls, source_index: object, code: object, payload: object = b"") -> PaymentFailure:
        """Build a failure reported by hop ``source_index`` with BOLT 4 ``code`` and ``payload``.

        ``PaymentFailure.from_code(i, code)`` equals ``PaymentFailure(i, code=code)``.

        Args:
            source_index: The index of the hop that reported the failure (0..255).
            code: The BOLT 4 failure code, an int in 0..65535.
            payload: The bytes that follow the code in the message.

        Raises:
            TypeError: As the constructor, or a ``code`` that is not an int.
            ValueError: As the constructor, or a ``code`` outside 0..65535.
        """
        head = _code_bytes("PaymentFailure.from_code", code)
        payload = _check_bytes("PaymentFailure", "payload", payload)
        return cls(source_index, head + payload)

    @property
    def code(self) -> int | None:
        """The BOLT 4 failure code (a u16, flag bits included), or None without a message."""
        msg = self.message
        if msg is None:
            return None
        return (msg[0] << 8) | msg[1]

    @property
    def code_name(self) -> str | None:
        """The BOLT 4 name of :attr:`code` (``unknown_failure_0x....`` if BOLT 4 has none).

        None without a message.
        """
        code = self.code
        if code is None:
            return None
        return FAILURE_CODE_NAMES.get(code, f"unknown_failure_0x{code:04x}")


def _ns_from_datetime(name: str, value: object) -> int:
    """Whole nanoseconds since the Unix epoch of an aware datetime; exact, no float math."""
    if not isinstance(value, datetime):
        raise TypeError(f"PaymentResult.{name} must be a datetime, got {type(value).__name__} {_show(value)}")
    if value.utcoffset() is None:
        raise ValueError(f"PaymentResult.{name} must be timezone-aware, got {_show(value)}")
    # timedelta // timedelta is exact integer arithmetic; .timestamp() would go through a
    # float and lose microseconds for present-day dates.
    return ((value - _EPOCH) // _ONE_US) * 1000


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class PaymentResult:
    """The outcome of one payment attempt, as lnd's mission control stores it.

    ``PaymentResult(id, time_fwd_ns, time_reply_ns, route, failure=None)``. No ordering
    between the two times is enforced, as in lnd. Its key (:attr:`key`) is lnd's: the reply
    time, the id and the source, so results sort by reply time.

    Args:
        id: The attempt id (a u64).
        time_fwd_ns: When the attempt was sent, in nanoseconds since the Unix epoch (a u64).
        time_reply_ns: When its outcome came back, in nanoseconds since the Unix epoch (a u64).
        route: The :class:`Route` it took.
        failure: The :class:`PaymentFailure`, or None for a success.

    Raises:
        TypeError: A wrong type.
        ValueError: An integer that is not a u64.
    """

    id: int
    time_fwd_ns: int
    time_reply_ns: int
    route: Route
    failure: PaymentFailure | None = None
    # The 49-byte database key, computed once: the store looks it up on every insert.
    _key: bytes = field(init=False, repr=False, compare=False)
    # lnd's TLV value, cached by codec.encode_result: the store's intake encodes results as
    # they arrive, so that a flush (and the final flush at close) only has SQL left to do.
    _value: bytes | None = field(init=False, default=None, repr=False, compare=False)

    def __init__(
        self,
        id: object,
        time_fwd_ns: object,
        time_reply_ns: object,
        route: object,
        failure: object = None,
    ) -> None:
        if type(id) is not int or id >> 64:
            id = _check_u64("PaymentResult", "id", id)
        if type(time_fwd_ns) is not int or time_fwd_ns >> 64:
            time_fwd_ns = _check_u64("PaymentResult", "time_fwd_ns", time_fwd_ns)
        if type(time_reply_ns) is not int or time_reply_ns >> 64:
            time_reply_ns = _check_u64("PaymentResult", "time_reply_ns", time_reply_ns)
        if not isinstance(route, Route):
            raise TypeError(f"PaymentResult.route must be a Route, got {type(route).__name__} {_show(route)}")
        if failure is not None and not isinstance(failure, PaymentFailure):
            raise TypeError(
                "PaymentResult.failure must be a PaymentFailure or None, "
                f"got {type(failure).__name__} {_show(failure)}"
            )
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "time_fwd_ns", time_fwd_ns)
        object.__setattr__(self, "time_reply_ns", time_reply_ns)
        object.__setattr__(self, "route", route)
        object.__setattr__(self, "failure", failure)
        w = BytesWriter()
        put_u64(w, time_reply_ns)
        put_u64(w, id)
        w.write(route.source_pubkey)
        object.__setattr__(self, "_key", w.getvalue())
        object.__setattr__(self, "_value", None)

    def __reduce__(self) -> tuple[type[PaymentResult], tuple[int, int, int, Route, PaymentFailure | None]]:
        return PaymentResult, (self.id, self.time_fwd_ns, self.time_reply_ns, self.route, self.failure)

    def _cache_value(self, value: bytes) -> None:
        """Keep lnd's TLV value of this result (for codec.encode_result only; a direct store
        in the compiled core, where a setattr from outside the class is a generic one)."""
        object.__setattr__(self, "_value", value)

    @classmethod
    def from_datetimes(
        cls,
        id: object,
        time_fwd: object,
        time_reply: object,
        route: object,
        failure: object = None,
    ) -> PaymentResult:
        """Build a result from timezone-aware datetimes, converted exactly to epoch nanoseconds.

        Args:
            id: The attempt id (a u64).
            time_fwd: When the attempt was sent, a timezone-aware datetime.
            time_reply: When its outcome came back, a timezone-aware datetime.
            route: The :class:`Route` it took.
            failure: The :class:`PaymentFailure`, or None for a success.

        Raises:
            TypeError: A time that is not a datetime, or as the constructor.
            ValueError: A naive datetime, one before the epoch or past the u64 nanosecond range
                (year 2554), or as the constructor.
        """
        return cls(
            id,
            _ns_from_datetime("time_fwd", time_fwd),
            _ns_from_datetime("time_reply", time_reply),
            route,
            failure,
        )

    @property
    def key(self) -> bytes:
        """lnd's 49-byte key: u64 BE time_reply_ns, u64 BE id, 33-byte source pubkey."""
        return self._key

    @property
    def success(self) -> bool:
        """True when the attempt succeeded, i.e. :attr:`failure` is None."""
        return self.failure is None

    @property
    def time_fwd(self) -> datetime:
        """:attr:`time_fwd_ns` as an aware UTC datetime (truncated to microseconds)."""
        return _EPOCH + timedelta(microseconds=self.time_fwd_ns // 1000)

    @property
    def time_reply(self) -> datetime:
        """:attr:`time_reply_ns` as an aware UTC datetime (truncated to microseconds)."""
        return _EPOCH + timedelta(microseconds=self.time_reply_ns // 1000)
