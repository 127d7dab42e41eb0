"""The README: its example runs as written, on every run, and its claims hold. (The examples and
claims that moved to the documentation site are tested in test_docs.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_library_example_runs_and_prints_the_same_on_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (block,) = python_blocks()
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # what its comment says, on a second run in the same directory too
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
        assert capsys.readouterr().out == "1 durable\n"
    assert (tmp_path / "readme-example.sqlite").exists()


def test_no_two_examples_share_a_database_file() -> None:
    # A second example run in the same directory must not find the first one's history (the
    # README's mission control example once printed 0.0 where its comment said 0.6).
    examples = {"README.md": "\n".join(python_blocks())}
    examples.update({p.name: p.read_text() for p in sorted((ROOT / "docs" / "examples").glob("*.py"))})
    users: dict[str, set[str]] = {}
    for name, code in examples.items():
        for database in re.findall(r"[\"']([\w.-]+\.sqlite)[\"']", code):
            users.setdefault(database, set()).add(name)
    shared = {database: names for database, names in users.items() if len(names) > 1}
    # The tutorial's two programs share theirs on purpose: the second reads what the first wrote.
    assert shared == {"tutorial.sqlite": {"record.py", "read_back.py"}}


def test_readme_is_at_most_150_lines() -> None:
    assert len(README.read_text().splitlines()) <= 150


def test_readme_says_how_long_make_test_takes() -> None:
    (line,) = [line for line in README.read_text().splitlines() if line.startswith("make test")]
    assert re.search(r"\d+ min", line), line


def test_readme_links_lead_to_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the documentation"
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
