"""Run mcstore commands in this process and report how each went, as one JSON document.

Usage: ``python powerless_cli.py JSON``, where JSON is a list of commands, each a list of
arguments of ``mcstore`` (run in-process with click's ``CliRunner``), or ``["open_store", DB]``
for the library's ``open_store(DB)``. Prints ``{"uid": ..., "outcomes": [...]}``, each outcome
with ``exit_code``, ``stdout``, ``stderr`` and ``seconds`` (``open_store``: ``exit_code`` 0 if
it opened, 1 if it raised, and ``stderr`` the exception's type and message).

The read-only tests start it without root's power to override file permissions (see
``test_readonly_places.py``), so that a read-only file or directory is read-only for it.
"""

from __future__ import annotations

import json
import os
import sys
import time

import trio
from click.testing import CliRunner

from mcstore import open_store
from mcstore.cli import cli


def run_open_store(db: str) -> dict[str, object]:
    async def main() -> None:
        async with open_store(db):
            pass

    started = time.monotonic()
    try:
        trio.run(main)
    except Exception as exc:
        return {"exit_code": 1, "stdout": "", "stderr": f"{type(exc).__name__}: {exc}",
                "seconds": time.monotonic() - started}
    return {"exit_code": 0, "stdout": "", "stderr": "", "seconds": time.monotonic() - started}


def run_command(args: list[str]) -> dict[str, object]:
    started = time.monotonic()
    done = CliRunner().invoke(cli, args)
    return {"exit_code": done.exit_code, "stdout": done.stdout, "stderr": done.stderr,
            "seconds": time.monotonic() - started}


if __name__ == "__main__":
    commands = json.loads(sys.argv[1])
    outcomes = [run_open_store(c[1]) if c[0] == "open_store" else run_command(c) for c in commands]
    print(json.dumps({"uid": os.getuid(), "outcomes": outcomes}))
