"""Ctrl-C and SIGTERM in every ``mcstore`` command (issue 17 items 13 and 14, mcstore/cli/stopping.py),
and a closed output pipe (item 15).

In-process tests deliver the signal at exact points: ``signal.raise_signal`` from a Trio
instrument's ``before_run``/``after_run`` (the moments in which ``trio.run`` starts or ends
and no work listens yet or any more), or from a wrapper around a function the command calls.
``raise_signal`` runs the Python handler before it returns, so each signal lands exactly there.
The real-process tests are in tests/test_cli_signal_processes.py.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import Result
from lnd_fixture import build_channel_db
from shutdown_checks import child_env, sqlite_results
from test_cli import assert_one_line_error, mc_rows, run, sample_results, write_db

from mcstore import encode_result
from mcstore.cli.stopping import StopSignals

demo_cmd = importlib.import_module("mcstore.cli.demo_cmd")
write_cmds = importlib.import_module("mcstore.cli.write_cmds")

PUBKEY_A, PUBKEY_B = "02" + "11" * 32, "03" + "22" * 32


@pytest.fixture(autouse=True)
def no_signal_escapes() -> Iterator[list[int]]:
    """Python's Ctrl-C handler, as in a program; and a SIGTERM that mcstore's handler did not
    take (it is installed only while a command runs) is recorded, not fatal to pytest."""
    escaped: list[int] = []
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, lambda signum, _frame: escaped.append(signum))
    try:
        yield escaped
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    assert escaped == [], "a SIGTERM reached the test instead of mcstore's handler"


class _SignalAt(trio.abc.Instrument):
    """Raises ``signum`` in the hook ``when`` (``before_run`` or ``after_run``) of every run."""

    def __init__(self, when: str, signum: int) -> None:
        self.fired = 0
        setattr(self, when, self._fire)
        self._signum = signum

    def _fire(self) -> None:
        self.fired += 1
        signal.raise_signal(self._signum)


def signal_at(monkeypatch: pytest.MonkeyPatch, when: str, signum: int) -> _SignalAt:
    """Make every ``trio.run`` of the commands raise ``signum`` at ``when``."""
    instrument = _SignalAt(when, signum)
    monkeypatch.setattr(trio, "run", functools.partial(trio.run, instruments=[instrument]))
    return instrument


def signal_before(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, signum: int) -> list[int]:
    """Raise ``signum`` just before each call of ``owner.name``; return the list of calls."""
    calls: list[int] = []
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(signum)
        signal.raise_signal(signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def exit_code(signum: int) -> int:
    return 128 + signum


# -- StopSignals, alone ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_a_run_starts_is_handed_to_the_work_when_it_starts(
    monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    stops = StopSignals()
    signal_at(monkeypatch, "before_run", signum)
    got: list[int] = []

    async def listening(signals: Any) -> str:
        async for number in signals:
            got.append(number)
            return "stopped"
        return "never"

    async def working() -> None:
        await trio.sleep_forever()  # cancelled by the signal

    with stops.handling():
        assert stops.run(listening, listen=True) == "stopped"
        with pytest.raises(KeyboardInterrupt):
            stops.run(working)
    assert got == [signum] and stops.received == [signum, signum]
    assert stops.exit_code() == exit_code(signum)


def test_a_signal_as_a_run_ends_goes_to_the_policy_after_it_and_the_value_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stops = StopSignals()
    signal_at(monkeypatch, "after_run", signal.SIGTERM)
    seen: list[tuple[str, int]] = []

    async def listening(signals: Any) -> str:
        return "done"

    with stops.handling():
        value = stops.run(listening, listen=True, then=lambda signum: seen.append(("then", signum)))
        assert value == "done" and seen == [("then", signal.SIGTERM)]
        assert stops.count == 1 and stops.exit_code() == 143 and stops.label() == "SIGTERM"
    with stops.handling():  # a new command: the default policy, under which a work stops
        with pytest.raises(KeyboardInterrupt):
            stops.run(trio.lowlevel.checkpoint)
    with stops.handling(), stops.policy(lambda signum: seen.append(("policy", signum))):
        assert stops.run(trio.lowlevel.checkpoint) is None
    assert seen == [("then", signal.SIGTERM), ("policy", signal.SIGTERM)]


def test_outside_a_run_a_signal_raises_keyboard_interrupt_and_the_handlers_are_restored() -> None:
    stops = StopSignals()
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stops.handling():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert stops.received == [signal.SIGTERM] and stops.verb() == "terminated"


def test_an_ignored_signal_stays_ignored() -> None:
    stops = StopSignals()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stops.handling():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        assert stops.received == []
    finally:
        signal.signal(signal.SIGINT, previous)


# -- SIGTERM in every command ---------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "mc.sqlite"
    write_db(path, sample_results())
    return path


def _commands(db: Path, tmp_path: Path) -> dict[str, list[str]]:
    dump = tmp_path / "in.jsonl"
    assert run("export", str(db), "-o", str(dump)).exit_code == 0
    lnd = tmp_path / "channel.sqlite"
    build_channel_db(str(lnd), {"default": [encode_result(r) for r in sample_results()]})
    fresh = str(tmp_path / "fresh.sqlite")
    return {
        "demo": ["demo", "--db", fresh, "--payments", "30", "--seed", "1"],
        "import": ["import", fresh, str(dump)],
        "import-lnd": ["import-lnd", str(lnd), fresh],
        "reset": ["reset", str(db), "--yes"],
        "stats": ["stats", str(db)],
        "export": ["export", str(db)],
        "querymc": ["querymc", str(db)],
        "queryprob": ["queryprob", str(db), PUBKEY_A, PUBKEY_B, "1000", "--capacity-sat", "10"],
    }


COMMANDS = ("demo", "import", "import-lnd", "reset", "stats", "export", "querymc", "queryprob")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_stops_gracefully_on_sigterm_as_on_ctrl_c(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, signum: int
) -> None:
    # The signal comes as the command's (first) Trio run starts: the work takes it at once.
    args = _commands(db, tmp_path)[command]
    rows = mc_rows(db)
    instrument = signal_at(monkeypatch, "before_run", signum)
    result = run(*args)
    assert instrument.fired >= 1
    assert result.exit_code == exit_code(signum), (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    verb = "terminated" if signum == signal.SIGTERM else "interrupted"
    label = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    if command == "demo":
        assert f"{label}: stopping the payments" in result.stderr
        _assert_demo_summary_and_proof(result, f"{verb.capitalize()} by {label} after")
    elif command in ("import", "import-lnd"):
        assert_one_line_error(result, exit_code(signum), f"{verb}: nothing was imported")
        assert not (tmp_path / "fresh.sqlite").exists() or sqlite_results(tmp_path / "fresh.sqlite") == []
    else:
        assert result.stderr.strip().splitlines()[-1] == f"Error: {verb}"
    assert mc_rows(db) == rows  # reset deleted nothing


def _assert_demo_summary_and_proof(result: Result, last_line: str) -> None:
    """The demo printed its summary and a proof that passed, and ended with ``last_line``."""
    out = result.stdout
    assert "close time" in out and "Summary" in out, out
    proof = next(line for line in out.splitlines() if line.startswith("Proof:"))
    assert proof.endswith("nothing accepted was lost."), proof
    actual, expected = map(int, re.match(r"Proof: (\d+) records in the database, (\d+) expected", proof).groups())  # type: ignore[union-attr]
    assert actual == expected
    assert out.strip().splitlines()[-1].startswith(last_line), out


def test_sigterm_while_validating_an_import_imports_nothing(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside Trio, the policy raises at once: the same path as Ctrl-C, with its own exit code.
    dump = tmp_path / "d.jsonl"
    assert run("export", str(db), "-o", str(dump)).exit_code == 0
    signal_before(monkeypatch, write_cmds, "iter_json_lines", signal.SIGTERM)
    rows = mc_rows(db)
    assert_one_line_error(run("import", str(db), str(dump)), 143, "terminated while validating: nothing")
    assert mc_rows(db) == rows


# -- the demo: a signal is never lost, whenever it comes (item 14) --------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
@pytest.mark.parametrize(
    "moment",
    ["as the run ends", "before the summary", "during the proof"],
)
def test_a_signal_after_the_payments_still_ends_the_demo_with_its_exit_code_and_proof(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str, signum: int
) -> None:
    # Before issue 17: as trio.run ended, Trio turned the signal into a KeyboardInterrupt that
    # lost the summary; before the summary, the default handler did the same; during the proof
    # the demo counted it as a "please wait" and exited 0, as if there had been no signal.
    if moment == "as the run ends":
        signal_at(monkeypatch, "after_run", signum)
    elif moment == "before the summary":
        signal_before(monkeypatch, demo_cmd._DemoBar, "finish", signum)
    else:
        signal_before(monkeypatch, demo_cmd, "verify_demo", signum)
    result = run("demo", "--db", str(tmp_path / "d.sqlite"), "--payments", "30", "--seed", "2")
    assert result.exit_code == exit_code(signum), (result.stdout, result.stderr)
    label = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    verb = "Terminated" if signum == signal.SIGTERM else "Interrupted"
    assert f"{label}: the payments are over and the store closed; the summary and the proof follow." in result.stderr
    last = f"{verb} by {label} once the 30 payments were over; the store closed gracefully."
    _assert_demo_summary_and_proof(result, last)
    assert re.search(r"^payments +30 +of 30", result.stdout, flags=re.M), result.stdout


def test_a_third_signal_during_the_proof_stops_it_and_says_what_the_store_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = signal_before(monkeypatch, demo_cmd._DemoBar, "finish", signal.SIGTERM)
    signal_before(monkeypatch, demo_cmd, "_print_demo_summary", signal.SIGINT)
    signal_before(monkeypatch, demo_cmd, "verify_demo", signal.SIGINT)
    result = run("demo", "--db", str(tmp_path / "d.sqlite"), "--payments", "30", "--seed", "2")
    assert calls == [signal.SIGTERM]
    line = assert_one_line_error_last(result, 143)
    assert line.startswith(f"Error: {tmp_path / 'd.sqlite'}: aborted by SIGTERM before the proof finished")
    assert "closing, please wait; SIGTERM 1 more time aborts" in result.stderr
    assert "Proof:" not in result.stdout


def assert_one_line_error_last(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stderr.strip().splitlines()[-1]


def test_the_summary_counts_the_payments_made_once_and_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 17 item 15: after Ctrl-C the summary said "payments 3919" and "over 3918 payments".
    # Ctrl-C in the middle of the run (at the 40th progress report).
    original = demo_cmd._DemoBar.update

    def update(self: Any, state: Any) -> None:
        if state.results_sent == 40:
            signal.raise_signal(signal.SIGINT)
        original(self, state)

    monkeypatch.setattr(demo_cmd._DemoBar, "update", update)
    result = run("demo", "--db", str(tmp_path / "d.sqlite"), "--payments", "500", "--seed", "5")
    assert result.exit_code == 130, (result.stdout, result.stderr)
    out = result.stdout
    made = int(re.search(r"^payments +(\d+)  of 500", out, flags=re.M).group(1))  # type: ignore[union-attr]
    over = int(re.search(r"per payment, over (\d+) payments", out).group(1))  # type: ignore[union-attr]
    after = int(re.search(r"Interrupted by Ctrl-C after (\d+) of 500 payments", out).group(1))  # type: ignore[union-attr]
    assert made == over == after < 500


# -- a reader that went away (item 15) -------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_stops_quietly_with_0_when_its_output_pipe_is_closed(
    db: Path, tmp_path: Path, command: str
) -> None:
    # `mcstore stats db | head` exited 1 while `export | head` exited 0. The read end is
    # closed before the command starts, so its first write to stdout meets EPIPE, every time.
    args = _commands(db, tmp_path)[command]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "mcstore", *args],
            stdout=write_end, stderr=subprocess.PIPE, text=True, env=child_env(), timeout=120,
        )
    finally:
        os.close(write_end)
    assert completed.returncode == 0, completed.stderr
    assert "Error" not in completed.stderr and "Traceback" not in completed.stderr, completed.stderr
