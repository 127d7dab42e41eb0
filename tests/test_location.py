"""Locations (``mcstore.backends.location``): what may be shown of one (never a password), which
are refused (what is not durable storage), and the library's messages, reprs, exceptions and
log records, none of which shows a password (issue 17, items 1, 2 and 6; issue 19's multi-host
URL)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import trio
from factories import result
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from mcstore import StoreError, open_store
from mcstore.backends import (
    InvalidLocation,
    PostgresBackend,
    SQLiteBackend,
    backend_for_path,
    classify_location,
    open_reader,
    redact_location,
    scrub_secrets,
)
from mcstore.backends import location as location_module
from mcstore.backends._pgconn import DriverError, PgSession
from mcstore.backends.location import password_forms, remember_secrets

BUDGET = 30.0


def windows(secret: str, size: int = 6) -> set[str]:
    """Every piece of ``secret`` of ``size`` characters (the whole of a shorter one)."""
    if len(secret) <= size:
        return {secret}
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def assert_hidden(text: str, *secrets: str) -> None:
    """No ``size``-character piece of any form of any secret (as written, percent-decoded) is in ``text``."""
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), _unquoted(secret)}:
            for piece in windows(form):
                assert piece not in text, (piece, text)


def _unquoted(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text, errors="replace")


def exception_text(exc: BaseException) -> str:
    """What a traceback of ``exc`` shows but the source lines: the message of it and of every
    exception it chains to (as printed: a suppressed context is left out)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += traceback.format_exception_only(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "".join(parts)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- what may be shown --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("postgresql://mc:S3cret@127.0.0.1:5432/lightning", "postgresql://mc@127.0.0.1:5432/lightning"),
        ("POSTGRES://mc:S3cret@h/db", "POSTGRES://mc@h/db"),
        ("postgresql://mc@h/db?password=S3cret&sslmode=disable", "postgresql://mc@h/db?sslmode=disable"),
        ("postgresql://mc@h/db?sslmode=disable&p%61ssword=S3cret", "postgresql://mc@h/db?sslmode=disable"),
        ("postgresql://mc@h/db?sslpassword=S3cret", "postgresql://mc@h/db"),
        ("postgresql://:S3cret@h/db", "postgresql://@h/db"),
        # issue 19: a multi-host URL as written, hosts and ports not regrouped
        (
            "postgresql://postgres:S3cret@127.0.0.1:54401,127.0.0.1:54402/lightning?target_session_attrs=read-write",
            "postgresql://postgres@127.0.0.1:54401,127.0.0.1:54402/lightning?target_session_attrs=read-write",
        ),
        # passwords that do not parse
        ("postgresql://mc:Pw%zzSECRET@host/db", "postgresql://mc@host/db"),
        ("postgresql://mc:pa@ssSECRET@host/db", "postgresql://mc@host/db"),
        ("postgresql://mc:pa/ssSECRET@host/db", "postgresql://mc@..."),
        ("postgresql://mc:pa?ssSECRET@host/db", "postgresql://mc@..."),
        ("postgresql://mc:pa#ssSECRET@host/db", "postgresql://mc@..."),
        ("postgresq://mc:S3cret@h/db", "postgresq://mc@h/db"),  # a misspelt scheme too
        # an '@' after the host: where the user info, or a password parameter, ends is unknown
        ("postgresql://0:@/::::@0:5432/0", "postgresql://0@..."),
        ("postgresql://u:pw@host/db?application_name=a@b&password=SECRET1", "postgresql://u@..."),
        ("postgresql://u:pw@host/db?sslmode=require&password=abc@SECRET2", "postgresql://u@..."),
        ("postgresql://host/db?application_name=a@b&password=SECRET3", "postgresql://host@..."),
        # a password parameter with an unencoded '&' or '#': the rest of it is not shown either
        ("postgresql://h/db?password=ab&SECRET4&sslmode=disable", "postgresql://h/db?sslmode=disable"),
        ("postgresql://h/db?password=ab#SECRET5", "postgresql://h/db"),
        ("postgresql://h/db?password=ab&X=SECRET6&sslmode=disable", "postgresql://h/db?sslmode=disable"),
        # libpq key=value strings
        ("host=h port=5 password=S3cret dbname=x", "host=h port=5 dbname=x"),
        (r"host=h password = 'S3 c\'ret' dbname=x", "host=h dbname=x"),
        ("host=h password='S3cret dbname=x", "host=h"),  # no closing quote
        ("host=h sslpassword=S3cret oops password=S3cret", "host=h ..."),  # unparseable from 'oops' on
        # paths
        ("/var/lib/mcstore/mc.sqlite", "/var/lib/mcstore/mc.sqlite"),
        (Path("relative/mc.sqlite"), "relative/mc.sqlite"),
        (b"postgresql://mc:S3cret@h/db", "postgresql://mc@h/db"),
        (42, "<int>"),
    ],
)
def test_redact_location_removes_every_password_and_keeps_the_rest_as_written(location: object, shown: str) -> None:
    assert redact_location(location) == shown


@pytest.mark.parametrize(
    ("location", "forms"),
    [
        ("postgresql://mc:S%40cret@h/db", {"S%40cret", "S@cret"}),
        ("postgresql://mc:pa@ssSECRET@host/db", {"pa@ssSECRET", "ssSECRET"}),  # libpq would show 'ssSECRET@host'
        ("postgresql://mc@h/db?password=S%26x", {"S%26x", "S&x"}),
        (r"host=h password='S3 c\'ret'", {r"'S3 c\'ret'", "S3 c'ret"}),
        ("/var/lib/mc.sqlite", set()),
    ],
)
def test_password_forms_are_the_password_as_written_and_as_read(location: str, forms: set[str]) -> None:
    assert password_forms(location) == forms


def test_scrub_secrets_masks_remembered_passwords_and_redacts_urls() -> None:
    remember_secrets("postgresql://mc:Pw%zzSCRUBME1@host/db")
    text = 'invalid percent-encoded token: "Pw%zzSCRUBME1"; see postgresql://u:other7@h/db'
    assert scrub_secrets(text) == 'invalid percent-encoded token: "***"; see postgresql://u@h/db'


# Parts of a URL from lower-case letters and digits; passwords from anything but: so that a
# piece of a password can only be in what is shown if the password itself leaked.
_PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_PASSWORD = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Ll", "Nd", "Zl", "Zp")),
    min_size=6,
    max_size=24,
)


@contextlib.contextmanager
def registry_kept() -> Iterator[None]:
    """Forget, afterwards, the passwords remembered meanwhile (random ones would mask text)."""
    saved = location_module._remembered, location_module._by_length
    try:
        yield
    finally:
        location_module._remembered, location_module._by_length = saved


@given(user=_PLAIN, host=_PLAIN, db=_PLAIN, password=_PASSWORD)
# A password that starts with '@' and holds a '/': the first '@' ended the user info, and the
# rest of the password was shown as the path (found by this test).
@example(user="0", host="0", db="0", password="@/::::")
def test_no_piece_of_any_password_is_ever_shown(user: str, host: str, db: str, password: str) -> None:
    encoded = quote(password, safe="")
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    for location, as_meant in (
        (f"postgresql://{user}:{encoded}@{host}:5432/{db}", True),
        (f"postgresql://{user}:{password}@{host}:5432/{db}", False),  # not encoded: may not parse
        (f"postgresql://{user}@{host}/{db}?password={encoded}&sslmode=disable", True),
        (f"postgresql://{user}@{host}/{db}?password={password}&sslmode=disable", False),  # not encoded
        (f"host={host} password='{quoted}' dbname={db}", True),
    ):
        with registry_kept():
            assert_hidden(redact_location(location), password)
            try:
                kind = classify_location(location)
            except InvalidLocation as exc:
                assert not as_meant, location
                assert_hidden(str(exc), password)
                continue
        if as_meant:  # what is accepted is read by libpq as meant
            assert conninfo_to_dict(location)["password"] == password
            assert kind == ("sqlite" if location.startswith("host=") else "postgres")


# -- locations that are refused ------------------------------------------------------------------

NOT_DURABLE = ["", ":memory:", "file::memory:", "file:mc?mode=memory&cache=shared", "FILE:mc.sqlite", "file:"]


@pytest.mark.parametrize("location", [*NOT_DURABLE, "sqlite:///mc.sqlite", "postgresq://u@h/db"])
def test_classify_location_refuses_what_is_not_durable_storage_naming_it(location: str) -> None:
    with pytest.raises(InvalidLocation) as caught:
        classify_location(location)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{location!r}: ")


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("postgresql://mc:Pw%zzSECRET@host/db", "'%' that does not start a %XX escape"),
        ("postgresql://mc:pa@ssSECRET@host/db", "'@' in the user name or password must be percent-encoded"),
        ("postgresql://mc:pa/ssSECRET@host/db", "must be percent-encoded (%40, %2F, %3F, %23)"),
        ("postgresql://mc@host/d%zzb", "'%' that does not start a %XX escape"),
    ],
)
def test_classify_location_refuses_a_url_libpq_would_misread(location: str, problem: str) -> None:
    with pytest.raises(InvalidLocation, match=problem.replace("(", r"\(").replace(")", r"\)")) as caught:
        classify_location(location)
    assert_hidden(str(caught.value), "SECRET")


def test_classify_location_accepts_files_and_urls_and_says_which() -> None:
    assert classify_location("mc.sqlite") == "sqlite"
    assert classify_location("./file:mc.sqlite") == "sqlite"
    assert classify_location(Path("dir/mc.sqlite")) == "sqlite"
    assert classify_location("./:memory:") == "sqlite"  # a file of that name
    assert classify_location("postgresql://u:S%40x@h:5/db?sslmode=disable") == "postgres"
    with pytest.raises(TypeError, match="got 42"):
        classify_location(42)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A test run from an empty directory: whatever a refused open would create lands there."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield workdir


@pytest.mark.parametrize("location", NOT_DURABLE)
async def test_open_store_open_reader_and_sqlite_backend_refuse_what_is_not_durable(
    location: str, in_tmp: Path
) -> None:
    with pytest.raises(ValueError, match="lost when it closes|in-memory or temporary"):
        async with open_store(location):
            pass
    with pytest.raises(ValueError, match="lost when it closes|in-memory or temporary"):
        await open_reader(location)
    with pytest.raises(ValueError, match="lost when it closes|in-memory or temporary"):
        SQLiteBackend(location)
    with pytest.raises(ValueError, match="lost when it closes|in-memory or temporary"):
        backend_for_path(location)
    assert os.listdir(in_tmp) == [] and os.listdir(in_tmp.parent) == ["cwd"]


async def test_a_file_named_like_a_special_location_is_a_file(in_tmp: Path) -> None:
    async with open_store("./:memory:", max_records=0) as store:
        store.add_result(result(1))
    async with open_store(in_tmp / ":memory:", max_records=0) as store:
        assert [r.id for r in await store.fetch_all()] == [1]


# -- what the library raises, shows and logs -----------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "postgresql://mc:Pw%zzSECRET@127.0.0.1/db",
        "postgresql://mc:pa@ssSECRET@127.0.0.1/db",
        "postgresql://mc:pa/ssSECRET@127.0.0.1/db",
        "postgresql://mc:xSECRETx@127.0.0.1/db?bogus=1",
        "postgresql://mc@127.0.0.1/db?password=xSECRETx&bogus=1",
    ],
)
async def test_a_url_that_does_not_parse_raises_without_its_password(location: str) -> None:
    for attempt in (lambda: open_store(location).__aenter__(), lambda: open_reader(location)):
        with pytest.raises(ValueError) as caught:
            await attempt()
        assert_hidden(exception_text(caught.value), "SECRET")
    with pytest.raises(ValueError) as caught:
        PostgresBackend("host=127.0.0.1 password='SECRETsecret dbname=db")  # no closing quote
    assert_hidden(exception_text(caught.value), "SECRETsecret")


async def test_a_connect_that_fails_raises_without_the_password() -> None:
    url = f"postgresql://mc:{quote('p@ss/SECRET%', safe='')}@127.0.0.1:{closed_port()}/db"
    with pytest.raises(StoreError) as caught:
        async with open_store(url):
            pass
    text = exception_text(caught.value)
    assert "Connection refused" in text or "connection" in text
    assert_hidden(text, "p@ss/SECRET%")
    with pytest.raises(StoreError) as caught:
        await open_reader(url)
    assert_hidden(exception_text(caught.value), "p@ss/SECRET%")


async def test_driver_errors_come_out_scrubbed_and_unchained_only_if_they_show_a_password() -> None:
    remember_secrets("postgresql://mc:DRIVERsecret9@h/db")
    session = PgSession("test")

    def leaking() -> None:
        raise psycopg.OperationalError('could not translate host name "DRIVERsecret9@h"')

    def clean() -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    try:
        with pytest.raises(DriverError) as caught:
            await session.run(leaking)
        assert str(caught.value) == 'could not translate host name "***@h"'
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert_hidden(exception_text(caught.value), "DRIVERsecret9")
        with pytest.raises(DriverError) as caught:
            await session.run(clean)
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)

        def wrapped() -> None:
            raise StoreError("built from a driver's text: DRIVERsecret9")

        with pytest.raises(StoreError) as caught:
            await session.run(wrapped)
        assert str(caught.value) == "built from a driver's text: ***" and caught.value.__cause__ is None
    finally:
        await session.aclose()


def with_password(dsn: str, password: str) -> str:
    """``dsn`` (``postgresql://user@...``) with ``password``; the test server trusts any password."""
    user, at, rest = dsn.partition("@")
    assert at and ":" not in user.removeprefix("postgresql://")
    return f"{user}:{quote(password, safe='')}@{rest}"


async def test_reprs_messages_and_log_records_never_show_the_password(
    pg_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcstore")
    url = with_password(pg_dsn, "Re%pr@SECRET/x")
    shown: list[str] = []
    with trio.fail_after(BUDGET):
        backend = PostgresBackend(url)
        shown += [repr(backend), backend.where]
        async with open_store(backend, max_records=0) as store:
            shown.append(repr(store))
            store.add_result(result(1))
            await store.flush()
            assert [r.id async for r in store.iter_results()] == [1]
        reader = await open_reader(url)
        try:
            shown += [repr(reader), reader.location]
            snapshot = await reader.open_snapshot("default")
            shown.append(repr(snapshot))
            await snapshot.aclose()
        finally:
            await reader.aclose()
        sqlite = SQLiteBackend(tmp_path / "mc.sqlite")
        shown.append(repr(sqlite))
        # A log line that names the location, and one with a traceback that holds it.
        logging.getLogger("mcstore").warning("location %s", url)
        try:
            raise RuntimeError(f"failed on {url}")
        except RuntimeError:
            logging.getLogger("mcstore").exception("with a traceback")
    assert "postgresql://mcstore@" in repr(backend) and "PostgresBackend" in repr(backend)
    text = "\n".join(shown + [caplog.text] + [record.getMessage() for record in caplog.records])
    assert "Opened mission control store" in text
    assert_hidden(text, "Re%pr@SECRET/x")


def test_a_multi_host_url_is_shown_as_written() -> None:
    url = "postgresql://postgres:pw@127.0.0.1:54401,127.0.0.1:54402/lightning?target_session_attrs=read-write"
    backend = PostgresBackend(url)
    assert backend.where == (
        "postgresql://postgres@127.0.0.1:54401,127.0.0.1:54402/lightning?target_session_attrs=read-write"
    )
