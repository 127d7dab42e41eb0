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

import gc
import struct
from typing import Final, NoReturn

from librt.strings import BytesWriter

# Absolute: the compiled copy of this module lives in mcstore._native (see setup.py).
from mcstore.errors import DecodeError

from ._bytes import U16_MAX, U32_MAX, U64_MAX, put_u32, put_u64, read_uint
from .model import KEY_LEN, PUBKEY_LEN, Hop, PaymentFailure, PaymentResult, Route

__all__ = ["decode_bigsize", "decode_result", "decode_rows", "encode_bigsize", "encode_result"]

# Every table and limit is Final, so that the compiled core reads it as a constant. Integers
# are written into one librt.strings.BytesWriter and read through mcstore._bytes.

# A hop stream: type 0, len 8, channel id; type 1, len 33, pubkey (45 bytes); then type 2,
# a one-byte length and the amount; then the optional empty flag records 3 and 4.
_HOP_HEAD_LEN: Final = 45
# The smallest canonical hop: that head plus type 2, length 1, a one-byte amount.
_HOP_MIN: Final = _HOP_HEAD_LEN + 3


# -- BigSize ----------------------------------------------------------------------------


def _bigsize_len(n: int) -> int:
    """How many bytes the canonical BigSize of the u64 ``n`` takes: 1, 3, 5 or 9."""
    if n < 0xFD:
        return 1
    if n <= U16_MAX:
        return 3
    if n <= U32_MAX:
        return 5
    return 9


def _put_bigsize(w: BytesWriter, n: int) -> None:
    """Write the canonical BigSize of a known-valid u64 (no checks: callers hold validated
    model values)."""
    if n < 0xFD:
        w.append(n)
    elif n <= U16_MAX:
        w.append(0xFD)
        w.append(n >> 8)
        w.append(n & 0xFF)
    elif n <= U32_MAX:
        w.append(0xFE)
        put_u32(w, n)
    else:
        w.append(0xFF)
        put_u64(w, n)


def encode_bigsize(n: object) -> bytes:
    """Encode ``n`` as a canonical BOLT 1 BigSize (1, 3, 5 or 9 bytes).

    Raises TypeError if ``n`` is not an int (bool included) and ValueError if it is not
    a u64 (``0 <= n < 2**64``).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"BigSize must be an int, got {type(n).__name__} {n!r}")
    if not 0 <= n <= U64_MAX:
        raise ValueError(f"BigSize must be a u64 (0 <= x < 2**64), got {n!r}")
    w = BytesWriter()
    _put_bigsize(w, int(n))
    return w.getvalue()


def _bigsize_slow(buf: bytes, off: int, end: int) -> tuple[int, int]:
    """Read a multi-byte BigSize whose prefix byte at ``off`` is 0xfd, 0xfe or 0xff.

    Raises DecodeError on truncation (past ``end``) or a non-canonical encoding.
    """
    prefix = buf[off]
    if prefix == 0xFD:
        if end - off < 3:
            raise DecodeError(f"truncated BigSize at offset {off}: need 3 bytes")
        n = read_uint(buf, off + 1, 2)
        if n < 0xFD:
            raise DecodeError(f"non-canonical BigSize at offset {off}: {n} in 3 bytes")
        return n, off + 3
    if prefix == 0xFE:
        if end - off < 5:
            raise DecodeError(f"truncated BigSize at offset {off}: need 5 bytes")
        n = read_uint(buf, off + 1, 4)
        if n <= U16_MAX:
            raise DecodeError(f"non-canonical BigSize at offset {off}: {n} in 5 bytes")
        return n, off + 5
    if end - off < 9:
        raise DecodeError(f"truncated BigSize at offset {off}: need 9 bytes")
    n = read_uint(buf, off + 1, 8)
    if n <= U32_MAX:
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


def _hop_len(hop: Hop) -> int:
    """The length of the hop's TLV stream: at most 45 + 2 + 9 + 4 = 60, so its own length
    prefix is one byte."""
    return (
        _HOP_HEAD_LEN + 2 + _bigsize_len(hop.amount_to_forward_msat)
        + 2 * (hop.has_blinding_point + hop.has_custom_records)
    )


def _put_hop(w: BytesWriter, hop: Hop, length: int) -> None:
    """Write the hop stream of ``length`` bytes, prefixed with its one-byte length."""
    amount = hop.amount_to_forward_msat
    w.append(length)
    w.write(b"\x00\x08")
    put_u64(w, hop.channel_id)
    w.write(b"\x01\x21")
    w.write(hop.pubkey)
    w.append(2)
    w.append(_bigsize_len(amount))
    _put_bigsize(w, amount)
    if hop.has_blinding_point:
        w.write(b"\x03\x00")
    if hop.has_custom_records:
        w.write(b"\x04\x00")


def _failure_len(failure: PaymentFailure) -> int:
    """The length of the failure's TLV stream; 0 if the source is unknown."""
    if failure.source_index is None:
        # The model forbids a message without a source index.
        return 0
    msg = failure.message
    if msg is None:
        return 3
    return 4 + _bigsize_len(len(msg)) + len(msg)


def encode_result(result: object) -> tuple[bytes, bytes]:
    """Encode ``result`` as lnd's ``(key, value)`` pair.

    Never raises for a valid :class:`~mcstore.model.PaymentResult` (the model has already
    checked every limit the format imposes). The value is computed once per result and cached
    on it (results are immutable, so the cache cannot go stale).

    Args:
        result: The :class:`~mcstore.model.PaymentResult` to encode.

    Returns:
        lnd's 49-byte key and its TLV value.

    Raises:
        TypeError: ``result`` is not a :class:`~mcstore.model.PaymentResult`.
    """
    if not isinstance(result, PaymentResult):
        raise TypeError(f"encode_result() expects a PaymentResult, got {type(result).__name__}")
    cached = result._value
    if cached is not None:
        return result._key, cached
    route = result.route
    hops = route.hops
    # Every length is known before its record is written: sizes first, then one pass.
    hops_len = _bigsize_len(len(hops))
    for hop in hops:
        hops_len += 1 + _hop_len(hop)
    total = route.total_amount_msat
    route_len = 35 + 2 + _bigsize_len(total) + 1 + _bigsize_len(hops_len) + hops_len
    w = BytesWriter()
    # Records 0 (time_fwd_ns) and 1 (time_reply_ns).
    w.write(b"\x00\x08")
    put_u64(w, result.time_fwd_ns)
    w.write(b"\x01\x08")
    put_u64(w, result.time_reply_ns)
    # Record 2: the route stream {0: source pubkey, 1: total, 2: count and hops}.
    w.append(2)
    _put_bigsize(w, route_len)
    w.write(b"\x00\x21")
    w.write(route.source_pubkey)
    w.append(1)
    w.append(_bigsize_len(total))
    _put_bigsize(w, total)
    w.append(2)
    _put_bigsize(w, hops_len)
    _put_bigsize(w, len(hops))
    for hop in hops:
        _put_hop(w, hop, _hop_len(hop))
    # Record 3: the failure stream {0: source index, 1: message}, if the attempt failed.
    failure = result.failure
    if failure is not None:
        w.append(3)
        length = _failure_len(failure)
        _put_bigsize(w, length)
        idx = failure.source_index
        if idx is not None:
            w.write(b"\x00\x01")
            w.append(idx)
            msg = failure.message
            if msg is not None:
                w.append(1)
                _put_bigsize(w, len(msg))
                w.write(msg)
    value = w.getvalue()
    result._cache_value(value)
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

    Tries the exact layout every encoder writes first (:func:`_canonical_hop`), which skips
    the generic scanner; anything else, including every malformed hop, goes through the
    generic path, which also produces the error messages.
    """
    hop = _canonical_hop(buf, off, end)
    if hop is None:
        return _decode_hop_generic(buf, off, end)
    return hop


def _canonical_hop(buf: bytes, off: int, end: int) -> Hop | None:
    """The hop ``buf[off:end]`` if it has the exact layout encode_result writes; else None.

    That layout: the fixed 45-byte head (records 0 and 1), record 2 with a one-byte length
    and a canonical BigSize filling it, then nothing, ``03 00``, ``04 00`` or ``03 00 04 00``.
    Never raises for bad bytes: None hands them to the generic decoder.
    """
    if end - off < _HOP_MIN or end > len(buf):
        return None
    at = off + _HOP_HEAD_LEN
    if buf[off] != 0 or buf[off + 1] != 8 or buf[off + 10] != 1 or buf[off + 11] != PUBKEY_LEN or buf[at] != 2:
        return None
    start = at + 2
    stop = start + buf[at + 1]
    if not start < stop <= end:
        return None
    amt = _filling_bigsize(buf, start, stop)
    if amt < 0:
        return None
    tail = end - stop
    if tail == 0:
        blinding = custom = False
    elif tail == 2 and buf[stop + 1] == 0 and (buf[stop] == 3 or buf[stop] == 4):
        blinding = buf[stop] == 3
        custom = not blinding
    elif tail == 4 and buf[stop] == 3 and buf[stop + 1] == 0 and buf[stop + 2] == 4 and buf[stop + 3] == 0:
        blinding = custom = True
    else:
        return None
    return Hop(read_uint(buf, off + 2, 8), buf[off + 12 : at], amt, blinding, custom)


def _decode_hop_generic(buf: bytes, off: int, end: int) -> Hop:
    s = _scan(buf, off, end, 5)
    cid = _fixed(s[0], 8, "0 (channel_id)")
    pk = _fixed(s[1], PUBKEY_LEN, "1 (pubkey)")
    return Hop(
        read_uint(buf, cid, 8),
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
    return read_uint(value, fwd, 8), read_uint(value, reply, 8), route, failure


def _filling_bigsize(buf: bytes, start: int, stop: int) -> int:
    """The canonical BigSize that fills ``buf[start:stop]`` exactly (a record's whole value); -1
    for anything else, which the generic decoder then decides. Call with ``start < len(buf)``."""
    n = buf[start]
    if n < 0xFD:
        return n if stop == start + 1 else -1
    try:
        n, after = _bigsize_slow(buf, start, stop)
    except DecodeError:
        return -1
    return n if after == stop else -1


def _length(buf: bytes, at: int, end: int) -> tuple[int, int]:
    """A canonical one- or three-byte BigSize at ``at`` (before ``end``): ``(value, after)``.

    ``(-1, -1)`` for anything else (no bytes, a five- or nine-byte form, a non-canonical
    one): the layout is then not the canonical one, and the generic decoder decides.
    """
    if at >= end:
        return -1, -1
    n = buf[at]
    if n < 0xFD:
        return n, at + 1
    if n != 0xFD or end - at < 3:
        return -1, -1
    n = buf[at + 1] << 8 | buf[at + 2]
    if n < 0xFD:
        return -1, -1
    return n, at + 3


def _canonical_result(key: bytes, value: bytes) -> PaymentResult | None:
    """The result, if ``key`` and ``value`` have the exact layout encode_result writes; else None.

    The fast path of :func:`decode_result`: it checks every byte it relies on and returns
    None, never raises, for anything else (unknown odd records, non-canonical or longer
    BigSize forms than the encoder writes, every malformed input), which the generic decoder
    then decodes or rejects with its message. So whatever it returns, the generic decoder
    would return too (``tests/test_codec.py`` checks that they agree on mutated inputs).
    """
    end = len(value)
    # The shortest canonical value: records 0 and 1 (20 bytes), then record 2's type and
    # length and the shortest route (41 bytes: pubkey, a one-byte total, no hops).
    if len(key) != KEY_LEN or end < 20 + 2 + 41:
        return None
    # Records 0 and 1, then the type of record 2 (the route) and its length.
    if value[0] != 0 or value[1] != 8 or value[10] != 1 or value[11] != 8 or value[20] != 2:
        return None
    route_len, at = _length(value, 21, end)
    route_end = at + route_len
    if at < 0 or route_end > end:
        return None
    # The route: 0 (pubkey), 1 (total: a BigSize filling a one-byte length), 2 (hops).
    if route_end - at < 41 or value[at] != 0 or value[at + 1] != PUBKEY_LEN or value[at + 35] != 1:
        return None
    source = value[at + 2 : at + 35]
    if key[16:] != source:
        return None
    start = at + 37
    stop = start + value[at + 36]
    if stop >= route_end:
        return None
    total = _filling_bigsize(value, start, stop)
    if total < 0:
        return None
    if value[stop] != 2:
        return None
    hops_len, at = _length(value, stop + 1, route_end)
    if at < 0 or at + hops_len != route_end:
        return None
    count, at = _length(value, at, route_end)
    if at < 0 or count > route_end - at:
        return None
    hops: list[Hop] = []
    for _ in range(count):
        if at >= route_end:
            return None
        hop_end = at + 1 + value[at]
        if hop_end > route_end:
            return None
        hop = _canonical_hop(value, at + 1, hop_end)
        if hop is None:
            return None
        hops.append(hop)
        at = hop_end
    if at != route_end:
        return None
    # Record 3 (the failure), if any, must end the value.
    failure = None
    if route_end != end:
        if value[route_end] != 3:
            return None
        fail_len, at = _length(value, route_end + 1, end)
        if at < 0 or at + fail_len != end:
            return None
        if fail_len == 0:
            failure = PaymentFailure()
        elif fail_len < 3 or value[at] != 0 or value[at + 1] != 1:
            return None
        elif fail_len == 3:
            failure = PaymentFailure(value[at + 2])
        else:
            if value[at + 3] != 1:
                return None
            msg_len, msg_at = _length(value, at + 4, end)
            if msg_at < 0 or msg_at + msg_len != end or msg_len < 2:
                return None
            failure = PaymentFailure(value[at + 2], value[msg_at:end])
    reply = read_uint(value, 12, 8)
    if read_uint(key, 0, 8) != reply:
        return None
    route = Route(source, total, tuple(hops))
    return PaymentResult(read_uint(key, 8, 8), read_uint(value, 2, 8), reply, route, failure)


def _decode(key: bytes, value: bytes) -> PaymentResult:
    result = _canonical_result(key, value)
    if result is None:
        result = _decode_generic(key, value)
    return result


def _decode_generic(key: bytes, value: bytes) -> PaymentResult:
    """Decode any valid layout (records in any valid form, unknown odd records skipped)."""
    if len(key) != KEY_LEN:
        raise DecodeError(f"key: length {len(key)}, expected {KEY_LEN}")
    try:
        time_fwd, time_reply, route, failure = _decode_value(value)
    except DecodeError as e:
        _reraise("value", e)
    key_reply, result_id = read_uint(key, 0, 8), read_uint(key, 8, 8)
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
    value's.

    Args:
        key: lnd's 49-byte key (bytes, bytearray or memoryview).
        value: lnd's TLV value (bytes, bytearray or memoryview).

    Raises:
        DecodeError: Malformed bytes, and only that, whatever is wrong with them (bad length,
            truncation, trailing bytes, non-canonical BigSize, types out of order, unknown even
            type, missing record, or a value the model rejects).
        TypeError: ``key`` or ``value`` is not bytes, bytearray or memoryview (a programming
            error, not bad bytes).
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


def decode_rows(
    rows: list[tuple[object, object]], into: list[PaymentResult], pause_collector: bool
) -> list[tuple[object, DecodeError]]:
    """Decode stored ``(key, value)`` rows in order, appending each result to ``into``.

    Returns ``(key, error)`` for each row that raised :class:`~mcstore.errors.DecodeError`,
    in order; any other exception propagates (the results before it are in ``into``).

    With ``pause_collector``, CPython's cyclic garbage collector is off from the first row to
    the last and is then restored as it was, also when an exception propagates; a collector
    that was off stays off; rows that are not all exact ``bytes`` are decoded without it.
    Decoded results hold no reference cycle, and without the pause
    the collector's older generations walk a growing list of results again and again.
    The collector is process-wide, so only the compiled core may ask for the pause
    (``backends.base.decode_stored_rows`` does so only when :data:`mcstore.COMPILED`): this
    function, compiled, runs compiled code and C from the disable to the restore and never
    gives the GIL away, so no other thread can see the collector off or switch it meanwhile.
    Interpreted, it would give the GIL away every switch interval.
    """
    failed: list[tuple[object, DecodeError]] = []
    paused = pause_collector and gc.isenabled()
    if paused:
        # Anything but exact bytes is converted by decode_result, which may run interpreted
        # code (a __bytes__, a __class__ property) and so give the GIL away: no pause then.
        for key, value in rows:
            if type(key) is not bytes or type(value) is not bytes:
                paused = False
                break
    if paused:
        gc.disable()
    try:
        for key, value in rows:
            try:
                into.append(decode_result(key, value))
            except DecodeError as exc:
                failed.append((key, exc))
    finally:
        if paused:
            gc.enable()
    return failed
