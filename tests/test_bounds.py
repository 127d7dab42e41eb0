"""Bounds on what mcstore accepts (issue 17, items 7 to 11 and 15): the arguments of
``MissionControl.probability``, ``max_records``, a namespace that cannot be stored, the lock
wait of a PostgreSQL open, the size of what ``import`` and ``import-lnd`` read; and the wording
of ``StoreBusy`` and ``PaymentFailure(code=...)``."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio
import trio.testing
from backend_fixtures import BackendFactory
from click.testing import CliRunner, Result
from factories import SOURCE, result
from lnd_fixture import build_channel_db

from mcstore import MAX_RECORDS, PaymentFailure, StoreError, encode_result, open_store
from mcstore.backends import DEFAULT_LOCK_TIMEOUT, MemoryBackend, PostgresBackend
from mcstore.cli import cli
from mcstore.cli.export import (
    MAX_FAILURE_MESSAGE_BYTES,
    MAX_HOPS,
    MAX_LINE_BYTES,
    RecordError,
    read_lines,
    result_to_json_line,
)
from mcstore.cli.lnd_import import MAX_VALUE_BYTES
from mcstore.mission import open_mission_control
from mcstore.model import TEMPORARY_CHANNEL_FAILURE, Hop, PaymentResult, Route

BUDGET = 30.0
PEER = bytes([3]) * 33


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(outcome: Result, exit_code: int, *needles: str) -> str:
    assert outcome.exit_code == exit_code, (outcome.exit_code, outcome.stdout, outcome.stderr)
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), outcome.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- item 7: MissionControl.probability checks its arguments -------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "text"),
    [
        ((SOURCE.hex(), PEER, 1000, 10), TypeError, r"from_pubkey must be bytes, got str '02"),
        ((SOURCE, PEER[:32], 1000, 10), ValueError, r"to_pubkey must be 33 bytes, got 32 bytes"),
        ((SOURCE, PEER, -1, 10), ValueError, r"amount_msat must be a u64 .*got -1"),
        ((SOURCE, PEER, 1000.0, 10), TypeError, r"amount_msat must be an int, got float 1000.0"),
        ((SOURCE, PEER, True, 10), TypeError, r"amount_msat must be an int, got bool True"),
        ((SOURCE, PEER, 2**64, 10), ValueError, r"amount_msat must be a u64 .*got 18446744073709551616"),
        ((SOURCE, PEER, 1000, -5), ValueError, r"capacity_sat must be a u64 .*got -5"),
        ((SOURCE, PEER, 1000, 1e6), TypeError, r"capacity_sat must be an int, got float"),
    ],
)
async def test_probability_checks_its_arguments_naming_the_value(
    autojump_clock: trio.testing.MockClock, args: tuple[object, ...], error: type[Exception], text: str
) -> None:
    async with open_mission_control(MemoryBackend(), self_pubkey=bytes([2]) * 33) as mc:
        with pytest.raises(error, match=rf"probability\(\): {text}"):
            mc.probability(*args)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"probability\(\): now_ns must be an int \(ns\) or None, got float"):
            mc.probability(SOURCE, PEER, 1000, 10, now_ns=1.5)  # type: ignore[arg-type]
        # bytes-like pubkeys are fine, as elsewhere in the API
        assert mc.probability(bytearray(SOURCE), memoryview(PEER), 1000, 10, now_ns=10**18) == pytest.approx(
            mc.probability(SOURCE, PEER, 1000, 10, now_ns=10**18)
        )


# -- item 8: one limit of max_records on every backend -----------------------------------------


async def test_max_records_from_2_to_the_63_is_refused_on_every_backend(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None
) -> None:
    assert MAX_RECORDS == 2**63 - 1
    for too_many in (MAX_RECORDS + 1, 2**64):
        with pytest.raises(ValueError, match=rf"max_records must be .*< 2\*\*63, got {too_many}"):
            async with open_store(make_backend(), max_records=too_many):
                pass
    with trio.fail_after(BUDGET):
        async with open_store(make_backend(), max_records=MAX_RECORDS) as store:
            store.add_result(result(1))
            await store.flush()  # on PostgreSQL, a cap past bigint failed every flush
            assert store.stats().stored == 1


def test_the_cli_refuses_max_records_past_the_limit(tmp_path: Path) -> None:
    outcome = run("demo", "--db", str(tmp_path / "d.sqlite"), "--payments", "1", "--max-records", str(2**63))
    assert outcome.exit_code == 2 and "--max-records" in outcome.stderr, outcome.stderr
    assert not (tmp_path / "d.sqlite").exists()


# -- item 9: a PostgreSQL open waits for a lock at most lock_timeout -----------------------------


async def test_a_postgresql_open_behind_a_table_lock_fails_after_lock_timeout(pg_dsn: str) -> None:
    assert PostgresBackend(pg_dsn).lock_timeout == DEFAULT_LOCK_TIMEOUT == 5.0
    with trio.fail_after(BUDGET):
        async with open_store(pg_dsn):  # creates the tables
            pass
    with psycopg.connect(pg_dsn) as other:  # a transaction, held until the block ends
        other.execute("LOCK TABLE mc_namespaces IN ACCESS EXCLUSIVE MODE")
        start = time.monotonic()
        with trio.fail_after(BUDGET), pytest.raises(StoreError, match=r"open .* waited longer than lock_timeout=0.5 s"):
            async with open_store(PostgresBackend(pg_dsn, lock_timeout=0.5)):
                pass
        assert time.monotonic() - start < 10
    with trio.fail_after(BUDGET):
        async with open_store(PostgresBackend(pg_dsn, lock_timeout=0.5)):  # free again
            pass


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan")])
def test_lock_timeout_is_a_positive_number_of_seconds(value: float) -> None:
    with pytest.raises(ValueError, match="lock_timeout must be a finite number of seconds > 0"):
        PostgresBackend("postgresql://u@h/db", lock_timeout=value)


# -- item 10: a namespace that cannot be stored is refused, named --------------------------------


@pytest.mark.parametrize(
    ("namespace", "text"),
    [
        ("\ud800", r"namespace must be encodable as UTF-8, got '\\ud800'"),
        ("a\udcffb", r"namespace must be encodable as UTF-8, got 'a\\udcffb'"),
        ("a\x00b", r"namespace must not hold a NUL character, got 'a\\x00b'"),
        ("", "namespace must be a non-empty str, got ''"),
    ],
)
async def test_a_namespace_that_cannot_be_stored_is_refused_naming_it(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None, namespace: str, text: str
) -> None:
    with pytest.raises(ValueError, match=text) as caught:
        async with open_store(make_backend(), namespace=namespace):
            pass
    assert type(caught.value) is ValueError  # not a bare UnicodeEncodeError
    str(caught.value).encode("utf-8")  # the message itself is printable


def test_the_cli_refuses_such_a_namespace_too(tmp_path: Path) -> None:
    outcome = run("demo", "--db", str(tmp_path / "d.sqlite"), "--payments", "1", "-n", "a\udcffb")
    assert outcome.exit_code == 2, outcome.stderr
    assert r"'a\udcffb'" in outcome.stderr and "Traceback" not in outcome.output


# -- item 11: the size of what import and import-lnd accept --------------------------------------


def big_result(*, hops: int = 1, message_bytes: int = 2) -> PaymentResult:
    failure = PaymentFailure(1, TEMPORARY_CHANNEL_FAILURE.to_bytes(2, "big") + bytes(message_bytes - 2))
    route = Route(SOURCE, 1000, [Hop(i, PEER, 1000) for i in range(hops)])
    return PaymentResult(1, 10, 20, route, failure)


def test_a_deeply_nested_line_is_one_error_line(tmp_path: Path) -> None:
    dump = tmp_path / "deep.jsonl"
    dump.write_text(result_to_json_line(result(1)) + "\n" + "[" * 200_000 + "]" * 200_000 + "\n")
    outcome = run("import", str(tmp_path / "db.sqlite"), str(dump))
    assert "nothing imported" in one_line_error(outcome, 1, f"{dump}:2: json: nested too deeply")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: big_result(hops=MAX_HOPS + 1), f"route.hops: {MAX_HOPS + 1} hops, more than the limit of {MAX_HOPS}"),
        (
            lambda: big_result(message_bytes=MAX_FAILURE_MESSAGE_BYTES + 1),
            f"failure.message: {MAX_FAILURE_MESSAGE_BYTES + 1} bytes, more than the limit of 65535",
        ),
    ],
)
def test_import_refuses_values_over_the_limits(tmp_path: Path, make: object, needle: str) -> None:
    dump = tmp_path / "big.jsonl"
    dump.write_text(result_to_json_line(make()) + "\n")  # type: ignore[operator]
    one_line_error(run("import", str(tmp_path / "db.sqlite"), str(dump)), 1, f"{dump}:1: {needle}")
    assert not (tmp_path / "db.sqlite").exists()


def test_import_takes_values_at_the_limits(tmp_path: Path) -> None:
    dump = tmp_path / "ok.jsonl"
    at_limits = [big_result(hops=MAX_HOPS), big_result(message_bytes=MAX_FAILURE_MESSAGE_BYTES)]
    dump.write_text("".join(result_to_json_line(r, raw=True) + "\n" for r in at_limits))
    assert max(len(line) for line in dump.read_bytes().splitlines()) < MAX_LINE_BYTES
    outcome = run("import", str(tmp_path / "db.sqlite"), str(dump), "--max-records", "0")
    assert outcome.exit_code == 0 and "Imported 2 records" in outcome.stdout, outcome.output


def test_import_refuses_a_line_over_the_limit_without_reading_it_whole(tmp_path: Path) -> None:
    dump = tmp_path / "long.jsonl"
    dump.write_text(result_to_json_line(result(1)) + "\n" + '{"id":' + " " * (3 * MAX_LINE_BYTES) + "1}\n")
    one_line_error(
        run("import", str(tmp_path / "db.sqlite"), str(dump)), 1, f"{dump}:2: json: line longer than {MAX_LINE_BYTES}"
    )


class EndlessLine(io.RawIOBase):
    """A stream of one line that never ends; counts what was read of it."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        buffer[:] = b"x" * len(buffer)
        self.served += len(buffer)
        return len(buffer)


def test_read_lines_holds_at_most_the_limit_and_a_chunk() -> None:
    stream = EndlessLine()
    lines: Iterator[bytes] = read_lines(io.BufferedReader(stream, 4096), limit=100_000, chunk=4096)
    with pytest.raises(RecordError) as caught:
        next(lines)
    assert caught.value.line == 1 and "line longer than 100000 bytes" in caught.value.problem
    assert stream.served <= 100_000 + 2 * 4096
    assert list(read_lines(io.BytesIO(b"a\nbb\n\nccc"), limit=3, chunk=2)) == [b"a\n", b"bb\n", b"\n", b"ccc"]
    with pytest.raises(RecordError) as caught:
        list(read_lines(io.BytesIO(b"a\nbbbb\n"), limit=3, chunk=2))
    assert caught.value.line == 2


def test_import_lnd_skips_rows_over_the_limits_as_bad_rows(tmp_path: Path) -> None:
    good = result(1)
    many_hops = big_result(hops=MAX_HOPS + 1)
    long_message = big_result(message_bytes=MAX_VALUE_BYTES + 10)
    key, value = encode_result(long_message)
    rows = [encode_result(good), encode_result(many_hops), (key[:-1] + b"\x09", value), (b"\x01" * 100, b"v")]
    lnd = tmp_path / "channel.sqlite"
    build_channel_db(str(lnd), {"default": rows})
    outcome = run("import-lnd", str(lnd), str(tmp_path / "db.sqlite"))
    assert outcome.exit_code == 0, outcome.output
    assert "Imported 1 results" in outcome.stdout and "3 undecodable rows skipped" in outcome.stdout
    assert f"route.hops: {MAX_HOPS + 1} hops, more than the limit of {MAX_HOPS}" in outcome.stderr
    assert f"more than the limit of {MAX_VALUE_BYTES}" in outcome.stderr
    assert "a key of 100 bytes, not 49" in outcome.stderr
    assert len(outcome.stderr) < 10_000  # no huge key or value echoed


# -- item 15: StoreBusy's wording, PaymentFailure(code=) -----------------------------------------


async def test_store_busy_names_the_result_by_its_id(autojump_clock: trio.testing.MockClock) -> None:
    async with open_store(MemoryBackend(), max_pending=1) as store:
        store.add_result(result(7))
        with pytest.raises(Exception, match=r"1 results are waiting .*; the result with id 8 was not accepted$"):
            store.add_result(result(8))


def test_payment_failure_takes_a_code_or_a_message() -> None:
    by_code = PaymentFailure(source_index=1, code=TEMPORARY_CHANNEL_FAILURE)
    assert by_code == PaymentFailure.from_code(source_index=1, code=TEMPORARY_CHANNEL_FAILURE)
    assert by_code == PaymentFailure(1, b"\x10\x07") and by_code.code == TEMPORARY_CHANNEL_FAILURE
    with pytest.raises(TypeError, match="message= or code=, not both"):
        PaymentFailure(1, b"\x10\x07", code=TEMPORARY_CHANNEL_FAILURE)
    with pytest.raises(ValueError, match=r"PaymentFailure code must be a u16 .*got 65536"):
        PaymentFailure(1, code=0x10000)
    with pytest.raises(TypeError, match="PaymentFailure code must be an int, got str"):
        PaymentFailure(1, code="0x1007")
    with pytest.raises(ValueError, match="requires a source_index"):
        PaymentFailure(code=TEMPORARY_CHANNEL_FAILURE)
    with pytest.raises(ValueError, match=r"PaymentFailure.from_code code must be a u16"):
        PaymentFailure.from_code(1, -1)
