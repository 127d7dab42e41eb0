"""The documentation site's examples and claims: the programs run and print what the pages say,
the PostgreSQL how-to's SQL works, every test the pages cite exists, every public name has its
directive. (``make docs`` builds the site itself, strictly: see docs/conf.py.)"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio
from shutdown_checks import child_env, sqlite_results

import mcstore
import mcstore.mission
from mcstore.testing import pgserver

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"


def pages() -> list[Path]:
    """Every source page of the site."""
    return sorted(
        p for p in DOCS.rglob("*")
        if p.suffix in (".md", ".rst") and not any(part.startswith("_") for part in p.relative_to(DOCS).parts)
    )


def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run ``docs/examples/<name>`` in the current directory, as a program; the lines it printed."""
    path = EXAMPLES / name
    exec(compile(path.read_text(), str(path), "exec"), {"__name__": "__main__"})
    return capsys.readouterr().out.splitlines()


def test_every_example_is_shown_on_a_page() -> None:
    # A program in docs/examples/ that no page includes would be tested but never read.
    shown = "\n".join(p.read_text() for p in pages())
    for example in sorted(EXAMPLES.glob("*.py")):
        assert f"examples/{example.name}" in shown, f"no page includes {example.name}"


def test_tutorial_programs_record_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the tutorial says a second run prints the same
        assert run_example("record.py", capsys) == ["2 accepted", "closed: 2 stored, 0 not durable"]
        assert run_example("read_back.py", capsys) == [
            "1 2026-01-01T12:00:01+00:00 failed: temporary_channel_failure",
            "2 2026-01-01T12:00:03+00:00 succeeded",
        ]
    assert [r.id for r in sqlite_results(tmp_path / "tutorial.sqlite")] == [1, 2]


def test_mission_control_example_prints_its_figures_on_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The figures its comments quote, on a second run too (it once printed 0.0 where its
    # comment said 0.6: the first run's failure was still in the file).
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        out = run_example("mission_control.py", capsys)
        assert out[:6] == ["0.6", "None", "0.0", "0.2", "0.6", "0.95"]
        assert out[6].startswith("02aaaa -> 03bbbb") and out[7].startswith("03bbbb -> 02cccc")
        assert out[8:] == ["0.1"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2], ids=["at-ready", "50ms", "200ms"])
def test_sigterm_example_closes_the_store_and_loses_nothing(
    tmp_path: Path, signum: signal.Signals, delay: float
) -> None:
    # The how-to's program runs as a program of its own (a signal must reach it, not pytest),
    # in a real process: SIGTERM (or Ctrl-C) at a moment after it printed "ready" ends it with
    # the store's close, and the file holds every result the store accepted.
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "sigterm.py")],
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
    found = re.fullmatch(r"closed: (\d+) accepted, (\d+) not durable", lines[-1])
    assert found is not None, lines
    accepted, not_durable = int(found[1]), int(found[2])
    assert accepted >= 1 and not_durable == 0
    assert [r.id for r in sqlite_results(tmp_path / "service.sqlite")] == list(range(1, accepted + 1))


def _statements(sql: str) -> list[str]:
    """The statements of a block of the how-to, one by one (CREATE DATABASE cannot share a
    transaction with others, and a string of several statements runs as one)."""
    code = re.sub(r"--[^\n]*", "", sql)
    return [s.strip() for s in code.split(";") if s.strip()]


def test_postgresql_howto_roles_work(pg_server: pgserver.PostgresServer) -> None:
    # The how-to's SQL, run as it is written (the names made unique on this server), gives a
    # role that can open a store and a role that can read it and nothing more; and a role that
    # does not own its database cannot create tables in `public` (PostgreSQL 15 and newer).
    import psycopg

    page = (DOCS / "howto" / "postgresql.md").read_text()
    setup_sql, schema_sql = re.findall(r"```sql\n(.*?)```", page, flags=re.S)[:2]
    (node_url,) = set(re.findall(r"postgresql://mcnode:PASSWORD@db\.example:5432/lightning\?options=[^\s'`]+", page))
    suffix = uuid.uuid4().hex[:8]

    def unique(text: str) -> str:
        return re.sub(r"\b(mcnode|mcreader|lightning)\b", lambda m: f"{m[1]}_{suffix}", text)

    admin = urlsplit(pg_server.dsn)
    server = f"{admin.hostname}:{admin.port}"
    database = f"lightning_{suffix}"

    def url(role: str, *, schema: bool = True) -> str:
        chosen = unique(node_url).replace("db.example:5432", server).replace(f"mcnode_{suffix}", role)
        return chosen if schema else chosen.split("?")[0]

    try:
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            for statement in _statements(unique(setup_sql)):
                conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        pytest.skip(f"the server's role cannot create roles ({exc}): the how-to needs a superuser")
    try:
        with psycopg.connect(admin._replace(path=f"/{database}").geturl(), autocommit=True) as conn:
            for statement in _statements(unique(schema_sql)):
                conn.execute(statement)
        route = mcstore.Route(source_pubkey=bytes.fromhex("02" + "11" * 32), total_amount_msat=1, hops=[])

        async def main() -> None:
            with pytest.raises(mcstore.StoreError, match="permission denied for schema public"):
                async with mcstore.open_store(url(f"mcnode_{suffix}", schema=False)):
                    pass
            async with mcstore.open_store(url(f"mcnode_{suffix}"), namespace="node-1") as store:
                store.add_result(mcstore.PaymentResult(id=1, time_fwd_ns=1, time_reply_ns=1, route=route))
            reader = await mcstore.backends.open_reader(url(f"mcreader_{suffix}"))
            try:
                assert await reader.namespaces() == {"node-1": 1}
            finally:
                await reader.aclose()
            with pytest.raises(mcstore.StoreError, match="permission denied for table mc_namespaces"):
                async with mcstore.open_store(url(f"mcreader_{suffix}"), namespace="node-2"):
                    pass

        trio.run(main)
    finally:
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for role in ("mcnode", "mcreader"):
                conn.execute(f'DROP ROLE IF EXISTS "{role}_{suffix}"')


def _cited_tests(text: str) -> list[tuple[str, str | None]]:
    """Every ``tests/test_x.py`` and ``::name`` a page cites, a name with the file cited last."""
    cited: list[tuple[str, str | None]] = []
    current = None
    for match in re.finditer(r"([\w/.]+\.py)\b|::(\w+)", text):
        if match[1]:
            # A file of the tests ("tests/test_x.py", or "test_x.py" after one); another file's
            # "::name" (benchmarks/common.py::ThreadFloor) is not a test.
            file = match[1].removeprefix("tests/")
            current = file if "/" not in file and file.startswith("test_") else None
            if current is not None:
                cited.append((current, None))
        elif current is not None:
            cited.append((current, match[2]))
    return cited


@pytest.mark.parametrize("page", ["guarantees.md", "howto/signals.md", "howto/postgresql.md", "README.md"])
def test_every_test_a_page_cites_exists(page: str) -> None:
    # A guarantee is only as good as the test it cites: a renamed or deleted test must not
    # leave a page pointing at nothing.
    path = ROOT / page if page == "README.md" else DOCS / page
    cited = _cited_tests(path.read_text())
    if page == "guarantees.md":
        assert len(cited) > 40
    for file, name in cited:
        source = ROOT / "tests" / file
        assert source.exists(), f"{page} cites {file}, which does not exist"
        if name is not None:
            defined = re.search(rf"^\s*(?:async def|def|class) {name}\b", source.read_text(), flags=re.M)
            assert defined, f"{page} cites {file}::{name}, which does not exist"


def _documented_names() -> set[str]:
    """Names that the reference pages' autodoc directives document, in full (``mcstore.X``)."""
    names: set[str] = set()
    for page in (DOCS / "reference").glob("*.rst"):
        module = None
        for line in page.read_text().splitlines():
            if found := re.match(r"\.\. (?:module|currentmodule):: (\S+)", line):
                module = found[1]
            elif found := re.match(r"\.\. (?:auto\w+|data|function|class|exception):: (\S+)", line):
                name = found[1]
                names.add(name if name.startswith("mcstore.") or module is None else f"{module}.{name}")
    return names


@pytest.mark.parametrize("module", [mcstore, mcstore.mission], ids=lambda m: m.__name__)
def test_every_public_name_has_its_reference_entry(module: object) -> None:
    # The build checks the same on the built site (docs/conf.py); this finds a forgotten
    # directive without building.
    documented = _documented_names()
    missing = [name for name in module.__all__ if f"{module.__name__}.{name}" not in documented]  # type: ignore[attr-defined]
    assert not missing, f"no reference page documents {missing}"


def test_the_cli_page_documents_every_command_of_the_group() -> None:
    from mcstore.cli import cli

    page = (DOCS / "reference" / "cli.md").read_text()
    assert re.search(r"```\{click\} mcstore\.cli:cli\n:prog: mcstore\n:nested: full\n```", page)
    table = page.split("## What each command does")[1].split("\n## ")[0]
    for name in cli.commands:
        assert f"| `{name} " in table, f"the CLI page's table does not describe `mcstore {name}`"


# -- Args: and Raises: on the public API -----------------------------------------------------

RECORDS = {
    # Made by mcstore and handed to the caller (their fields are documented as attributes):
    # a constructor a program does not call needs no Args: section (their methods do).
    "mcstore.FetchOutcome", "mcstore.FlushOutcome", "mcstore.MissionControlStore", "mcstore.ResultIterator",
    "mcstore.StoreStats", "mcstore.mission.EstimatorScores", "mcstore.mission.Evaluation",
    "mcstore.mission.FitResult", "mcstore.mission.FitScores", "mcstore.mission.Interpretation",
    "mcstore.mission.MissionControl", "mcstore.mission.NodeResults", "mcstore.mission.PairOutcome",
    "mcstore.mission.Parameter", "mcstore.mission.ReliabilityBin", "mcstore.mission.Scores",
    "mcstore.mission.TimedPairResult",
}
LND_STEPS = {
    # The bimodal and apriori estimators' intermediate functions, public as lnd's are, so that
    # the tests can check each against lnd's vectors; pair_probability is what a caller calls.
    "primitive", "integral", "probability_formula", "can_send", "cannot_send", "direct_probability",
    "calculate_probability", "capacity_factor",
}


def _public_callables() -> list[tuple[str, object, str]]:
    """(name, callable, docstring) of every function, constructor and public method that a
    program calls or implements: the two ``__all__`` lists, less enums, exceptions, the
    constructors of records, and the implementations of a protocol's methods (the protocol's
    own method says what they take: :class:`mcstore.Backend`, :class:`mcstore.mission.Estimator`,
    :class:`mcstore.mission.PairLearner`)."""
    import enum
    import inspect
    from typing import Protocol

    public = [(f"{m.__name__}.{name}", getattr(m, name)) for m in (mcstore, mcstore.mission) for name in m.__all__]
    protocols = [obj for _, obj in public if inspect.isclass(obj) and Protocol in obj.__mro__[1:]]
    found: list[tuple[str, object, str]] = []
    for full, obj in public:
        if inspect.isfunction(obj) or inspect.isfunction(getattr(obj, "__wrapped__", None)):
            found.append((full, obj, obj.__doc__ or ""))
            continue
        if not inspect.isclass(obj) or issubclass(obj, (BaseException, enum.Enum)):
            continue
        is_protocol = obj in protocols
        if full not in RECORDS and not is_protocol:
            found.append((full, obj, obj.__doc__ or ""))
        implemented = set()
        if not is_protocol:
            for protocol in protocols:
                if _implements(obj, protocol):
                    implemented.update(vars(protocol))
        for attr, value in vars(obj).items():
            function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            if attr.startswith("_") or attr in LND_STEPS or attr in implemented or not inspect.isfunction(function):
                continue
            if any(attr in vars(base) for base in obj.__mro__[1:] if base is not object):
                continue  # an override (Mapping.get): its base says what it takes
            found.append((f"{full}.{attr}", function, function.__doc__ or ""))
    return found


def _implements(cls: type, protocol: type) -> bool:
    """Whether ``cls`` has every public method of ``protocol``."""
    names = [name for name in vars(protocol) if not name.startswith("_") and callable(vars(protocol)[name])]
    return bool(names) and all(callable(getattr(cls, name, None)) for name in names)


def _section(doc: str, title: str) -> str | None:
    """The text of a Google-style section of ``doc`` (``Args:``), or None."""
    lines = inspect_cleandoc(doc).splitlines()
    if f"{title}:" not in lines:
        return None
    start = lines.index(f"{title}:") + 1
    body = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        body.append(line)
    return "\n".join(body)


def inspect_cleandoc(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)


def _raises(obj: object) -> bool:
    """Whether the code of ``obj`` (a class: its ``__init__``) has a ``raise`` statement."""
    import ast
    import inspect
    import textwrap

    code = vars(obj).get("__init__") if isinstance(obj, type) else obj
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(code))))  # type: ignore[arg-type]
    except (TypeError, OSError):
        return False
    return any(isinstance(node, ast.Raise) for node in ast.walk(tree))


def test_the_public_api_has_args_and_raises_sections() -> None:
    # What a program calls says what it takes (every parameter, in Args:) and, when its code
    # raises, what it raises (Raises:), as napoleon renders them on the reference pages.
    import inspect

    if mcstore.COMPILED:
        pytest.skip("the compiled core keeps no docstrings: the pure pass checks them, as the docs are built")

    problems = []
    for name, obj, doc in _public_callables():
        try:
            signature = inspect.signature(obj)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
        if not params:
            continue
        args = _section(doc, "Args")
        if args is None:
            problems.append(f"{name}: no Args: section")
        else:
            for p in params:
                stars = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
                if not re.search(rf"^    {re.escape(stars + p.name)}( \(.*\))?:", args, flags=re.M):
                    problems.append(f"{name}: Args: does not describe {stars}{p.name}")
        if _raises(obj) and _section(doc, "Raises") is None:
            problems.append(f"{name}: raises, but has no Raises: section")
    assert not problems, "\n".join(problems)
