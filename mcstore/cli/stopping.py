"""Stop signals in every ``mcstore`` command: Ctrl-C (SIGINT) and SIGTERM take one path.

A user stops a command with Ctrl-C; systemd, Docker and Kubernetes with SIGTERM. Both ask
for the same thing, a graceful stop: the store closes with its final flush, the command says
what it left behind, and exits with 128 + the number of the first signal (130 for Ctrl-C,
143 for SIGTERM), as a shell reports a program that such a signal stopped.

While a command runs, the click group (:mod:`mcstore.cli.common`) has :data:`STOPS` handle
both signals (:meth:`StopSignals.handling`); one handler receives them all, and what it does
depends only on where the command is:

* outside Trio, it calls the **policy** in force, by default one that raises
  ``KeyboardInterrupt`` at once, as Python's own Ctrl-C handler does (the demo, once its
  payments are over, counts presses instead: :meth:`StopSignals.run`'s ``then``);
* inside :meth:`StopSignals.run`, the only way a command enters Trio, it never raises: each
  signal is handed to the Trio run, where by default the policy decides, and a stop cancels
  the work; a command that stops in its own way (the demo, an import) gets every signal from
  an async iterator instead (``listen=True``).

No handler is installed or swapped around ``trio.run`` (the window in which the demo used to
lose a Ctrl-C, issue 17 item 14): a signal that comes while a run starts is kept and handed to
it as soon as its work starts; one that comes as it ends is counted, and given to the policy
in force after it.

Not thread-safe: a command runs in one thread. Off the main thread no handler is installed
(Python only delivers signals to the main thread), and runs simply run.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, Final, Literal, TypeVar, overload

import trio

__all__ = ["STOPS", "STOP_SIGNALS", "StopSignals", "exit_code_for", "raise_keyboard_interrupt"]

T = TypeVar("T")

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""The signals that ask a command to stop gracefully."""

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

Policy = Callable[[int], None]
"""What a stop signal does where no Trio work takes it: called with the signal's number (the
count so far is :attr:`StopSignals.count`); raising ``KeyboardInterrupt`` means "stop now"."""


def exit_code_for(signum: int) -> int:
    """128 + ``signum``: what a shell reports for a program that signal stopped."""
    return 128 + signum


def raise_keyboard_interrupt(_signum: int) -> None:
    """The default policy: stop at once, as Python's own Ctrl-C handler does."""
    raise KeyboardInterrupt


class StopSignals:
    """The stop signals one command receives, and where each one goes (see the module)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        """Every stop signal received so far, in order (numbers)."""
        self._policy: Policy = raise_keyboard_interrupt
        self._in_run = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._take: Callable[[int], None] | None = None  # the current run's receiver, in its thread
        self._handed = 0  # how many of `received` the current run has been handed

    # -- what a command reads ---------------------------------------------------------------

    @property
    def count(self) -> int:
        """How many stop signals have come."""
        return len(self.received)

    @property
    def first(self) -> int | None:
        """The first stop signal's number, or None."""
        return self.received[0] if self.received else None

    def exit_code(self) -> int:
        """128 + the first signal (SIGINT when none came: a ``KeyboardInterrupt`` from elsewhere)."""
        return exit_code_for(self.first or signal.SIGINT)

    def label(self) -> str:
        """How messages name the first signal: ``Ctrl-C`` or ``SIGTERM``."""
        return "SIGTERM" if self.first == signal.SIGTERM else "Ctrl-C"

    def verb(self) -> str:
        """``interrupted`` (Ctrl-C) or ``terminated`` (SIGTERM), for messages."""
        return "terminated" if self.first == signal.SIGTERM else "interrupted"

    # -- the handler ----------------------------------------------------------------------

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Handle both signals for the duration of one command, then restore what was there.

        Starts a fresh count. A signal whose disposition is "ignore" (a background job of a
        non-interactive shell starts with SIGINT ignored) stays ignored. Off the main thread
        nothing is installed.
        """
        self.received = []
        self._policy = raise_keyboard_interrupt
        previous: dict[int, _Handler] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    previous[signum] = signal.signal(signum, self._handle)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            self._policy = raise_keyboard_interrupt

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler (main thread, between two bytecodes of whatever runs there)."""
        self.received.append(signum)
        token = self._token
        if token is not None:
            # A run's work is listening: hand it over in the Trio thread (signal-safe).
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._hand_over)
        elif not self._in_run:
            self._policy(signum)
        # Otherwise a run is starting (its work takes it when it starts) or ending (counted;
        # run() gives it to the policy after trio.run returns). Never raise inside Trio.

    def _hand_over(self) -> None:
        """In the Trio thread: give the current run every signal it has not been given yet."""
        take = self._take
        while take is not None and self._handed < len(self.received):
            signum = self.received[self._handed]
            self._handed += 1
            take(signum)

    @contextlib.contextmanager
    def policy(self, policy: Policy) -> Iterator[None]:
        """Let ``policy`` decide what a stop signal does outside a listening run, in the block."""
        previous, self._policy = self._policy, policy
        try:
            yield
        finally:
            self._policy = previous

    # -- Trio runs ------------------------------------------------------------------------

    @overload
    def run(
        self, work: Callable[[], Awaitable[T]], *, listen: Literal[False] = False, then: Policy | None = None
    ) -> T: ...

    @overload
    def run(
        self, work: Callable[[AsyncIterator[int]], Awaitable[T]], *, listen: Literal[True], then: Policy | None = None
    ) -> T: ...

    def run(self, work: Callable[..., Awaitable[T]], *, listen: bool = False, then: Policy | None = None) -> T:
        """``trio.run(work)``, with the stop signals delivered the Trio way; return its value.

        Without ``listen``, each signal goes to the policy in force (called in the Trio thread);
        if it raises ``KeyboardInterrupt`` the work is cancelled, and once ``trio.run`` has
        returned, ``KeyboardInterrupt`` is raised here, outside Trio. With ``listen``, ``work``
        is called with an async iterator of the signals' numbers instead, and decides what each
        does. Either way a signal that comes while the run starts is given to the work as soon
        as it starts, and none raises inside Trio.

        ``then`` becomes the policy once the run is over (with no moment between the run and it
        in which the old policy would apply); a signal that came as the run ended is given to it.
        """
        stop_requested = False
        value: list[T] = []
        unread: list[int] = []  # handed to a listening work that ended before reading them
        scope = trio.CancelScope()

        def stop(signum: int) -> None:
            nonlocal stop_requested
            try:
                self._policy(signum)
            except KeyboardInterrupt:
                stop_requested = True
                scope.cancel()

        async def main() -> None:
            send, receive = trio.open_memory_channel[int](math.inf)

            def take(signum: int) -> None:
                with contextlib.suppress(trio.BrokenResourceError):  # the work stopped listening
                    send.send_nowait(signum)

            self._take = take if listen else stop
            self._token = trio.lowlevel.current_trio_token()
            try:
                self._hand_over()  # those that came while the run started
                with scope:
                    value.append(await (work(receive) if listen else work()))
            finally:
                self._token = None
                self._take = None
                with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                    while True:
                        unread.append(receive.receive_nowait())
                receive.close()

        self._handed = len(self.received)
        self._in_run = True
        try:
            # The flag matters only where no handler of ours is installed (off the main
            # thread, or outside handling()): then Trio's own Ctrl-C handling applies.
            trio.run(main, restrict_keyboard_interrupt_to_checkpoints=True)
        finally:
            if then is not None:
                self._policy = then
            self._in_run = False
            late = unread + self.received[self._handed :]
            self._handed = len(self.received)
        for signum in late:  # came as the run ended: the work never saw it
            self._policy(signum)
        if stop_requested:
            raise KeyboardInterrupt
        return value[0]


STOPS: Final = StopSignals()
"""The one instance the commands share."""
