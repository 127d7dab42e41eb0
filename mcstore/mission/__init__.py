"""Mission control: result interpretation, pair history and success probabilities (lnd's rules)."""

from __future__ import annotations

__all__: list[str] = []
