"""Ctrl-C and SIGTERM sent to a real ``mcstore demo`` at many moments (issue 17 items 13 and 14).

Each round starts ``python -m mcstore demo`` on a database of its own, waits for its
"Simulating ..." line (the store is open and holds the namespace lock), then sends the signal
a fixed offset later: the offsets are spread evenly over the first second of the payments, so
every run covers the same moments. Each round must end with the signal's exit code (130 or
143), the summary, and a proof that passed; and the file holds exactly what the proof counted.
The exact moments around ``trio.run`` (as it starts and ends) and after the payments are in
tests/test_cli_signals.py, where an instrument or a hook delivers the signal there.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli import _Lines, _start, _stop, _write_lock, mc_rows

CTRL_C_MOMENTS = 20
"""SIGINT rounds, at offsets k / 20 s after the ready line, k = 0 .. 19 (item 14)."""
SIGTERM_MOMENTS = (0.0, 0.3, 0.8)
"""SIGTERM rounds, seconds after the ready line (item 13)."""


@dataclass(frozen=True)
class Round:
    signum: int
    offset: float
    returncode: int
    stdout: str
    stderr: str
    rows: int


def run_round(directory: Path, number: int, signum: int, offset: float) -> Round:
    db = directory / f"round{number}.sqlite"
    proc = _start("demo", "--db", str(db), "--payments", "200000", "--seed", str(number))
    try:
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        out.wait_for("Simulating ")  # the store is open: from here on the payments run
        time.sleep(offset)  # the round's moment, a fixed offset after the ready line
        proc.send_signal(signum)
        proc.wait(timeout=60)
        stdout, stderr = out.rest(), err.rest()
    finally:
        _stop(proc)
    return Round(signum, offset, proc.returncode, stdout, stderr, len(mc_rows(db)))


def problems_of(r: Round) -> list[str]:
    label, verb = ("SIGTERM", "Terminated") if r.signum == signal.SIGTERM else ("Ctrl-C", "Interrupted")
    where = f"{label} {r.offset:.3f} s after the ready line"
    problems = []
    if r.returncode != 128 + r.signum:
        problems.append(f"{where}: exit {r.returncode}; stderr: {r.stderr[-500:]}")
    if "close time" not in r.stdout:
        problems.append(f"{where}: no summary")
    proof = re.search(r"^Proof: (\d+) records in the database, (\d+) expected.*: OK, .*nothing accepted was lost\.$",
                      r.stdout, flags=re.M)
    if proof is None:
        problems.append(f"{where}: no passing proof: {r.stdout[-400:]}")
    elif not int(proof.group(1)) == int(proof.group(2)) == r.rows:
        problems.append(f"{where}: proof {proof.group(0)!r}, but the file holds {r.rows} rows")
    if f"{verb} by {label} after" not in r.stdout:
        problems.append(f"{where}: the payments were not stopped: {r.stdout[-200:]}")
    if "Traceback" in r.stderr:
        problems.append(f"{where}: a traceback: {r.stderr}")
    return problems


@pytest.mark.slow
def test_a_signal_at_any_moment_of_the_first_second_stops_the_demo_with_summary_and_proof(tmp_path: Path) -> None:
    rounds = [(signal.SIGINT, k / CTRL_C_MOMENTS) for k in range(CTRL_C_MOMENTS)]
    rounds += [(signal.SIGTERM, offset) for offset in SIGTERM_MOMENTS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda item: run_round(tmp_path, item[0], *item[1]), enumerate(rounds)))
    problems = [problem for r in results for problem in problems_of(r)]
    assert not problems, f"{len(problems)} problems in {len(rounds)} rounds:\n" + "\n".join(problems)


@pytest.mark.slow
def test_sigterm_during_the_close_after_the_payments_ends_with_143_summary_and_proof(tmp_path: Path) -> None:
    # The first signal comes while the store closes after all the payments: the close goes on
    # (its final flush waits for a write lock that another connection holds until then), the
    # summary and the proof follow, and the file holds every accepted result.
    db = tmp_path / "demo.sqlite"
    proc = _start("demo", "--payments", "60", "--db", str(db), "--seed", "6", "--max-records", "0", "-vv")
    with contextlib.ExitStack() as cleanup:  # closes the lock, then stops the child
        cleanup.callback(_stop, proc)
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        out.wait_for("repeat this run")
        # From now on the store's flushes, the close's included, wait for this lock.
        lock = cleanup.enter_context(contextlib.closing(_write_lock(db)))
        err.wait_for("Stopping mission control store ticker")  # the payments are over: the close
        proc.send_signal(signal.SIGTERM)
        err.wait_for("SIGTERM: the payments are over and the store is closing")
        lock.execute("ROLLBACK")
        proc.wait(timeout=60)
        stdout, stderr = out.rest(), err.rest()
    r = Round(signal.SIGTERM, 0.0, proc.returncode, stdout, stderr, len(mc_rows(db)))
    problems = [p for p in problems_of(r) if "the payments were not stopped" not in p]
    assert not problems, problems
    last = "Terminated by SIGTERM once the 60 payments were over; the store closed gracefully."
    assert stdout.strip().splitlines()[-1] == last
    accepted = int(re.search(r"^accepted +(\d+)", stdout, flags=re.M).group(1))  # type: ignore[union-attr]
    deduplicated = int(re.search(r"^deduplicated +(\d+)", stdout, flags=re.M).group(1))  # type: ignore[union-attr]
    assert r.rows == accepted - deduplicated  # no cap: every distinct accepted result is in the file
