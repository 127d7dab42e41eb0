"""No form of a PostgreSQL password is ever printed by ``mcstore`` (issue 17, items 1 and 2).

Every command of the click group (a command added later fails here until it has a recipe)
runs with ``-vv`` against a server that demands the password of its role (scram-sha-256 over
TCP, set up by changing the test server's ``pg_hba.conf``), on its success path with the
password in the URL's user info and in its query, and on failure paths: a password with a bad
percent-encoding, one with an unencoded '@', a wrong one, an unknown URL parameter, a server
that is down. No piece of 6 characters of any form of any password (as written, encoded,
decoded) may be in stdout, stderr or the log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from click.testing import CliRunner, Result
from lnd_fixture import build_channel_db_postgres
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from test_location import assert_hidden, closed_port

from mcstore import encode_result
from mcstore.cli import cli
from mcstore.cli.demo import simulate
from mcstore.testing.pgserver import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Zq7#Kx@v/W9%Rm?p:Lj&t=Hn 'B\\Y"
"""The role's password: every character that a URL must percent-encode, a quote, a backslash."""
WRONG = "Wr0ng#Pass!Yz"
BAD_PERCENT = "Pw%zzQ7vKx"
UNENCODED_AT = "pa@ssWq8Zt"
DOWN = "Cl0sed/Port!K"
_READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Places:
    """The URLs and files a recipe uses."""

    store: str
    """The demo's database: read by stats, export, querymc, queryprob."""
    target: str
    """Where import and import-lnd write."""
    scratch: str
    """What reset clears (after an import into it)."""
    lnd: str
    """An lnd node's database (channeldb_kv)."""
    jsonl: str
    """An export of the demo's database."""
    out: str
    """Where export writes."""


A = "02" + "11" * 32
B = "03" + "22" * 32

RECIPES: dict[str, Callable[[Places], list[list[str]]]] = {
    "demo": lambda p: [["demo", "--db", p.store, "--payments", "10", "--seed", "1", "--max-records", "0"]],
    "stats": lambda p: [["stats", p.store]],
    "export": lambda p: [["export", p.store, "-o", p.out, "--force"], ["export", p.store]],
    "import": lambda p: [["import", p.target, p.jsonl]],
    "import-lnd": lambda p: [["import-lnd", p.lnd, p.target]],
    "reset": lambda p: [["import", p.scratch, p.jsonl], ["reset", p.scratch, "--yes"]],
    "querymc": lambda p: [["querymc", p.store], ["querymc", p.store, "--json"]],
    "queryprob": lambda p: [["queryprob", p.store, A, B, "1000", "--capacity-sat", "100000"]],
    "eval": lambda p: [["eval", p.store, "--graph", "demo"], ["eval", p.store, "--graph", "demo", "--json"]],
    "fit": lambda p: [["fit", p.store, "--graph", "demo", "--estimator", "apriori", "--test-fraction", "0.5"]],
}
"""How to run each command successfully: every command of ``mcstore`` must have one."""


@dataclass(frozen=True)
class SecretServer:
    host: str
    port: int
    role: str
    schemas: dict[str, str]

    def url(self, schema: str, *, password: str = PASSWORD, in_query: bool = False, port: int | None = None,
            encode: bool = True, extra: str = "") -> str:
        secret = quote(password, safe="") if encode else password
        where = f"{self.host}:{port or self.port}/mcstore_test"
        options = f"options=-csearch_path%3D{self.schemas[schema]}{extra}"
        if in_query:
            return f"postgresql://{self.role}@{where}?password={secret}&{options}"
        return f"postgresql://{self.role}:{secret}@{where}?{options}"


def _wait_until_password_required(server: SecretServer) -> None:
    """Until the server has reloaded pg_hba.conf: a connect without the password is refused."""
    import time

    deadline = time.monotonic() + _READY_TIMEOUT
    url = f"postgresql://{server.role}@{server.host}:{server.port}/mcstore_test"
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                pass
        except psycopg.OperationalError as exc:
            if "password" in str(exc):
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError("the server still lets the role in without a password")
        time.sleep(0.02)  # polls a condition, with a deadline: the reload has no event to wait on


@pytest.fixture(scope="module")
def secret_server(pg_server: PostgresServer) -> Iterator[SecretServer]:
    """A role of the test server that must give its password over TCP, and schemas it owns."""
    if not pg_server.can_restart:
        pytest.skip("changes pg_hba.conf: needs a server the tests started (MCSTORE_PG_DSN is set)")
    params = conninfo_to_dict(pg_server.dsn)
    role = f"mc_secret_{uuid.uuid4().hex[:8]}"
    schemas = {name: f"{role}_{name}" for name in ("store", "target", "scratch", "lnd")}
    with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
        row = admin.execute("SHOW hba_file").fetchone()
        assert row is not None
        hba = Path(row[0])
        original = hba.read_text()
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
        try:
            admin.execute("SELECT pg_reload_conf()")
            create_role = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            admin.execute(create_role.format(sql.Identifier(role), sql.Literal(PASSWORD)))
            for schema in schemas.values():
                create_schema = sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}")
                admin.execute(create_schema.format(sql.Identifier(schema), sql.Identifier(role)))
            server = SecretServer(str(params["host"]), int(params["port"]), role, schemas)
            _wait_until_password_required(server)
            yield server
        finally:
            for schema in schemas.values():
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            hba.write_text(original)
            admin.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="module")
def places(secret_server: SecretServer, tmp_path_factory: pytest.TempPathFactory) -> Places:
    """The demo's database filled, its export, and lnd's database, all behind the password."""
    directory = tmp_path_factory.mktemp("secrets")
    lnd_rows = [encode_result(item.result) for item in simulate(5, seed=2, start_ns=10**18) if not item.duplicate]
    build_channel_db_postgres(secret_server.url("lnd"), {"default": lnd_rows})
    found = Places(
        store=secret_server.url("store"),
        target=secret_server.url("target"),
        scratch=secret_server.url("scratch"),
        lnd=secret_server.url("lnd"),
        jsonl=str(directory / "demo.jsonl"),
        out=str(directory / "out.jsonl"),
    )
    for args in RECIPES["demo"](found) + [["export", found.store, "-o", found.jsonl]]:
        assert run(args).exit_code == 0
    return found


def run(args: list[str]) -> Result:
    return CliRunner().invoke(cli, ["-vv", *args], catch_exceptions=False)


def shown_by(result: Result, caplog: pytest.LogCaptureFixture) -> str:
    """Everything the command showed: stdout, stderr and the log records (as formatted)."""
    records = [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    return "\n".join([result.stdout, result.stderr, caplog.text, *records])


def failing_places(server: SecretServer, good: Places) -> dict[str, tuple[Places, str]]:
    """Places that all point at one bad URL, by name, with the secret that URL holds."""
    bad = {
        "bad percent-encoding": (server.url("store", password=BAD_PERCENT, encode=False), BAD_PERCENT),
        "unencoded @": (server.url("store", password=UNENCODED_AT, encode=False), UNENCODED_AT),
        "wrong password": (server.url("store", password=WRONG), WRONG),
        "wrong password in the query": (server.url("store", password=WRONG, in_query=True), WRONG),
        "unknown parameter": (server.url("store", extra="&bogus=1"), PASSWORD),
        "server down": (server.url("store", password=DOWN, port=closed_port()), DOWN),
    }
    return {
        name: (replace(good, store=url, target=url, scratch=url, lnd=url), secret)
        for name, (url, secret) in bad.items()
    }


def test_every_command_has_a_recipe() -> None:
    assert set(cli.commands) == set(RECIPES), "add a recipe for every mcstore command to RECIPES"


@pytest.mark.parametrize("command", sorted(cli.commands))
@pytest.mark.parametrize("in_query", [False, True], ids=["password in user info", "password in query"])
def test_a_command_that_succeeds_shows_no_password(
    command: str, in_query: bool, secret_server: SecretServer, places: Places, caplog: pytest.LogCaptureFixture
) -> None:
    if in_query:
        places = replace(
            places, **{name: secret_server.url(name, in_query=True) for name in ("store", "target", "scratch", "lnd")}
        )
    shown = []
    for args in RECIPES[command](places):
        caplog.clear()
        result = run(args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        shown.append(shown_by(result, caplog))
    text = "\n".join(shown)
    assert_hidden(text, PASSWORD)
    assert f"postgresql://{secret_server.role}@" in text, text  # the location is shown, without the password


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_a_command_that_fails_shows_no_password(
    command: str, secret_server: SecretServer, places: Places, caplog: pytest.LogCaptureFixture
) -> None:
    for name, (bad, secret) in failing_places(secret_server, places).items():
        for args in RECIPES[command](bad):
            caplog.clear()
            result = run(args)
            assert result.exit_code == 1, (name, args, result.stdout, result.stderr)
            assert result.stderr.startswith("Error: "), (name, result.stderr)
            assert_hidden(shown_by(result, caplog), PASSWORD, secret)


def test_the_log_of_a_real_process_shows_no_password(secret_server: SecretServer, places: Places) -> None:
    """The same, through the real entry point and its own log handler on stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for args, code in (
        (["-vv", "import", places.target, places.jsonl], 0),
        (["-vv", "stats", secret_server.url("store", password=UNENCODED_AT, encode=False)], 1),
        (["-vv", "stats", secret_server.url("store", password=WRONG)], 1),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mcstore", *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        if code == 0:
            assert "DEBUG mcstore" in done.stderr and f"postgresql://{secret_server.role}@" in done.stderr
        assert_hidden(done.stdout + done.stderr, PASSWORD, UNENCODED_AT, WRONG)
