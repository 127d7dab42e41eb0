"""The byte helpers of the core (mcstore._bytes): unsigned big-endian integers through librt's
signed readers and writer, at the edges where the sign bit is set."""

from __future__ import annotations

import pytest
from librt.strings import BytesWriter

from mcstore import _bytes


@pytest.mark.parametrize("n", [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1])
def test_put_u64_writes_big_endian_and_read_uint_reads_it_back(n: int) -> None:
    w = BytesWriter()
    _bytes.put_u64(w, n)
    data = b"\xaa" + w.getvalue()
    assert data[1:] == n.to_bytes(8, "big")
    assert _bytes.read_uint(data, 1, 8) == n


@pytest.mark.parametrize("n", [0, 1, 2**15, 2**31 - 1, 2**31, 2**32 - 1])
def test_put_u32_writes_big_endian_and_read_uint_reads_it_back(n: int) -> None:
    w = BytesWriter()
    _bytes.put_u32(w, n)
    assert w.getvalue() == n.to_bytes(4, "big")
    assert _bytes.read_uint(w.getvalue(), 0, 4) == n


@pytest.mark.parametrize("n", [0, 1, 2**15 - 1, 2**15, 2**16 - 1])
def test_read_uint_reads_two_bytes_unsigned(n: int) -> None:
    assert _bytes.read_uint(b"\x00" + n.to_bytes(2, "big"), 1, 2) == n


def test_limits() -> None:
    assert (_bytes.U16_MAX, _bytes.U32_MAX, _bytes.U64_MAX) == (2**16 - 1, 2**32 - 1, 2**64 - 1)
    assert (_bytes.TWO_32, _bytes.TWO_64) == (2**32, 2**64)
