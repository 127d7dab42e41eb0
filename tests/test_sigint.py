"""Ctrl-C in a library program: real processes, SIGINT at random moments (issue 10 §1).

Each round starts ``scripts/sigint_child.py`` (a program written like the README's example), waits for
its ``ready``, sleeps a random delay, and sends SIGINT; the child is busy adding results, waiting
in ``put``, or sleeping and flushing, under plain ``trio.run`` or with
``restrict_keyboard_interrupt_to_checkpoints=True``. The database is healthy, so each round must
end with:

* ``KeyboardInterrupt`` out of ``trio.run``: never ``StoreError``, ``TrioInternalError`` or a
  group;
* the store closed, ``store.unpersisted`` empty;
* every accepted result in the file, and nothing else (``max_records=0``: no pruning); the
  loop's own count agrees with the store's ``accepted`` (off by one only when the signal fell
  between ``add_result`` returning and the loop counting it).

Rounds: ``SIGINT_ROUNDS`` (below) per profile, or the ``MCSTORE_SIGINT_ROUNDS`` environment
variable; each round picks the mode and the flag in turn, and its delay at random.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from shutdown_checks import SCRIPTS_DIR, child_env, sqlite_integrity

CHILD = os.path.join(SCRIPTS_DIR, "sigint_child.py")
MODES = ("busy", "put", "sleep")
FLAGS = (False, True)  # restrict_keyboard_interrupt_to_checkpoints
SIGINT_ROUNDS = {"ci": 12, "thorough": 240, "dev": 24}
"""Rounds per hypothesis profile (HYPOTHESIS_PROFILE, as tests/conftest.py loads it)."""
MAX_DELAY = 0.25  # seconds after "ready" before the signal, drawn uniformly
ROUND_TIMEOUT = 60.0  # seconds for one child to end after the signal


def rounds() -> int:
    """How many rounds to run: MCSTORE_SIGINT_ROUNDS, else the profile's count."""
    explicit = os.environ.get("MCSTORE_SIGINT_ROUNDS")
    if explicit:
        return int(explicit)
    return SIGINT_ROUNDS[os.environ.get("HYPOTHESIS_PROFILE", "ci")]


def _sigint_default() -> None:
    # A child of a non-interactive shell may inherit SIGINT ignored; then Python would not
    # install its KeyboardInterrupt handler, and neither would Trio.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_round(directory: Path, number: int, seed: int) -> dict[str, Any]:
    """One child: start it, signal it at a random moment, return its report and the rows."""
    rng = random.Random(seed)
    mode = MODES[number % len(MODES)]
    restrict = FLAGS[(number // len(MODES)) % len(FLAGS)]
    path = directory / f"round{number}.sqlite"
    first = 1_000_000 * (number + 1)
    process = subprocess.Popen(
        [sys.executable, CHILD, str(path), mode, "1" if restrict else "0", str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        preexec_fn=_sigint_default,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready == b"ready\n", f"child did not start: {ready!r} {process.stderr.read()!r}"  # type: ignore[union-attr]
        delay = rng.uniform(0.0, MAX_DELAY)
        time.sleep(delay)  # the one deliberate sleep: the random moment of the Ctrl-C
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=ROUND_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, f"round {number} ({mode}, restrict={restrict}): no report; stderr:\n{err.decode()}"
    report: dict[str, Any] = json.loads(lines[-1])
    report.update(mode=mode, restrict=restrict, delay=delay, first=first, path=str(path), number=number)
    conn = sqlite3.connect(path)
    try:
        report["ids"] = sorted(
            r[0] for r in conn.execute("SELECT key FROM mc_results WHERE namespace = 'default'").fetchall()
        )
        stored = conn.execute("SELECT stored FROM mc_namespaces WHERE namespace = 'default'").fetchone()
        report["kept_count"] = None if stored is None else stored[0]
    finally:
        conn.close()
    report["integrity"] = sqlite_integrity(path)
    return report


def check(report: dict[str, Any]) -> list[str]:
    """What is wrong with one round's outcome (empty when it kept every guarantee)."""
    from factories import result_for

    where = f"round {report['number']} ({report['mode']}, restrict={report['restrict']}, delay={report['delay']:.3f})"
    problems: list[str] = []
    if report["exit"] != "KeyboardInterrupt":
        problems.append(f"{where}: trio.run ended with {report['exit']}:\n{report.get('error')}")
        return problems
    accepted, added, first = report["accepted"], report["added"], report["first"]
    if report["state"] != "closed":
        problems.append(f"{where}: store state {report['state']!r} after the block")
    if report["unpersisted"]:
        problems.append(f"{where}: {len(report['unpersisted'])} results unpersisted on a healthy database")
    if accepted - added not in (0, 1):
        problems.append(f"{where}: the store accepted {accepted}, the loop counted {added}")
    expected = sorted(result_for(i).key for i in range(first, first + accepted) if i not in set(report["unpersisted"]))
    if report["ids"] != expected:
        missing = len(set(expected) - set(report["ids"]))
        extra = len(set(report["ids"]) - set(expected))
        problems.append(f"{where}: {missing} accepted results missing from the file, {extra} unexpected rows")
    if report["kept_count"] != len(report["ids"]):
        problems.append(f"{where}: mc_namespaces.stored={report['kept_count']}, rows={len(report['ids'])}")
    if report["integrity"] != "ok":
        problems.append(f"{where}: integrity_check: {report['integrity']}")
    return problems


@pytest.mark.slow
def test_ctrl_c_at_random_moments_leaves_as_keyboard_interrupt_and_loses_nothing(tmp_path: Path) -> None:
    count = rounds()
    seed = random.randrange(2**32)
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda n: run_round(tmp_path, n, seed + n), range(count)))
    problems = [problem for report in reports for problem in check(report)]
    summary = f"{len(problems)} problems in {count} rounds (seed {seed})"
    assert not problems, summary + "\n" + "\n".join(problems)
