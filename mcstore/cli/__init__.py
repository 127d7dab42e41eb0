"""The ``mcstore`` command and its helpers: the tools on top of the library.

The entry point is :func:`main` (``mcstore`` and ``python -m mcstore``); :data:`cli` is the
click group.
"""

from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
