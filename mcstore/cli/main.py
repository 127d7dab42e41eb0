"""The ``mcstore`` command: the click group, and every command registered on it, here only.

Each command lives in the module of its group; the work is done by the modules they call.

=============  ==================================================================================
``demo``       payments routed with mission control, into a store (:mod:`mcstore.cli.demo_cmd`;
               the simulation: :mod:`mcstore.cli.routing`)
``stats``      summarise a database, read-only (:mod:`mcstore.cli.read_cmds`; :mod:`mcstore.cli.readonly`)
``export``     write a namespace as jsonl or csv, read-only (:mod:`mcstore.cli.read_cmds`;
               the formats: :mod:`mcstore.cli.export`)
``import``     read jsonl back through a store, all or nothing (:mod:`mcstore.cli.write_cmds`)
``import-lnd`` import an lnd node's history from its ``channel.sqlite`` (:mod:`mcstore.cli.write_cmds`;
               the reading: :mod:`mcstore.cli.lnd_import`)
``reset``      clear a namespace (:mod:`mcstore.cli.write_cmds`)
``querymc``    the pair history rebuilt from a namespace, read-only (:mod:`mcstore.cli.mission_cmds`)
``queryprob``  a success probability and the pair's history, read-only (:mod:`mcstore.cli.mission_cmds`)
``eval``       score the estimators on a namespace's history, read-only (:mod:`mcstore.cli.calibrate`)
``fit``        fit an estimator's parameters to a namespace's history, read-only (:mod:`mcstore.cli.calibrate`)
=============  ==================================================================================

Every expected error is one line on stderr, ``Error: <file>: <what>`` (``<file>:<line>:
<field>: <what>`` for a bad import line), with exit code 1, or 2 for a usage error. Ctrl-C
and SIGTERM stop every command gracefully (:mod:`mcstore.cli.stopping`), which then exits
with 130 or 143: the demo after its summary and proof, an import with one line saying whether
it committed, as the store reported it. Output to a pipe whose reader went away (``| head``)
ends a command quietly, with 0.
"""

from __future__ import annotations

import click

from .. import COMPILED, __version__
from .calibrate import eval_, fit_
from .common import _CONTEXT, _VERBOSE_HELP, _configure_logging, _Group
from .demo_cmd import demo
from .mission_cmds import querymc, queryprob
from .read_cmds import export, stats
from .write_cmds import import_, import_lnd, reset

__all__ = ["cli"]


# -- the group and its commands ----------------------------------------------------------------


@click.group(cls=_Group, context_settings=_CONTEXT, no_args_is_help=True)
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="mcstore",
    # mcstore.COMPILED: which core this process runs (MCSTORE_PURE=1 forces pure Python).
    message=f"%(prog)s, version %(version)s, COMPILED={COMPILED} "
    f"({'compiled core (mypyc)' if COMPILED else 'pure-Python core'})",
)
@click.option("-v", "--verbose", count=True, help=_VERBOSE_HELP)
def cli(verbose: int) -> None:
    """A durable store of Lightning mission control results, byte-compatible with lnd.

    Start with `mcstore demo`: it simulates a node's payments into ./mcstore-demo.sqlite.
    Commands that write (demo, import, import-lnd, reset) go through the store, with its
    namespace lock, deduplication and cap; stats and export only read.
    """
    _configure_logging(verbose)


# Every command, in one place, in the order of the table above (no module registers itself).
for _command in (demo, stats, export, import_, import_lnd, reset, querymc, queryprob, eval_, fit_):
    cli.add_command(_command)

