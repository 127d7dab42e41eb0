"""The README's library example runs as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

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
