"""The README's library example runs as written."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shutdown_checks import child_env, sqlite_results

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_library_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme"})
    assert os.path.exists(tmp_path / "mc.sqlite")


def test_readme_mission_control_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    section = README.read_text().split("<!-- mission:start -->")[1].split("<!-- mission:end -->")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Mission control section has one python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme"})
    # The figures its comments quote.
    out = capsys.readouterr().out.split("\n")
    assert out[:6] == ["0.6", "None", "0.0", "0.2", "0.6", "0.95"]
    assert out[6].startswith("02aaaa -> 03bbbb") and out[7].startswith("03bbbb -> 02cccc")
    assert out[8] == "0.1"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2], ids=["at-ready", "50ms", "200ms"])
def test_readme_sigterm_example_closes_the_store_and_loses_nothing(
    tmp_path: Path, signum: signal.Signals, delay: float
) -> None:
    # The block runs as a program of its own (a signal must reach it, not pytest), in a real
    # process: SIGTERM (or Ctrl-C) at a moment after it printed "ready" ends it with the
    # store's close, and the file holds every result the store accepted.
    section = README.read_text().split("<!-- sigterm:start -->")[1].split("<!-- sigterm:end -->")[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    process = subprocess.Popen(
        [sys.executable, "-c", block],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        time.sleep(delay)  # the moment of the signal, after the child said it is ready
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{signum.name}: closing the store"
    accepted, not_durable = map(int, re.fullmatch(r"closed: (\d+) accepted, (\d+) not durable", lines[-1]).groups())  # type: ignore[union-attr]
    assert accepted >= 1 and not_durable == 0
    assert [r.id for r in sqlite_results(tmp_path / "mc.sqlite")] == list(range(1, accepted + 1))
