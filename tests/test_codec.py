"""Tests of mcstore.codec: lnd's migration32 TLV format, byte for byte."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import hops, payment_results

from mcstore import codec
from mcstore.codec import decode_bigsize, decode_result, encode_bigsize, encode_result
from mcstore.errors import DecodeError
from mcstore.model import Hop, PaymentFailure, PaymentResult, Route

# -- fixtures built by hand from the format table ------------------------------------------

PK_SRC = b"\x02" + b"\x11" * 32
PK_HOP0 = b"\x03" + b"\x22" * 32
PK_HOP1 = b"\x02" + b"\x33" * 32

ROUTE = Route(
    source_pubkey=PK_SRC,
    total_amount_msat=100_000,
    hops=[
        Hop(0x0000_0100_0002_0003, PK_HOP0, 99_000, has_blinding_point=True),
        Hop(0x0000_0200_0003_0001, PK_HOP1, 300),
    ],
)
SUCCESS = PaymentResult(
    id=42,
    time_fwd_ns=1_700_000_000_000_000_000,
    time_reply_ns=1_700_000_000_250_000_000,
    route=ROUTE,
)
FAILURE = PaymentResult(
    id=43,
    time_fwd_ns=1_700_000_001_000_000_000,
    time_reply_ns=1_700_000_001_750_000_000,
    route=ROUTE,
    failure=PaymentFailure(source_index=1, message=b"\x10\x07\x00\x02\xab\xcd"),
)

ROUTE_BYTES = b"".join(
    [
        # route type 0 (source pubkey), length 33
        bytes.fromhex("00 21"),
        PK_SRC,
        # route type 1 (total amount msat), length 5: BigSize 0xfe + u32 100000
        bytes.fromhex("01 05 fe 000186a0"),
        # route type 2 (hops), length 107
        bytes.fromhex("02 6b"),
        # hop count: 2
        bytes.fromhex("02"),
        # hop 0: length 54
        bytes.fromhex("36"),
        #   type 0 (channel id), length 8, u64 BE
        bytes.fromhex("00 08 0000010000020003"),
        #   type 1 (pubkey), length 33
        bytes.fromhex("01 21"),
        PK_HOP0,
        #   type 2 (amount to forward), length 5: BigSize 0xfe + u32 99000
        bytes.fromhex("02 05 fe 000182b8"),
        #   type 3 (has blinding point): empty record
        bytes.fromhex("03 00"),
        # hop 1: length 50
        bytes.fromhex("32"),
        #   type 0 (channel id), length 8
        bytes.fromhex("00 08 0000020000030001"),
        #   type 1 (pubkey), length 33
        bytes.fromhex("01 21"),
        PK_HOP1,
        #   type 2 (amount to forward), length 3: BigSize 0xfd + u16 300
        bytes.fromhex("02 03 fd 012c"),
    ]
)

SUCCESS_KEY = b"".join(
    [
        bytes.fromhex("17979cfe4510b280"),  # time_reply_ns u64 BE
        bytes.fromhex("000000000000002a"),  # id 42 u64 BE
        PK_SRC,  # source pubkey
    ]
)
SUCCESS_VALUE = b"".join(
    [
        bytes.fromhex("00 08 17979cfe362a0000"),  # type 0: time_fwd_ns
        bytes.fromhex("01 08 17979cfe4510b280"),  # type 1: time_reply_ns
        bytes.fromhex("02 97"),  # type 2: route, length 151
        ROUTE_BYTES,
    ]
)
FAILURE_KEY = b"".join(
    [
        bytes.fromhex("17979cfe9e78e180"),  # time_reply_ns
        bytes.fromhex("000000000000002b"),  # id 43
        PK_SRC,
    ]
)
FAILURE_VALUE = b"".join(
    [
        bytes.fromhex("00 08 17979cfe71c4ca00"),  # type 0: time_fwd_ns
        bytes.fromhex("01 08 17979cfe9e78e180"),  # type 1: time_reply_ns
        bytes.fromhex("02 97"),  # type 2: route, length 151
        ROUTE_BYTES,
        bytes.fromhex("03 0b"),  # type 3: failure, length 11
        bytes.fromhex("00 01 01"),  #   type 0: source index 1
        bytes.fromhex("01 06 1007 0002abcd"),  #   type 1: message, code 0x1007 + payload
    ]
)


def test_hand_built_lengths_are_right() -> None:
    # Guards the hand arithmetic above, independently of the codec.
    assert len(ROUTE_BYTES) == 0x97
    assert ROUTE_BYTES.index(b"\x02\x6b") + 2 + 0x6B == len(ROUTE_BYTES)


@pytest.mark.parametrize(
    ("result", "key", "value"),
    [(SUCCESS, SUCCESS_KEY, SUCCESS_VALUE), (FAILURE, FAILURE_KEY, FAILURE_VALUE)],
    ids=["success", "failure"],
)
def test_golden_bytes(result: PaymentResult, key: bytes, value: bytes) -> None:
    assert encode_result(result) == (key, value)
    assert decode_result(key, value) == result


def test_failure_shapes_encoding() -> None:
    base = SUCCESS_VALUE
    unknown = PaymentResult(42, SUCCESS.time_fwd_ns, SUCCESS.time_reply_ns, ROUTE, PaymentFailure())
    # An empty nested stream means "failed, source unknown".
    assert encode_result(unknown)[1] == base + b"\x03\x00"
    index_only = PaymentResult(42, SUCCESS.time_fwd_ns, SUCCESS.time_reply_ns, ROUTE, PaymentFailure(7))
    assert encode_result(index_only)[1] == base + bytes.fromhex("03 03 00 01 07")
    for result in (unknown, index_only):
        assert decode_result(*encode_result(result)) == result


def test_long_message_gets_a_three_byte_length() -> None:
    message = b"\x40\x0f" + b"\x00" * 300
    result = PaymentResult(1, 2, 3, Route(PK_SRC, 0, []), PaymentFailure(255, message))
    value = encode_result(result)[1]
    # failure record: 302 message bytes + 3 (index) + 1 (type) + 3 (BigSize 302) = 309
    assert bytes.fromhex("03 fd 0135 00 01 ff 01 fd 012e") + message == value[value.index(b"\x03\xfd") :]
    assert decode_result(*encode_result(result)) == result


def test_empty_route_encoding() -> None:
    result = PaymentResult(1, 2, 3, Route(PK_SRC, 0, []))
    route = bytes.fromhex("00 21") + PK_SRC + bytes.fromhex("01 01 00 02 01 00")
    assert encode_result(result)[1] == (
        bytes.fromhex("00 08 0000000000000002 01 08 0000000000000003 02 29") + route
    )
    assert decode_result(*encode_result(result)) == result


def test_decode_accepts_bytes_like() -> None:
    for convert in (bytearray, memoryview):
        result = decode_result(convert(FAILURE_KEY), convert(FAILURE_VALUE))
        assert result == FAILURE
        assert type(result.route.source_pubkey) is bytes
        assert type(result.route.hops[0].pubkey) is bytes
        assert result.failure is not None
        assert type(result.failure.message) is bytes


def test_decode_rejects_non_bytes_as_type_error() -> None:
    with pytest.raises(TypeError):
        decode_result(SUCCESS_KEY.hex(), SUCCESS_VALUE)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decode_result(SUCCESS_KEY, None)  # type: ignore[arg-type]


# -- BigSize --------------------------------------------------------------------------------

BIGSIZE_VECTORS = [
    (0, "00"),
    (252, "fc"),
    (253, "fd00fd"),
    (65535, "fdffff"),
    (65536, "fe00010000"),
    (4294967295, "feffffffff"),
    (4294967296, "ff0000000100000000"),
    (2**64 - 1, "ffffffffffffffffff"),
]


@pytest.mark.parametrize(("value", "encoded"), BIGSIZE_VECTORS)
def test_bigsize_vectors(value: int, encoded: str) -> None:
    raw = bytes.fromhex(encoded)
    assert encode_bigsize(value) == raw
    assert decode_bigsize(raw, 0) == (value, len(raw))
    # At an offset, followed by other bytes, in any bytes-like buffer.
    assert decode_bigsize(b"\xaa\xbb" + raw + b"\xcc", 2) == (value, 2 + len(raw))
    assert decode_bigsize(memoryview(b"\xaa" + raw), 1) == (value, 1 + len(raw))
    assert decode_bigsize(bytearray(raw), 0) == (value, len(raw))


@pytest.mark.parametrize(
    "encoded",
    ["fd00fc", "fd0000", "fe0000ffff", "fe00000000", "ff00000000ffffffff", "ff0000000000000000"],
)
def test_bigsize_non_canonical(encoded: str) -> None:
    with pytest.raises(DecodeError, match="non-canonical"):
        decode_bigsize(bytes.fromhex(encoded), 0)


@pytest.mark.parametrize("encoded", ["", "fd", "fd00", "fe", "feffff", "ff", "ffffffffffffffff"])
def test_bigsize_truncated(encoded: str) -> None:
    with pytest.raises(DecodeError, match="truncated"):
        decode_bigsize(bytes.fromhex(encoded), 0)


def test_bigsize_offset_past_end() -> None:
    with pytest.raises(DecodeError):
        decode_bigsize(b"\x00", 1)
    with pytest.raises(ValueError):
        decode_bigsize(b"\x00", -1)


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (2**64, ValueError), (True, TypeError), (1.0, TypeError), ("1", TypeError)],
)
def test_encode_bigsize_rejects(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_bigsize(value)


@given(st.integers(0, 2**64 - 1))
def test_bigsize_round_trip(value: int) -> None:
    raw = encode_bigsize(value)
    assert decode_bigsize(raw, 0) == (value, len(raw))
    assert len(raw) == (1 if value < 0xFD else 3 if value < 2**16 else 5 if value < 2**32 else 9)


# -- hand-built streams for the decoding rules -------------------------------------------


def rec(typ: int, payload: bytes) -> bytes:
    """One TLV record with 1-byte type and length (enough for these tests)."""
    assert typ < 0xFD
    assert len(payload) < 0xFD
    return bytes((typ, len(payload))) + payload


HOP0 = [
    rec(0, bytes.fromhex("0000010000020003")),
    rec(1, PK_HOP0),
    rec(2, bytes.fromhex("fe000182b8")),
    rec(3, b""),
]
HOP1 = [
    rec(0, bytes.fromhex("0000020000030001")),
    rec(1, PK_HOP1),
    rec(2, bytes.fromhex("fd012c")),
]
FAILURE_RECORDS = [rec(0, b"\x01"), rec(1, bytes.fromhex("10070002abcd"))]


def hops_payload(*hops: list[bytes], count: int | None = None) -> bytes:
    bodies = [b"".join(h) for h in hops]
    n = len(bodies) if count is None else count
    return bytes((n,)) + b"".join(bytes((len(b),)) + b for b in bodies)


def route_records(hops: tuple[list[bytes], ...] = (HOP0, HOP1)) -> list[bytes]:
    return [rec(0, PK_SRC), rec(1, bytes.fromhex("fe000186a0")), rec(2, hops_payload(*hops))]


def top_records(route: list[bytes] | None = None, failure: list[bytes] | None = None) -> list[bytes]:
    records = [
        rec(0, bytes.fromhex("17979cfe362a0000")),
        rec(1, bytes.fromhex("17979cfe4510b280")),
        rec(2, b"".join(route_records() if route is None else route)),
    ]
    if failure is not None:
        records.append(rec(3, b"".join(failure)))
    return records


def value_of(records: list[bytes]) -> bytes:
    return b"".join(records)


def with_failure(failure: PaymentFailure) -> PaymentResult:
    return PaymentResult(SUCCESS.id, SUCCESS.time_fwd_ns, SUCCESS.time_reply_ns, SUCCESS.route, failure)


def test_builders_match_golden() -> None:
    assert value_of(top_records()) == SUCCESS_VALUE
    assert decode_result(SUCCESS_KEY, value_of(top_records(failure=FAILURE_RECORDS))) == (
        with_failure(FAILURE.failure)  # type: ignore[arg-type]
    )


def reject(value: bytes, match: str, key: bytes = SUCCESS_KEY) -> DecodeError:
    with pytest.raises(DecodeError, match=match) as info:
        decode_result(key, value)
    return info.value


# unknown odd types are skipped ------------------------------------------------------------


def test_unknown_odd_top_level_record_skipped() -> None:
    value = value_of(top_records(failure=FAILURE_RECORDS) + [rec(5, b"\xab\xcd")])
    assert decode_result(SUCCESS_KEY, value) == with_failure(FAILURE.failure)  # type: ignore[arg-type]
    # A large odd type, written with a 3-byte BigSize, is skipped too.
    value = SUCCESS_VALUE + bytes.fromhex("fd1001 02 abcd")
    assert decode_result(SUCCESS_KEY, value) == SUCCESS


def test_unknown_odd_hop_record_skipped() -> None:
    hop0 = [*HOP0, rec(5, b"\xff")]
    value = value_of(top_records(route=route_records(hops=(hop0, HOP1))))
    assert decode_result(SUCCESS_KEY, value) == SUCCESS


def test_unknown_odd_route_and_failure_records_skipped() -> None:
    route = [*route_records(), rec(3, b"")]
    assert decode_result(SUCCESS_KEY, value_of(top_records(route=route))) == SUCCESS
    failure = [*FAILURE_RECORDS, rec(7, b"xyz")]
    assert decode_result(SUCCESS_KEY, value_of(top_records(failure=failure))) == with_failure(
        FAILURE.failure  # type: ignore[arg-type]
    )


# unknown even types are rejected ------------------------------------------------------------


def test_unknown_even_types_rejected() -> None:
    reject(value_of([*top_records(), rec(4, b"")]), "unknown even .* type 4")
    reject(SUCCESS_VALUE + bytes.fromhex("fd1000 00"), "unknown even .* type 4096")
    hop1 = [*HOP1, rec(6, b"\x00")]
    reject(value_of(top_records(route=route_records(hops=(HOP0, hop1)))), "hop 1: unknown even")
    reject(value_of(top_records(route=[*route_records(), rec(4, b"")])), "route.*unknown even")
    reject(value_of(top_records(failure=[*FAILURE_RECORDS, rec(2, b"")])), "failure.*unknown even")


# order ------------------------------------------------------------------------------------


def test_duplicate_and_decreasing_types_rejected() -> None:
    records = top_records()
    reject(value_of([records[0], records[0], *records[1:]]), "strictly increasing")
    reject(value_of([records[1], records[0], records[2]]), "strictly increasing")
    reject(value_of([*records, rec(5, b""), rec(3, b"")]), "strictly increasing")
    hop0 = [HOP0[1], HOP0[0], *HOP0[2:]]
    reject(value_of(top_records(route=route_records(hops=(hop0, HOP1)))), "hop 0: .*increasing")
    hop0 = [*HOP0, rec(3, b"")]
    reject(value_of(top_records(route=route_records(hops=(hop0, HOP1)))), "increasing")
    failure = [FAILURE_RECORDS[1], FAILURE_RECORDS[0]]
    reject(value_of(top_records(failure=failure)), "failure.*increasing")


# key ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 16, 48, 50])
def test_key_length_rejected(length: int) -> None:
    reject(SUCCESS_VALUE, "key: length", key=(SUCCESS_KEY * 2)[:length])


def test_key_mismatch_rejected() -> None:
    later = (SUCCESS.time_reply_ns + 1).to_bytes(8, "big") + SUCCESS_KEY[8:]
    reject(SUCCESS_VALUE, "mismatch.*time_reply", key=later)
    other_pubkey = SUCCESS_KEY[:16] + PK_HOP0
    reject(SUCCESS_VALUE, "mismatch.*pubkey", key=other_pubkey)


def test_id_comes_from_key() -> None:
    key = SUCCESS_KEY[:8] + (2**64 - 1).to_bytes(8, "big") + SUCCESS_KEY[16:]
    assert decode_result(key, SUCCESS_VALUE).id == 2**64 - 1


# lengths, truncation, missing records -----------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2, 9, 10, 19, 20, 21, 40, len(SUCCESS_VALUE) - 1])
def test_truncated_value_rejected(cut: int) -> None:
    reject(SUCCESS_VALUE[:cut], "value: ")


def test_length_past_end_rejected() -> None:
    reject(bytes.fromhex("00 09") + SUCCESS_VALUE[2:10], "runs past the end")
    reject(bytes.fromhex("00 fc 0102"), "runs past the end")
    reject(bytes.fromhex("00 ffffffffffffffffff 01"), "runs past the end")


def test_non_canonical_bigsize_in_stream_rejected() -> None:
    reject(bytes.fromhex("00 fd0008") + SUCCESS_VALUE[2:], "non-canonical")
    reject(bytes.fromhex("fd0000 08") + SUCCESS_VALUE[2:], "non-canonical")
    route = [route_records()[0], rec(1, bytes.fromhex("fd00fc")), route_records()[2]]
    reject(value_of(top_records(route=route)), "non-canonical")


@pytest.mark.parametrize(
    ("index", "payload", "match"),
    [
        (0, bytes(7), "time_fwd_ns.*length 7, expected 8"),
        (0, bytes(9), "time_fwd_ns.*length 9, expected 8"),
        (1, b"", "time_reply_ns.*length 0, expected 8"),
    ],
)
def test_wrong_fixed_length_top_level(index: int, payload: bytes, match: str) -> None:
    records = top_records()
    records[index] = rec(index, payload)
    reject(value_of(records), match)


@pytest.mark.parametrize(
    ("index", "payload", "match"),
    [
        (0, bytes(7), "hop 0: record 0 .channel_id.*expected 8"),
        (1, PK_HOP0[:32], "hop 0: record 1 .pubkey.*expected 33"),
        (1, PK_HOP0 + b"\x00", "hop 0: record 1 .pubkey.*expected 33"),
        (2, b"", "hop 0: record 2 .amount.*empty"),
        (2, b"\x05\x00", "hop 0: record 2 .amount.*1 bytes after"),
        (2, bytes.fromhex("fe0000"), "hop 0: .*truncated"),
        (3, b"\x01", "hop 0: record 3 .has_blinding_point.*expected 0"),
    ],
)
def test_bad_hop_records(index: int, payload: bytes, match: str) -> None:
    hop0 = list(HOP0)
    hop0[index] = rec(index, payload)
    reject(value_of(top_records(route=route_records(hops=(hop0, HOP1)))), match)


def test_custom_records_flag_with_content_rejected() -> None:
    hop1 = [*HOP1, rec(4, b"\x01")]
    reject(value_of(top_records(route=route_records(hops=(HOP0, hop1)))), "hop 1: record 4")


def test_custom_records_flag_decoded() -> None:
    hop1 = [*HOP1, rec(4, b"")]
    result = decode_result(SUCCESS_KEY, value_of(top_records(route=route_records(hops=(HOP0, hop1)))))
    assert result.route.hops[1] == Hop(0x0000_0200_0003_0001, PK_HOP1, 300, has_custom_records=True)
    assert decode_result(*encode_result(result)) == result


def test_bad_route_records() -> None:
    pk, total, hops = route_records()
    reject(value_of(top_records(route=[rec(0, PK_SRC[:32]), total, hops])), "route.*expected 33")
    reject(value_of(top_records(route=[pk, rec(1, b"\x01\x02"), hops])), "route.*after its BigSize")
    reject(value_of(top_records(route=[pk, hops])), "route.*missing required record 1")
    reject(value_of(top_records(route=[total, hops])), "route.*missing required record 0")
    reject(value_of(top_records(route=[pk, total])), "route.*missing required record 2")


def test_hop_count_mismatch_rejected() -> None:
    def with_hops(payload: bytes) -> bytes:
        pk, total, _ = route_records()
        return value_of(top_records(route=[pk, total, rec(2, payload)]))

    reject(with_hops(hops_payload(HOP0, HOP1, count=3)), "hop count 3 exceeds|hop 2")
    reject(with_hops(hops_payload(HOP0, HOP1, count=1)), "trailing bytes after the last hop")
    reject(with_hops(hops_payload(HOP0, HOP1) + b"\x00"), "trailing bytes")
    reject(with_hops(b""), "hops.*empty")
    reject(with_hops(hops_payload(HOP0, HOP1)[:-1]), "hop 1.*runs past the end")
    reject(with_hops(b"\x01\x00"), "hop 0: missing required record 0")
    reject(with_hops(b"\xfd\x00\x01"), "non-canonical")


@pytest.mark.parametrize(
    ("missing", "match"),
    [
        (0, "missing required record 0 .time_fwd_ns"),
        (1, "missing required record 1"),
        (2, "missing required record 2 .route"),
    ],
)
def test_missing_top_level_records(missing: int, match: str) -> None:
    records = top_records()
    del records[missing]
    reject(value_of(records), match)


@pytest.mark.parametrize("missing", [0, 1, 2])
def test_missing_hop_records(missing: int) -> None:
    hop0 = list(HOP0)
    del hop0[missing]
    reject(
        value_of(top_records(route=route_records(hops=(hop0, HOP1)))),
        f"hop 0: missing required record {missing}",
    )


def test_empty_value_rejected() -> None:
    reject(b"", "missing required record 0")


def test_bad_failure_records() -> None:
    def failing(records: list[bytes]) -> bytes:
        return value_of(top_records(failure=records))

    reject(failing([rec(0, b"\x01\x00")]), "failure.*source_index.*expected 1")
    reject(failing([rec(0, b"")]), "failure.*source_index.*expected 1")
    reject(failing([rec(0, b"\x01"), rec(1, b"\x10")]), "failure.*at least 2")
    reject(failing([rec(0, b"\x01"), rec(1, b"")]), "failure.*at least 2")
    error = reject(failing([rec(1, b"\x10\x07")]), "failure.*source_index")
    # The model's own complaint is kept as the cause.
    assert isinstance(error.__cause__, ValueError)


def test_message_with_minimal_length_decodes() -> None:
    value = value_of(top_records(failure=[rec(0, b"\x00"), rec(1, b"\x20\x02")]))
    failure = decode_result(SUCCESS_KEY, value).failure
    assert failure == PaymentFailure(0, b"\x20\x02")
    assert failure.code_name == "temporary_node_failure"


# -- properties -------------------------------------------------------------------------------


@given(payment_results())
def test_round_trip(result: PaymentResult) -> None:
    key, value = encode_result(result)
    assert key == result.key
    assert decode_result(key, value) == result


def _plain_bigsize(n: int) -> bytes:
    """BOLT 1's BigSize, written from the spec: one byte below 0xfd, else a marker and 2, 4 or 8
    big-endian bytes (checked against BOLT 1's vectors in test_plain_bigsize_matches_bolt1)."""
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "big")
    if n <= 0xFFFF_FFFF:
        return b"\xfe" + n.to_bytes(4, "big")
    return b"\xff" + n.to_bytes(8, "big")


def test_plain_bigsize_matches_bolt1() -> None:
    for value, encoded in BIGSIZE_VECTORS:
        assert _plain_bigsize(value) == bytes.fromhex(encoded), value


def reference_encoding(result: PaymentResult) -> tuple[bytes, bytes]:
    """lnd's key and value for ``result``, written plainly from the format's description (module
    docstring of mcstore.codec), with ``int.to_bytes`` and a BigSize written from BOLT 1: an
    encoder that shares no code with mcstore's (nor with its decoder)."""

    def record(typ: int, payload: bytes) -> bytes:
        return _plain_bigsize(typ) + _plain_bigsize(len(payload)) + payload

    def hop_stream(hop: Hop) -> bytes:
        body = (
            record(0, hop.channel_id.to_bytes(8, "big"))
            + record(1, hop.pubkey)
            + record(2, _plain_bigsize(hop.amount_to_forward_msat))
            + (record(3, b"") if hop.has_blinding_point else b"")
            + (record(4, b"") if hop.has_custom_records else b"")
        )
        return _plain_bigsize(len(body)) + body

    route = result.route
    hops = _plain_bigsize(len(route.hops)) + b"".join(hop_stream(hop) for hop in route.hops)
    total = _plain_bigsize(route.total_amount_msat)
    value = (
        record(0, result.time_fwd_ns.to_bytes(8, "big"))
        + record(1, result.time_reply_ns.to_bytes(8, "big"))
        + record(2, record(0, route.source_pubkey) + record(1, total) + record(2, hops))
    )
    failure = result.failure
    if failure is not None:
        body = b""
        if failure.source_index is not None:
            body = record(0, bytes((failure.source_index,)))
            if failure.message is not None:
                body += record(1, failure.message)
        value += record(3, body)
    key = result.time_reply_ns.to_bytes(8, "big") + result.id.to_bytes(8, "big") + route.source_pubkey
    return key, value


_TOP = 2**64 - 1
_HIGH = 2**63  # the first u64 that librt's i64 writer takes as a negative


@example(
    PaymentResult(_TOP, _HIGH, _TOP, Route(PK_SRC, _TOP, [Hop(_HIGH, PK_HOP0, _TOP, True, True)]), FAILURE.failure)
)
@example(PaymentResult(_HIGH, _TOP, _HIGH, Route(PK_SRC, _HIGH, [Hop(_TOP, PK_HOP1, _HIGH)]), PaymentFailure()))
# Past the one-byte BigSize lengths: 253 hops (a 3-byte count), a 70,000-byte failure message
# (a 5-byte length, and so a 5-byte length of the failure record and of the value's outer ones).
@example(PaymentResult(7, 1, 2, Route(PK_SRC, 1000, [Hop(i + 1, PK_HOP0, 0xFD + i) for i in range(253)]), None))
@example(PaymentResult(8, 1, 2, Route(PK_SRC, 1000, [Hop(1, PK_HOP1, 1)]), PaymentFailure(0, bytes(70_000))))
@given(payment_results())
def test_encoding_matches_a_plain_reference_encoder(result: PaymentResult) -> None:
    assert encode_result(result) == reference_encoding(result)
    assert result.key == reference_encoding(result)[0]


def decodes_or_rejects(key: bytes, value: bytes) -> None:
    """The codec's contract: a PaymentResult or a DecodeError, nothing else."""
    try:
        result = decode_result(key, value)
    except DecodeError as e:
        # The codec's last-resort net must never be what caught it: that would mean a
        # missing bounds check.
        assert not isinstance(e.__cause__, (IndexError, struct.error))
        return
    assert isinstance(result, PaymentResult)
    # Whatever decoded is valid, so it re-encodes and decodes to itself.
    assert decode_result(*encode_result(result)) == result
    assert result.key == bytes(key)


@given(st.binary(min_size=49, max_size=49) | st.binary(max_size=60), st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(key: bytes, value: bytes) -> None:
    decodes_or_rejects(key, value)


def _records_strategy() -> st.SearchStrategy[bytes]:
    """Streams of plausible records, so the fuzzer gets past the first byte more often."""
    record = st.builds(
        lambda t, p: bytes((t, len(p))) + p,
        st.integers(0, 8),
        st.binary(max_size=40) | st.sampled_from([bytes(8), PK_SRC, b"", b"\x01"]),
    )
    return st.lists(record, max_size=6).map(b"".join)


@given(st.sampled_from([SUCCESS_KEY, FAILURE_KEY]), _records_strategy())
def test_fuzz_record_streams(key: bytes, value: bytes) -> None:
    decodes_or_rejects(key, value)


def mutate(raw: bytearray, data: st.DataObject) -> None:
    """Truncate, flip, insert into or delete from ``raw``, as ``data`` draws it."""
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    if kind == "truncate":
        del raw[data.draw(st.integers(0, len(raw))) :]
    elif kind == "flip" and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    elif kind == "insert":
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at] = data.draw(st.binary(min_size=1, max_size=10))
    elif kind == "delete" and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        del raw[at : at + data.draw(st.integers(1, 10))]


@given(payment_results(), st.data())
def test_fuzz_mutations(result: PaymentResult, data: st.DataObject) -> None:
    key, value = encode_result(result)
    target = data.draw(st.sampled_from(["value", "value", "value", "key"]))
    raw = bytearray(value if target == "value" else key)
    mutate(raw, data)
    if target == "value":
        decodes_or_rejects(key, bytes(raw))
    else:
        decodes_or_rejects(bytes(raw), value)


@settings(max_examples=max(200, settings.default.max_examples))
@given(payment_results(), st.data())
def test_canonical_fast_path_agrees_with_generic_decoder(result: PaymentResult, data: st.DataObject) -> None:
    # decode_result tries the layout encode_result writes first; whatever that fast path
    # returns, the generic decoder must return too. Unmutated values must take the fast path.
    key, value = encode_result(result)
    mutated = data.draw(st.booleans())
    target = data.draw(st.sampled_from(["value", "key"]))
    raw = bytearray(value if target == "value" else key)
    if mutated:
        mutate(raw, data)
    if target == "value":
        value = bytes(raw)
    else:
        key = bytes(raw)
    fast = codec._canonical_result(key, value)
    if not mutated:
        assert fast == result
    if fast is not None:
        assert codec._decode_generic(key, value) == fast


@pytest.mark.parametrize(
    ("amount", "match"),
    [
        ("fd00fc", "non-canonical"),
        ("fe0000ffff", "non-canonical"),
        ("ff00000000ffffffff", "non-canonical"),
        ("fd01", "truncated"),
        ("fc00", "1 bytes after its BigSize"),
        ("fd012c00", "1 bytes after its BigSize"),
    ],
)
def test_bad_hop_amounts_rejected(amount: str, match: str) -> None:
    # Covers both the canonical-layout fast path and its fallback to the generic decoder.
    for flags in ([], [rec(3, b"")], [rec(3, b""), rec(4, b"")]):
        hop0 = [HOP0[0], HOP0[1], rec(2, bytes.fromhex(amount)), *flags]
        reject(value_of(top_records(route=route_records(hops=(hop0, HOP1)))), f"hop 0: .*{match}")


@pytest.mark.parametrize("amount", [0, 0xFC, 0xFD, 0xFFFF, 0x10000, 2**32 - 1, 2**32, 2**64 - 1])
@pytest.mark.parametrize(("blinding", "custom"), [(False, False), (True, False), (False, True), (True, True)])
def test_hop_amounts_and_flags_round_trip(amount: int, blinding: bool, custom: bool) -> None:
    hop = Hop(2**64 - 1, PK_HOP0, amount, blinding, custom)
    result = PaymentResult(0, 0, 0, Route(PK_SRC, amount, [hop, hop]))
    assert decode_result(*encode_result(result)) == result


def test_hop_lengths_as_multi_byte_bigsize() -> None:
    def big_rec(typ: int, payload: bytes) -> bytes:
        # Like rec(), but the length may need a multi-byte BigSize (vectors tested above).
        return bytes((typ,)) + encode_bigsize(len(payload)) + payload

    def with_hops(payload: bytes) -> bytes:
        pk, total, _ = route_records()
        return value_of([*top_records()[:2], big_rec(2, pk + total + big_rec(2, payload))])

    # A hop padded by a 300-byte unknown odd record needs a 3-byte length; it is skipped.
    hop0 = b"".join(HOP0)
    hop1 = b"".join(HOP1) + bytes.fromhex("07 fd012c") + bytes(300)
    assert len(hop1) == 354
    payload = b"\x02" + bytes((len(hop0),)) + hop0 + bytes.fromhex("fd 0162") + hop1
    assert decode_result(SUCCESS_KEY, with_hops(payload)) == SUCCESS
    reject(with_hops(b"\x01\xfd\x00\x10" + bytes(16)), "hop 0: non-canonical")
    reject(with_hops(b"\x01\xfd\x01"), "hop 0: truncated")


def test_hop_count_beyond_input_rejected() -> None:
    pk, total, _ = route_records()
    value = value_of(top_records(route=[pk, total, rec(2, b"\x05\x00")]))
    reject(value, "hop count 5 exceeds the 1 bytes left")
    value = value_of(top_records(route=[pk, total, rec(2, b"\xfe\xff\xff\xff\xff")]))
    reject(value, "hop count 4294967295 exceeds")


def test_decode_bigsize_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        decode_bigsize("00", 0)  # type: ignore[arg-type]


@given(hops(), st.data())
def test_hop_fast_path_agrees_with_generic_decoder(hop: Hop, data: st.DataObject) -> None:
    # The canonical-layout fast path must accept exactly what the generic decoder accepts,
    # with the same result; mutated hops exercise its fallbacks.
    raw = bytearray(encode_result(PaymentResult(0, 0, 0, Route(PK_SRC, 0, [hop])))[1][-hop_len(hop) :])
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del raw[data.draw(st.integers(0, len(raw))) :]
    buf = bytes(raw)
    outcomes: list[Hop | None] = []
    for decode in (codec._decode_hop, codec._decode_hop_generic):
        try:
            outcomes.append(decode(buf, 0, len(buf)))
        except DecodeError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


def hop_len(hop: Hop) -> int:
    """Length of the encoded hop stream (the last bytes of a one-hop success value)."""
    return (
        45
        + 2
        + len(encode_bigsize(hop.amount_to_forward_msat))
        + 2 * (hop.has_blinding_point + hop.has_custom_records)
    )
