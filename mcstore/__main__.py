"""``python -m mcstore``: the same command as the ``mcstore`` console script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
