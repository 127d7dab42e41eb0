"""What every ``mcstore`` command shares: the group's class, one-line errors, shared options, output.

The group and the registration of every command are in :mod:`mcstore.cli.main`; the commands
live in the modules of their groups (:mod:`~mcstore.cli.demo_cmd`, :mod:`~mcstore.cli.read_cmds`,
:mod:`~mcstore.cli.write_cmds`, :mod:`~mcstore.cli.mission_cmds`, :mod:`~mcstore.cli.calibrate`),
which take what they share from here, so that none imports another for it. The names starting with
an underscore are private to the :mod:`mcstore.cli` package.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Final, NoReturn

import click
from rich.console import Console

from ..backends import (
    SCRUB_FILTER,
    InvalidLocation,
    LocationError,
    driver_error_text,
    redact_location,
    remember_secrets,
    scrub_secrets,
)
from ..errors import DecodeError, StoreError, StoreLocked
from ..mission.graph import ChannelGraph, GraphError, load_graph
from ..store import DEFAULT_MAX_RECORDS, MAX_RECORDS, check_namespace
from .demo import BUILTIN_GRAPHS
from .export import RecordError, format_time_ns
from .stopping import STOPS

__all__ = ["OneLineUsageError"]

_CONTEXT: Final = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -- one-line errors ------------------------------------------------------------------------


class OneLineUsageError(click.ClickException):
    """A usage error shown as one line (click's own shows the usage and a hint on more lines)."""

    exit_code = 2


def _one_line(text: str) -> str:
    """``text`` on one line, without any password (the error printer's last line of defence)."""
    return scrub_secrets(" ".join(text.split()))


def _as_one_line(error: click.UsageError) -> OneLineUsageError:
    hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    return OneLineUsageError(_one_line(error.format_message()) + hint)


_NO_ARGS_IS_HELP: Final[tuple[type[BaseException], ...]] = tuple(
    cls for cls in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if cls is not None
)


def _configure_logging(verbose: int) -> None:
    """Send the store's log messages to stderr: INFO for ``verbose`` 1, DEBUG for 2 or more."""
    if verbose:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        # Also what other libraries log (psycopg's warnings) is scrubbed of passwords.
        for handler in logging.getLogger().handlers:
            handler.addFilter(SCRUB_FILTER)
        level = logging.DEBUG if verbose > 1 else logging.INFO
        logger = logging.getLogger("mcstore")
        if logger.level == logging.NOTSET or level < logger.level:
            logger.setLevel(level)


def _verbose_callback(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
    _configure_logging(value)
    return value


_VERBOSE_HELP: Final = "Log the store's messages to stderr (-v: INFO, -vv: DEBUG)."


class _Group(click.Group):
    """A group whose usage errors, its own and its commands', come out as one line.

    Every command added to it also takes ``-v``/``--verbose``, so that ``mcstore demo -v``
    works as well as ``mcstore -v demo``.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.append(
            click.Option(
                ["-v", "--verbose"],
                count=True,
                expose_value=False,
                callback=_verbose_callback,
                help=_VERBOSE_HELP,
            )
        )
        super().add_command(cmd, name)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise  # `mcstore` alone prints the help, as click does
        except click.UsageError as error:
            raise _as_one_line(error) from error

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Every word of the command line may hold a location: their passwords are masked in
        # whatever the command prints (see _one_line and _scrubbed_crash).
        remember_secrets(*args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        # Every command: Ctrl-C and SIGTERM take one path (mcstore.cli.stopping).
        with STOPS.handling():
            try:
                return super().invoke(ctx)
            except _NO_ARGS_IS_HELP:
                raise
            except click.UsageError as error:
                raise _as_one_line(error) from error
            except click.ClickException as error:
                # The error printer's last line of defence. (ClickException.message is Final for
                # type checkers only: replaced in place, the error keeps its class and exit code.)
                vars(error)["message"] = scrub_secrets(error.message)
                raise
            except KeyboardInterrupt:
                # A stop that no command turned into its own message (the demo and import do).
                click.echo(f"Error: {STOPS.verb()}", err=True)
                raise click.exceptions.Exit(STOPS.exit_code()) from None
            except BrokenPipeError:
                # The reader went away (`mcstore stats db | head`): stop quietly, as other tools do.
                _silence_stdout()
                raise click.exceptions.Exit(0) from None
            except (click.exceptions.Exit, click.Abort):
                raise
            except Exception as exc:
                _scrubbed_crash(exc)
                raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's final flush of a closed pipe stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _scrubbed_crash(exc: BaseException) -> None:
    """An unexpected error: if its traceback would show a password, print it scrubbed and exit 1
    (else return, and Python prints it as usual)."""
    text = "".join(traceback.format_exception(exc))
    clean = scrub_secrets(text)
    if clean != text:
        click.echo(clean, err=True, nl=False)
        raise click.exceptions.Exit(1) from None


def _fail(message: str) -> NoReturn:
    raise click.ClickException(_one_line(message))


@contextlib.contextmanager
def _reported(path: str, namespace: str | None = None) -> Iterator[None]:
    """Turn the library's expected errors into one-line click errors naming the file."""
    shown = redact_location(path)
    try:
        yield
    except (RecordError, click.ClickException, BrokenPipeError):
        raise
    except (LocationError, InvalidLocation) as exc:
        _fail(str(exc))
    except StoreLocked:
        which = f"namespace {namespace!r}" if namespace is not None else "the namespace"
        _fail(f"{shown}: {which} is open in another mcstore process or store; try again once it has closed")
    except StoreError as exc:
        _fail(f"{shown}: {exc}")
    except OSError as exc:
        _fail(f"{redact_location(exc.filename or path)}: {exc.strerror or exc}")
    except Exception as exc:
        text = driver_error_text(exc)  # a database driver's error that no backend wrapped
        if text is None:
            raise
        _fail(f"{shown}: {text}")


def _graph(spec: str) -> ChannelGraph:
    """The channel graph ``--graph SPEC`` names: a built-in one (:data:`~mcstore.cli.demo.BUILTIN_GRAPHS`)
    or a graph file (:func:`~mcstore.mission.load_graph`); a file that cannot be read is a one-line error."""
    builtin = BUILTIN_GRAPHS.get(spec)
    if builtin is not None:
        return builtin()
    with _reported(spec):
        try:
            return load_graph(spec)
        except IsADirectoryError:
            _fail(f"{spec}: is a directory, not a graph file")
        except GraphError as exc:
            _fail(str(exc))


@contextlib.contextmanager
def _working(message: str) -> Iterator[None]:
    """A spinner with ``message`` on stderr while the block runs, if stderr is a terminal."""
    console = _stderr()
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        yield


# -- shared by several commands ----------------------------------------------------------------


class _Interrupted(click.ClickException):
    """An error after a stop signal: one line saying what state things were left in.

    Exits with 128 + the first signal's number: 130 after Ctrl-C, 143 after SIGTERM.
    """

    @property  # click declares a class constant; this one depends on the signal
    def exit_code(self) -> int:  # type: ignore[override]
        return STOPS.exit_code()




def _check_directory_of(path: str, target: str) -> None:
    """Fail, naming it, unless the directory that the new file ``path`` (leading to ``target``,
    its real path) goes into exists and may be written."""
    directory = os.path.dirname(target)
    shown = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        _fail(f"{path}: directory {shown!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        _fail(f"{path}: directory {shown!r} is not writable")







# -- shared options and output ----------------------------------------------------------------


def _check_namespace(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            check_namespace(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _namespace_option(
    default: str | None, help_text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--namespace",
        "-n",
        "namespace",
        default=default,
        show_default=default is not None,
        callback=_check_namespace,
        metavar="NS",
        help=help_text,
    )


_max_records_option = click.option(
    "--max-records",
    type=click.IntRange(min=0, max=MAX_RECORDS),
    default=DEFAULT_MAX_RECORDS,
    show_default=True,
    metavar="N",
    help="Keep at most N results in the namespace, pruning the oldest (lnd's MaxMcHistory); 0: no cap.",
)

_db_argument = click.argument("db", metavar="DB", type=click.Path(dir_okay=False))


def _plot_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--plot", metavar="FILE.png", type=click.Path(dir_okay=False), default=None, help=help_text
    )


class _Console(Console):
    """rich's Console, but a closed pipe raises ``BrokenPipeError`` (rich exits with 1 itself),
    so that every command stops on it in the one place that handles it (``_Group.invoke``)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")


def _stdout() -> Console:
    return _Console(highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return _Console(stderr=True, highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    click.echo(f"warning: {_one_line(message)}", err=True)


def _fail_unknown_namespace(db: str, namespace: str, names: list[str]) -> NoReturn:
    known = ", ".join(map(repr, names)) or "none, the database is empty"
    _fail(f"{redact_location(db)}: namespace {namespace!r} does not exist; the namespaces are: {known}")


def _warn_unknown_namespace(db: str, namespace: str, names: list[str]) -> None:
    # Not an error: a namespace that was never written and one that was cleared look alike,
    # and both hold no records. The warning catches a misspelt name.
    known = ", ".join(map(repr, names)) or "none"
    _warn(f"{redact_location(db)}: namespace {namespace!r} holds no records (namespaces: {known})")


def _bad_row_reporter(path: str, namespace: str) -> Callable[[bytes, DecodeError], None]:
    shown = redact_location(path)

    def report(key: bytes, exc: DecodeError) -> None:
        _warn(f"{shown}: namespace {namespace!r}: skipping undecodable row key={key.hex()}: {exc}")

    return report


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _short_time(ns: int | None) -> str:
    if ns is None:
        return "-"
    text = format_time_ns(ns)
    return text[:23] + "Z"  # millisecond precision is enough for a summary


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else ""
