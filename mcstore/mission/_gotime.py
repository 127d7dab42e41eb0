"""Go's ``time`` arithmetic, as lnd's mission control relies on it, on integer nanoseconds.

Times are ns since the Unix epoch; ``None`` stands for Go's zero ``time.Time`` (year 1),
lnd's "never". ``Time.Sub`` saturates at the ``time.Duration`` range, so "now minus never"
is the largest duration, not an overflow.
"""

from __future__ import annotations

from typing import Final

ZERO_TIME_NS: Final = -62_135_596_800 * 1_000_000_000
"""Go's zero time (0001-01-01 00:00:00 UTC) in ns since the Unix epoch."""
MAX_DURATION: Final = 2**63 - 1
MIN_DURATION: Final = -(2**63)
HOUR_NS: Final = 3_600_000_000_000


def sub(a: int | None, b: int | None) -> int:
    """Go's ``a.Sub(b)``: ``a - b`` in ns, saturated to the int64 range; None is the zero time."""
    d = (ZERO_TIME_NS if a is None else a) - (ZERO_TIME_NS if b is None else b)
    if d > MAX_DURATION:
        return MAX_DURATION
    if d < MIN_DURATION:
        return MIN_DURATION
    return d


def after(a: int | None, b: int | None) -> bool:
    """Go's ``a.After(b)``; None is the zero time."""
    return (ZERO_TIME_NS if a is None else a) > (ZERO_TIME_NS if b is None else b)


def hours(d: int) -> float:
    """Go's ``Duration.Hours()``: whole hours (truncated toward zero) plus the fraction."""
    h = d // HOUR_NS if d >= 0 else -(-d // HOUR_NS)
    return h + (d - h * HOUR_NS) / 3.6e12
