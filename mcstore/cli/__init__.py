"""The ``mcstore`` command and its helpers: the tools on top of the library.

The entry point is :func:`main` (``mcstore`` and ``python -m mcstore``); :data:`cli` is the
click group (:mod:`mcstore.cli.main`). The command needs the extra ``cli`` (click and rich),
which the library does not: without it, :func:`main` prints one line that names the extra
and exits with 1, and nothing of the library imports them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .main import cli

__all__ = ["MISSING_EXTRA", "cli", "main"]

MISSING_EXTRA: Final = "mcstore: the command needs the extra 'cli' (click and rich): pip install 'mcstore[cli]'"
"""What :func:`main` prints, on stderr, when click or rich is missing (then a note of which)."""

_EXTRA_MODULES: Final = frozenset({"click", "rich"})


def main() -> None:
    """Run the ``mcstore`` command (the console script's entry point).

    Exits with 1 after one line on stderr if the extra ``cli`` is not installed.
    """
    try:
        from .main import cli
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _EXTRA_MODULES:
            raise
        print(f"{MISSING_EXTRA} (no module {exc.name!r})", file=sys.stderr)
        raise SystemExit(1) from None
    cli()


def __getattr__(name: str) -> Any:
    # `cli` is imported on first use, so that importing this package (for `main`) needs no extra.
    if name == "cli":
        from .main import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
