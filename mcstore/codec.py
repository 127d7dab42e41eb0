"""lnd's byte format for mission control results (channeldb migration32, "pure TLV").

A result is stored under a 49-byte key (u64 BE ``time_reply_ns``, u64 BE ``id``, 33-byte
source pubkey) with a value that is a BOLT 1 TLV stream::

    0: time_fwd_ns  u64      1: time_reply_ns  u64
    2: route        nested stream {0: source pubkey, 1: total msat (BigSize),
                                   2: BigSize(count) then (BigSize(len), hop stream)*}
    3: failure      optional nested stream {0: source index u8, 1: raw message}
    hop stream:     {0: channel id u64, 1: pubkey, 2: amount msat (BigSize),
                     3: has blinding point (empty), 4: has custom records (empty)}

:func:`decode_result` is strict: it raises :class:`~mcstore.errors.DecodeError`, and
nothing else, for any malformed input, so a corrupted row can be reported and skipped.
"""

from __future__ import annotations

import struct
from typing import NoReturn

# Absolute: the compiled copy of this module lives in mcstore._native (see setup.py).
from mcstore.errors import DecodeError

from .model import KEY_LEN, PUBKEY_LEN, Hop, PaymentFailure, PaymentResult, Route

__all__ = ["decode_bigsize", "decode_result", "encode_bigsize", "encode_result"]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_KEY_PREFIX = struct.Struct(">QQ")
# Top-level records 0 and 1 are fixed: type 0, len 8, u64; type 1, len 8, u64.
_TIMES = struct.Struct(">HQHQ")
_TIMES_TL = (0x0008, 0x0108)
# A hop's records 0 and 1: type 0, len 8, channel id; type 1, len 33, pubkey.
_HOP_HEAD = struct.Struct(">HQH33s")
_HOP_TL = (0x0008, 0x0121)
# The smallest canonical hop: that head plus type 2, length 1, a one-byte amount.
_HOP_MIN = _HOP_HEAD.size + 3
# Every valid tail of a canonical hop after its amount: the optional empty flag records.
_HOP_FLAGS = {
    b"": (False, False),
    b"\x03\x00": (True, False),
    b"\x04\x00": (False, True),
    b"\x03\x00\x04\x00": (True, True),
}

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

# Single bytes, by value. One-byte BigSizes (< 0xfd) cover nearly every length and many
# amounts; a table lookup beats building a fresh bytes object each time.
_BYTE = tuple(bytes((i,)) for i in range(256))


# -- BigSize ----------------------------------------------------------------------------


def _bigsize(n: int) -> bytes:
    """BigSize of a known-valid u64 (no checks: callers hold validated model values)."""
    if n < 0xFD:
        return _BYTE[n]
    if n <= _U16_MAX:
        return b"\xfd" + _U16.pack(n)
    if n <= _U32_MAX:
        return b"\xfe" + _U32.pack(n)
    return b"\xff" + _U64.pack(n)


def encode_bigsize(n: object) -> bytes:
    """Encode ``n`` as a canonical BOLT 1 BigSize (1, 3, 5 or 9 bytes).

    Raises TypeError if ``n`` is not an int (bool included) and ValueError if it is not
    a u64 (``0 <= n < 2**64``).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"BigSize must be an int, got {type(n).__name__} {n!r}")
    if not 0 <= n <= _U64_MAX:
        raise ValueError(f"BigSize must be a u64 (0 <= x < 2**64), got {n!r}")
    return _bigsize(int(n))


def _bigsize_slow(buf: bytes, off: int, end: int) -> tuple[int, int]:
    """Read a multi-byte BigSize whose prefix byte at ``off`` is 0xfd, 0xfe or 0xff.

    Raises DecodeError on truncation (past ``end``) or a non-canonical encoding.
    """
    prefix = buf[off]
    if prefix == 0xFD:
        if end - off < 3:
            raise DecodeError(f"truncated BigSize at offset {off}: need 3 bytes")
        n = _U16.unpack_from(buf, off + 1)[0]
        if n < 0xFD:
            raise DecodeError(f"non-canonical BigSize at offset {off}: {n} in 3 bytes")
        return n, off + 3
    if prefix == 0xFE:
        if end - off < 5:
            raise DecodeError(f"truncated BigSize at offset {off}: need 5 bytes")
        n = _U32.unpack_from(buf, off + 1)[0]
        if n <= _U16_MAX:
            raise DecodeError(f"non-canonical BigSize at offset {off}: {n} in 5 bytes")
        return n, off + 5
    if end - off < 9:
        raise DecodeError(f"truncated BigSize at offset {off}: need 9 bytes")
    n = _U64.unpack_from(buf, off + 1)[0]
    if n <= _U32_MAX:
        raise DecodeError(f"non-canonical BigSize at offset {off}: {n} in 9 bytes")
    return n, off + 9


def decode_bigsize(buf: object, offset: object) -> tuple[int, int]:
    """Read a BOLT 1 BigSize at ``offset``; return ``(value, offset after it)``.

    Raises DecodeError if the buffer ends early or the encoding is not canonical (the
    value would fit a shorter form), ValueError for a negative offset, TypeError for a
    non-bytes buffer or a non-int offset.
    """
    if not isinstance(buf, bytes):
        if not isinstance(buf, (bytearray, memoryview)):
            raise TypeError(f"buf must be bytes-like, got {type(buf).__name__}")
        buf = bytes(buf)
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"offset must be an int, got {type(offset).__name__} {offset!r}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset!r}")
    end = len(buf)
    if offset >= end:
        raise DecodeError(f"truncated BigSize at offset {offset}: no bytes left")
    first = buf[offset]
    if first < 0xFD:
        return first, offset + 1
    return _bigsize_slow(buf, offset, end)


# -- encoding ---------------------------------------------------------------------------


def _encode_hop(hop: Hop) -> bytes:
    """The hop TLV stream, prefixed with its BigSize length."""
    amt = _bigsize(hop.amount_to_forward_msat)
    parts = [
        _HOP_HEAD.pack(_HOP_TL[0], hop.channel_id, _HOP_TL[1], hop.pubkey),
        b"\x02",
        _BYTE[len(amt)],
        amt,
    ]
    if hop.has_blinding_point:
        parts.append(b"\x03\x00")
    if hop.has_custom_records:
        parts.append(b"\x04\x00")
    body = b"".join(parts)
    # A hop stream is at most 11 + 35 + 11 + 4 = 61 bytes, so its length is one byte.
    return _BYTE[len(body)] + body


def _encode_route(route: Route) -> bytes:
    """The route TLV stream (without the outer type/length)."""
    hops = route.hops
    hops_body = _bigsize(len(hops)) + b"".join([_encode_hop(h) for h in hops])
    total = _bigsize(route.total_amount_msat)
    return b"".join(
        (
            b"\x00\x21",
            route.source_pubkey,
            b"\x01",
            _BYTE[len(total)],
            total,
            b"\x02",
            _bigsize(len(hops_body)),
            hops_body,
        )
    )


def _encode_failure(failure: PaymentFailure) -> bytes:
    """The failure TLV stream (without the outer type/length); empty if source unknown."""
    idx = failure.source_index
    if idx is None:
        # The model forbids a message without a source index.
        return b""
    msg = failure.message
    if msg is None:
        return b"\x00\x01" + _BYTE[idx]
    return b"".join((b"\x00\x01", _BYTE[idx], b"\x01", _bigsize(len(msg)), msg))


def encode_result(result: object) -> tuple[bytes, bytes]:
    """Encode ``result`` as lnd's ``(key, value)`` pair.

    Never raises for a valid :class:`~mcstore.model.PaymentResult` (the model has already
    checked every limit the format imposes); raises TypeError for anything else. The value
    is computed once per result and cached on it (results are immutable, so the cache cannot
    go stale).
    """
    if not isinstance(result, PaymentResult):
        raise TypeError(f"encode_result() expects a PaymentResult, got {type(result).__name__}")
    cached = result._value
    if cached is not None:
        return result._key, cached
    route = _encode_route(result.route)
    parts = [
        _TIMES.pack(_TIMES_TL[0], result.time_fwd_ns, _TIMES_TL[1], result.time_reply_ns),
        b"\x02",
        _bigsize(len(route)),
        route,
    ]
    failure = result.failure
    if failure is not None:
        fail = _encode_failure(failure)
        parts.append(b"\x03")
        parts.append(_bigsize(len(fail)))
        parts.append(fail)
    value = b"".join(parts)
    object.__setattr__(result, "_value", value)
    return result._key, value


# -- decoding ---------------------------------------------------------------------------
# Every reader works on offsets into one immutable bytes object and checks each bound
# against the end of the stream it is in (nested streams end before the buffer does), so
# malformed input surfaces as DecodeError, never as IndexError or struct.error.

_Slot = tuple[int, int] | None


def _caused(error: DecodeError, cause: BaseException | None) -> DecodeError:
    """``error`` with ``cause`` as its ``__cause__``: what ``raise error from cause`` does.

    Spelled out because mypyc (the compiled core) drops the cause of ``raise ... from ...``.
    """
    error.__cause__ = cause
    return error


def _reraise(prefix: str, e: DecodeError) -> NoReturn:
    """Re-raise ``e`` with ``prefix`` saying where, keeping its cause (a model error)."""
    raise _caused(DecodeError(f"{prefix}: {e}"), e.__cause__)


def _scan(buf: bytes, off: int, end: int, known: int) -> list[_Slot]:
    """Split the TLV stream ``buf[off:end]`` into records.

    Returns a list indexed by type ``0 .. known-1`` holding ``(start, stop)`` of each known
    record's value, or None where absent. Unknown odd types are skipped. Raises DecodeError
    for truncation, a non-canonical BigSize, a length past ``end``, types not strictly
    increasing, or an unknown even type.
    """
    slots: list[_Slot] = [None] * known
    last = -1
    while off < end:
        at = off
        typ = buf[off]
        if typ < 0xFD:
            off += 1
        else:
            typ, off = _bigsize_slow(buf, off, end)
        if typ <= last:
            raise DecodeError(
                f"record type {typ} at offset {at} follows type {last} (types must be strictly increasing)"
            )
        last = typ
        if off >= end:
            raise DecodeError(f"record type {typ} at offset {at} is truncated: no length")
        length = buf[off]
        if length < 0xFD:
            off += 1
        else:
            length, off = _bigsize_slow(buf, off, end)
        if length > end - off:
            raise DecodeError(
                f"record type {typ} at offset {at}: length {length} runs past the end "
                f"({end - off} bytes left)"
            )
        if typ < known:
            slots[typ] = (off, off + length)
        elif not typ & 1:
            raise DecodeError(f"unknown even (required) record type {typ} at offset {at}")
        off += length
    return slots


def _fixed(slot: _Slot, size: int, what: str) -> int:
    """Start of a required record of exactly ``size`` bytes; DecodeError otherwise."""
    if slot is None:
        raise DecodeError(f"missing required record {what}")
    start, stop = slot
    if stop - start != size:
        raise DecodeError(f"record {what} at offset {start} has length {stop - start}, expected {size}")
    return start


def _exact_bigsize(buf: bytes, slot: _Slot, what: str) -> int:
    """Value of a required record holding one BigSize that fills it exactly."""
    if slot is None:
        raise DecodeError(f"missing required record {what}")
    start, stop = slot
    if start >= stop:
        raise DecodeError(f"record {what} at offset {start} is empty, expected a BigSize")
    n = buf[start]
    if n < 0xFD:
        after = start + 1
    else:
        n, after = _bigsize_slow(buf, start, stop)
    if after != stop:
        raise DecodeError(f"record {what} at offset {start} has {stop - after} bytes after its BigSize")
    return n


def _flag(slot: _Slot, what: str) -> bool:
    """True if the zero-length flag record is present; DecodeError if it has content."""
    if slot is None:
        return False
    start, stop = slot
    if start != stop:
        raise DecodeError(f"record {what} at offset {start} has length {stop - start}, expected 0")
    return True


def _decode_hop(buf: bytes, off: int, end: int) -> Hop:
    """Decode the hop stream ``buf[off:end]``.

    Tries the exact layout every encoder writes first (fixed 45-byte head, amount, then
    flags), which skips the generic scanner; anything else, including every malformed
    hop, goes through the generic path, which also produces the error messages.
    """
    if end - off >= _HOP_MIN:
        tl0, cid, tl1, pk = _HOP_HEAD.unpack_from(buf, off)
        at = off + _HOP_HEAD.size
        if tl0 == _HOP_TL[0] and tl1 == _HOP_TL[1] and buf[at] == 2:
            start = at + 2
            stop = start + buf[at + 1]
            if start < stop <= end:
                flags = _HOP_FLAGS.get(buf[stop:end])
                if flags is not None:
                    amt = buf[start]
                    if amt < 0xFD:
                        after = start + 1
                    else:
                        try:
                            amt, after = _bigsize_slow(buf, start, stop)
                        except DecodeError:
                            after = -1
                    if after == stop:
                        return Hop(cid, pk, amt, flags[0], flags[1])
    return _decode_hop_generic(buf, off, end)


def _decode_hop_generic(buf: bytes, off: int, end: int) -> Hop:
    s = _scan(buf, off, end, 5)
    cid = _fixed(s[0], 8, "0 (channel_id)")
    pk = _fixed(s[1], PUBKEY_LEN, "1 (pubkey)")
    return Hop(
        _U64.unpack_from(buf, cid)[0],
        buf[pk : pk + PUBKEY_LEN],
        _exact_bigsize(buf, s[2], "2 (amount_to_forward_msat)"),
        _flag(s[3], "3 (has_blinding_point)"),
        _flag(s[4], "4 (has_custom_records)"),
    )


def _decode_hops(buf: bytes, off: int, end: int) -> tuple[Hop, ...]:
    if off >= end:
        raise DecodeError(f"record 2 (hops) at offset {off} is empty, expected a count")
    count = buf[off]
    if count < 0xFD:
        off += 1
    else:
        count, off = _bigsize_slow(buf, off, end)
    # Every hop takes at least its one length byte, so a count beyond the bytes left is
    # corrupt; rejecting it up front also bounds the loop below by the input size.
    if count > end - off:
        raise DecodeError(f"hop count {count} exceeds the {end - off} bytes left")
    hops = []
    for i in range(count):
        at = off
        if off >= end:
            raise DecodeError(f"hop {i} at offset {off} is truncated: no length")
        n = buf[off]
        if n < 0xFD:
            off += 1
        else:
            try:
                n, off = _bigsize_slow(buf, off, end)
            except DecodeError as e:
                _reraise(f"hop {i}", e)
        if n > end - off:
            raise DecodeError(
                f"hop {i} at offset {at}: length {n} runs past the end ({end - off} bytes left)"
            )
        try:
            hops.append(_decode_hop(buf, off, off + n))
        except DecodeError as e:
            _reraise(f"hop {i}", e)
        off += n
    if off != end:
        raise DecodeError(f"{end - off} trailing bytes after the last hop, at offset {off}")
    return tuple(hops)


def _decode_route(buf: bytes, off: int, end: int) -> Route:
    s = _scan(buf, off, end, 3)
    pk = _fixed(s[0], PUBKEY_LEN, "0 (source_pubkey)")
    total = _exact_bigsize(buf, s[1], "1 (total_amount_msat)")
    hops_slot = s[2]
    if hops_slot is None:
        raise DecodeError("missing required record 2 (hops)")
    return Route(buf[pk : pk + PUBKEY_LEN], total, _decode_hops(buf, *hops_slot))


def _decode_failure(buf: bytes, off: int, end: int) -> PaymentFailure:
    if off == end:
        # An empty nested stream is how lnd writes "failed, source unknown".
        return PaymentFailure()
    s = _scan(buf, off, end, 2)
    idx_slot = s[0]
    idx = None if idx_slot is None else buf[_fixed(idx_slot, 1, "0 (source_index)")]
    msg_slot = s[1]
    msg = None
    if msg_slot is not None:
        start, stop = msg_slot
        if stop - start < 2:
            raise DecodeError(
                f"record 1 (message) at offset {start} has length {stop - start}, "
                "expected at least 2 (a u16 failure code)"
            )
        msg = buf[start:stop]
    try:
        return PaymentFailure(idx, msg)
    except (TypeError, ValueError) as e:
        raise _caused(DecodeError(str(e)), e) from e


def _decode_value(value: bytes) -> tuple[int, int, Route, PaymentFailure | None]:
    """Parse the value stream into (time_fwd_ns, time_reply_ns, route, failure)."""
    s = _scan(value, 0, len(value), 4)
    fwd = _fixed(s[0], 8, "0 (time_fwd_ns)")
    reply = _fixed(s[1], 8, "1 (time_reply_ns)")
    route_slot = s[2]
    if route_slot is None:
        raise DecodeError("missing required record 2 (route)")
    try:
        route = _decode_route(value, *route_slot)
    except DecodeError as e:
        _reraise("record 2 (route)", e)
    failure = None
    fail_slot = s[3]
    if fail_slot is not None:
        try:
            failure = _decode_failure(value, *fail_slot)
        except DecodeError as e:
            _reraise("record 3 (failure)", e)
    return (
        _U64.unpack_from(value, fwd)[0],
        _U64.unpack_from(value, reply)[0],
        route,
        failure,
    )


def _decode(key: bytes, value: bytes) -> PaymentResult:
    if len(key) != KEY_LEN:
        raise DecodeError(f"key: length {len(key)}, expected {KEY_LEN}")
    try:
        time_fwd, time_reply, route, failure = _decode_value(value)
    except DecodeError as e:
        _reraise("value", e)
    key_reply, result_id = _KEY_PREFIX.unpack_from(key)
    # The key repeats two fields of the value; disagreement means the row is corrupt and
    # neither copy can be trusted.
    if key_reply != time_reply:
        raise DecodeError(f"key/value mismatch: key time_reply_ns {key_reply}, value {time_reply}")
    if key[16:] != route.source_pubkey:
        raise DecodeError(
            f"key/value mismatch: key source pubkey {key[16:].hex()}, route {route.source_pubkey.hex()}"
        )
    return PaymentResult(result_id, time_fwd, time_reply, route, failure)


def decode_result(key: object, value: object) -> PaymentResult:
    """Decode lnd's ``(key, value)`` pair into a :class:`~mcstore.model.PaymentResult`.

    The id comes from the key; the key's time_reply_ns and source pubkey must match the
    value's. Raises DecodeError, and only DecodeError, for any malformed bytes (bad length,
    truncation, trailing bytes, non-canonical BigSize, types out of order, unknown even
    type, missing record, or a value the model rejects). Raises TypeError if ``key`` or
    ``value`` is not bytes, bytearray or memoryview (a programming error, not bad bytes).
    """
    if type(key) is not bytes:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise TypeError(f"key must be bytes-like, got {type(key).__name__}")
        key = bytes(key)
    if type(value) is not bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes-like, got {type(value).__name__}")
        value = bytes(value)
    try:
        return _decode(key, value)
    except (TypeError, ValueError) as e:
        # Structural checks make every decoded field fit the model, so this only catches
        # model rules the format cannot express; kept so the contract holds regardless.
        raise _caused(DecodeError(f"rejected by the model: {e}"), e) from e
    except (IndexError, struct.error) as e:  # pragma: no cover - a bounds-check bug
        # Should be unreachable (the fuzz tests assert it is); a corrupt row must still
        # surface as DecodeError rather than crash the store.
        raise _caused(DecodeError(f"malformed input ({type(e).__name__}: {e})"), e) from e
