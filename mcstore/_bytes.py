"""Big-endian unsigned integers in and out of bytes: the one home of the core's byte helpers.

lnd writes every integer of its key and value big-endian; the model (the 49-byte key) and the
codec (the TLV value) both go through the helpers here. The bottom layer of the core: it
imports nothing of mcstore, and mypyc compiles it with the model and the codec (one group, see
``setup.py``), so that their calls into it are native calls.

Values are written into a ``librt.strings.BytesWriter`` and read with ``librt.strings.read_*``:
mypyc compiles both to native code (no Python call, and no int or bytes object per field), and
both are ordinary functions on the pure path. They are signed (i16/i32/i64), so an unsigned
value with its top bit set travels as its two's-complement negative: the helpers convert.
"""

from __future__ import annotations

from typing import Final

from librt.strings import BytesWriter, read_i16_be, read_i32_be, read_i64_be, write_i32_be, write_i64_be

__all__ = ["TWO_32", "TWO_64", "U16_MAX", "U32_MAX", "U64_MAX", "put_u32", "put_u64", "read_uint"]

# Literals, not expressions: mypyc reads a Final literal of another module of the group as a
# constant.
U16_MAX: Final = 0xFFFF
U32_MAX: Final = 0xFFFF_FFFF
U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF
"""Largest u64, hence the largest value of any integer field (``mcstore.model`` re-exports it)."""
TWO_32: Final = 0x1_0000_0000
TWO_64: Final = 0x1_0000_0000_0000_0000


def put_u64(w: BytesWriter, n: int) -> None:
    """Write the u64 ``n`` (the caller checked ``0 <= n <= U64_MAX``) as 8 big-endian bytes."""
    write_i64_be(w, n - TWO_64 if n >> 63 else n)


def put_u32(w: BytesWriter, n: int) -> None:
    """Write the u32 ``n`` (the caller checked ``0 <= n <= U32_MAX``) as 4 big-endian bytes."""
    write_i32_be(w, n - TWO_32 if n >> 31 else n)


def read_uint(buf: bytes, at: int, size: int) -> int:
    """The big-endian unsigned integer ``buf[at : at + size]`` (size 2, 4 or 8); the caller
    checked the bounds."""
    if size == 8:
        n: int = read_i64_be(buf, at)
        return n + TWO_64 if n < 0 else n
    if size == 4:
        n = read_i32_be(buf, at)
        return n + TWO_32 if n < 0 else n
    n = read_i16_be(buf, at)
    return n + 0x1_0000 if n < 0 else n
