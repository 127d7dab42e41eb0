"""Tests of the ``mcstore`` command, through its real entry points.

Most run the click group in-process with ``CliRunner``; the rest start ``python -m mcstore``
as a subprocess (help, a demo run, and Ctrl-C). These are sync tests: each command runs its
own ``trio.run``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from lnd_fixture import build_channel_db, build_channel_db_postgres
from strategies import payment_results

from mcstore import (
    FAILURE_CODE_NAMES,
    FlushError,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
    encode_result,
    open_store,
)
from mcstore.backends._lock import NamespaceLock, lock_path_for
from mcstore.backends.sqlite import SCHEMA_VERSION
from mcstore.cli import cli
from mcstore.cli.demo import MAX_HOPS, SyntheticNetwork, demo_network, simulate
from mcstore.cli.export import CSV_COLUMNS, format_time_ns, result_to_record
from mcstore.cli.ingest import store_all
from mcstore.model import (
    FEE_INSUFFICIENT,
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    MPP_TIMEOUT,
    TEMPORARY_CHANNEL_FAILURE,
    U64_MAX,
    UNKNOWN_NEXT_PEER,
)
from mcstore.testing import FaultyBackend, MemoryBackend
from mcstore.testing.pgserver import PostgresServer, scratch_schema

ROOT = Path(__file__).resolve().parent.parent
START_NS = 1_700_000_000 * 1_000_000_000
SUBCOMMANDS = ("demo", "stats", "export", "import", "import-lnd", "reset")

# -- helpers ----------------------------------------------------------------------------------


def run(*args: str, input: bytes | str | None = None) -> Result:
    """Run ``mcstore ARGS`` in-process, as the console script would."""
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def assert_one_line_error(result: Result, exit_code: int, *needles: str) -> str:
    """The command failed with ``exit_code`` and exactly one stderr line holding ``needles``."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert "Traceback" not in result.output
    return line


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sample_results() -> list[PaymentResult]:
    """Demo results plus the edge cases the demo never makes."""
    results = [item.result for item in simulate(15, seed=11, start_ns=START_NS) if not item.duplicate]
    pk = b"\x02" + b"\x07" * 32
    results += [
        PaymentResult(U64_MAX, U64_MAX, U64_MAX, Route(pk, U64_MAX, [Hop(U64_MAX, pk, U64_MAX, True, True)])),
        PaymentResult(7, 0, 1, Route(pk, 0, []), PaymentFailure()),
        PaymentResult(8, 5, 6, Route(pk, 1, []), PaymentFailure(3)),
        PaymentResult(9, 5, 6, Route(pk, 1, []), PaymentFailure(0, b"\xbe\xef" + b"\x00" * 300)),
    ]
    return results


def write_db(path: Path, results: Sequence[PaymentResult], namespace: str = "default") -> None:
    trio.run(lambda: store_all(str(path), results, namespace=namespace, max_records=0))


def fetch_all(path: Path, namespace: str = "default") -> list[PaymentResult]:
    async def main() -> list[PaymentResult]:
        async with open_store(path, namespace=namespace, max_records=0) as store:
            return await store.fetch_all()

    return trio.run(main)


def mc_rows(path: Path) -> list[tuple[str, bytes, bytes]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT namespace, key, value FROM mc_results ORDER BY 1, 2").fetchall()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_key(results: Sequence[PaymentResult]) -> list[PaymentResult]:
    """The store's view of ``results``: one per key, the first accepted one (dedup keeps what is stored)."""
    first: dict[bytes, PaymentResult] = {}
    for r in results:
        first.setdefault(r.key, r)
    return sorted(first.values(), key=lambda r: r.key)


@pytest.fixture
def sample_db(tmp_path: Path) -> Path:
    path = tmp_path / "mc.sqlite"
    write_db(path, sample_results())
    write_db(path, sample_results()[:3], namespace="other")
    return path


# -- entry points and help ------------------------------------------------------------------


def test_python_m_mcstore_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mcstore", "--help"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert name in proc.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str) -> None:
    result = run(name, "--help")
    assert result.exit_code == 0
    assert f"{name} [OPTIONS]" in result.stdout


def test_no_arguments_prints_help() -> None:
    result = CliRunner().invoke(cli, [])
    assert "Commands:" in result.output
    assert "demo" in result.output


def test_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'mcstore = "mcstore.cli:main"' in text


@pytest.mark.parametrize(
    "args, needle",
    [
        (("demo", "--payments", "many"), "--payments"),
        (("demo", "--payments", "-1"), "--payments"),
        (("stats",), "DB"),
        (("export", "x.sqlite", "--format", "xml"), "--format"),
        (("import", "x.sqlite", "f.jsonl", "--max-records", "-2"), "--max-records"),
        (("reset", "x.sqlite", "--namespace", ""), "--namespace"),
        (("frobnicate",), "frobnicate"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], needle: str) -> None:
    assert_one_line_error(run(*args), 2, needle)


# -- demo -----------------------------------------------------------------------------------


def test_demo_subprocess_then_a_second_run_continues(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "mcstore", "demo", "--payments", "200", "--db", str(db), "--seed", "7"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for word in ("accepted", "deduplicated", "pruned", "stored", "close time", "Seed 7"):
        assert word in proc.stdout
    assert "Proof:" in proc.stdout and ": OK" in proc.stdout
    first = mc_rows(db)
    assert 200 <= len(first) <= 1000
    first_max_id = max(int.from_bytes(key[8:16], "big") for _, key, _ in first)
    first_newest = max(key[:8] for _, key, _ in first)

    result = run("demo", "--payments", "100", "--db", str(db), "--seed", "8")
    assert result.exit_code == 0, result.output
    assert ": OK" in result.stdout
    second = mc_rows(db)
    assert len(second) == min(1000, len(second))
    new = [key for _, key, _ in second if key not in {k for _, k, _ in first}]
    assert new
    # The history continues: later ids, later replies.
    assert min(int.from_bytes(key[8:16], "big") for key in new) > first_max_id
    assert min(key[:8] for key in new) > first_newest


def test_demo_default_database_is_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("demo", "--payments", "20", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mcstore-demo.sqlite").exists()


def test_demo_prints_a_random_seed_that_repeats_the_run_byte_for_byte(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    result = run("demo", "--payments", "40", "--db", str(first))
    assert result.exit_code == 0
    seed = int(result.stdout.split("--seed ")[1].split(".")[0])
    again = run("demo", "--payments", "40", "--db", str(second), "--seed", str(seed))
    assert again.exit_code == 0
    line = next(x.split() for x in result.stdout.splitlines() if x.startswith("attempts sent"))
    assert line == next(x.split() for x in again.stdout.splitlines() if x.startswith("attempts sent"))
    # The same seed into a fresh database: the same rows, byte for byte (times included).
    assert mc_rows(first) and mc_rows(first) == mc_rows(second)
    # Continuing a history is deterministic too: it starts from what is stored, not the clock.
    for db in (first, second):
        assert run("demo", "--payments", "10", "--db", str(db), "--seed", "5").exit_code == 0
    assert mc_rows(first) == mc_rows(second)


def test_demo_without_cap_keeps_every_distinct_result(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    result = run("demo", "--payments", "150", "--db", str(db), "--seed", "3", "--max-records", "0")
    assert result.exit_code == 0, result.output
    summary = dict(
        line.split()[:2] for line in result.stdout.splitlines() if line[:1].isalpha() and len(line.split()) > 1
    )
    assert summary["pruned"] == "0"
    assert int(summary["stored"]) == len(mc_rows(db)) == int(summary["accepted"]) - int(summary["deduplicated"])


def test_demo_on_a_locked_namespace(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    lock = NamespaceLock(str(db), "default")
    lock.acquire()
    try:
        result = run("demo", "--payments", "5", "--db", str(db))
    finally:
        lock.release()
    line = assert_one_line_error(result, 1, str(db), "namespace 'default' is open in another")
    # The error comes before anything else, as one plain sentence.
    assert result.stdout == ""
    assert "(" not in line and ")" not in line


def test_demo_refuses_a_database_that_is_not_mcstores(tmp_path: Path) -> None:
    lnd = tmp_path / "channel.sqlite"
    build_channel_db(str(lnd), {})
    before = sha256(lnd)
    assert_one_line_error(run("demo", "--payments", "5", "--db", str(lnd)), 1, str(lnd), "not an mcstore database")
    assert sha256(lnd) == before


def test_demo_ctrl_c_closes_gracefully_with_summary_and_exit_130(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    proc = _start("demo", "--payments", str(10**7), "--db", str(db), "--seed", "1", "-vv")
    try:
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        err.wait_for("Stored mission control results")  # a flush has committed
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        stdout, stderr = out.rest(), err.rest()
    finally:
        _stop(proc)
    assert proc.returncode == 130, stderr
    assert "Interrupted by Ctrl-C" in stdout
    assert "close time" in stdout and ": OK" in stdout
    assert "Traceback" not in stderr
    proof = next(line for line in stdout.splitlines() if line.startswith("Proof:"))
    assert proof.startswith(f"Proof: {len(mc_rows(db))} records in the database, {len(mc_rows(db))} expected")


def test_simulation_is_deterministic_and_realistic() -> None:
    items = list(simulate(400, seed=5, start_ns=START_NS, first_id=100))
    assert items == list(simulate(400, seed=5, start_ns=START_NS, first_id=100))
    assert items != list(simulate(400, seed=6, start_ns=START_NS, first_id=100))
    results = [item.result for item in items]
    network = demo_network()
    assert {r.route.source_pubkey for r in results} == {network.source_pubkey}
    assert {len(r.route.hops) for r in results} == set(range(1, MAX_HOPS + 1))
    assert min(r.id for r in results) == 100
    for r in results:
        amounts = [hop.amount_to_forward_msat for hop in r.route.hops]
        assert amounts == sorted(amounts, reverse=True)
        assert r.route.total_amount_msat >= amounts[0]
        assert r.time_reply_ns > r.time_fwd_ns >= START_NS
        assert all(hop.pubkey[0] in (2, 3) for hop in r.route.hops)
        if r.failure is not None and r.failure.source_index is not None:
            assert r.failure.source_index <= len(r.route.hops)
            assert r.failure.code in FAILURE_CODE_NAMES
        if r.failure is not None and r.failure.code in (INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, MPP_TIMEOUT):
            assert r.failure.source_index == len(r.route.hops)
    codes = Counter(r.failure.code for r in results if r.failure is not None)
    assert codes.most_common(1)[0][0] == TEMPORARY_CHANNEL_FAILURE
    assert {FEE_INSUFFICIENT, UNKNOWN_NEXT_PEER, MPP_TIMEOUT, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS} <= set(codes)
    successes = sum(r.success for r in results)
    assert 0.15 < successes / len(results) < 0.5
    duplicates = [item for item in items if item.duplicate]
    assert duplicates and all(item.result in results[: results.index(item.result) + 1] for item in duplicates)
    keys = [r.key for r in results]
    assert keys != sorted(keys)  # replies come out of order
    assert len({r.id for r in results}) == len(results) - len(duplicates)


def test_network_shape() -> None:
    network = SyntheticNetwork(seed=1, nodes=50)
    assert len(network.pubkeys) == 50
    assert len({c.scid for c in network.channels}) == len(network.channels)
    assert len(network.peers[network.source]) == 6
    assert all((c.scid >> 40) >= 505_000 for c in network.channels)


# -- stats ----------------------------------------------------------------------------------


def test_stats(sample_db: Path) -> None:
    result = run("stats", str(sample_db))
    assert result.exit_code == 0, result.output
    out = result.stdout
    results = by_key(sample_results())
    assert f"schema version {SCHEMA_VERSION} (this mcstore writes {SCHEMA_VERSION})" in out
    assert "'default'" in out and "'other'" in out
    assert str(len(results)) in out
    failures = [r.failure for r in results if r.failure is not None]
    assert f"{len(results) - len(failures)}" in out and "successes" in out and "failures" in out
    top_name = Counter(f.code_name for f in failures if f.code_name).most_common(1)[0][0]
    assert top_name in out
    assert format_time_ns(results[0].time_reply_ns)[:19] in out
    assert format_time_ns(max(r.time_reply_ns for r in results))[:19] in out


def test_stats_of_one_namespace(sample_db: Path) -> None:
    result = run("stats", str(sample_db), "--namespace", "other")
    assert result.exit_code == 0
    assert "'other'" in result.stdout and "'default'" not in result.stdout



@pytest.mark.parametrize("command", ["stats", "reset"])
def test_a_namespace_that_does_not_exist_is_an_error_listing_those_that_do(sample_db: Path, command: str) -> None:
    rows = mc_rows(sample_db)
    extra = ["--yes"] if command == "reset" else []
    result = run(command, str(sample_db), "-n", "typo", *extra)
    assert_one_line_error(result, 1, str(sample_db), "namespace 'typo' does not exist", "'default', 'other'")
    assert result.stdout == ""
    assert mc_rows(sample_db) == rows


def test_stats_reports_and_keeps_undecodable_rows(sample_db: Path) -> None:
    bad_key = b"\x01" * 49
    with closing(sqlite3.connect(sample_db)) as conn:
        conn.execute("INSERT INTO mc_results VALUES ('default', ?, ?)", (bad_key, b"\xff\xff"))
        conn.commit()
    before = mc_rows(sample_db)
    result = run("stats", str(sample_db))
    assert result.exit_code == 0
    assert bad_key.hex() in result.stderr and "undecodable" in result.stderr
    assert "undecodable" in result.stdout
    export = run("export", str(sample_db))
    assert export.exit_code == 0 and bad_key.hex() in export.stderr
    assert len(export.stdout.splitlines()) == len(by_key(sample_results()))
    assert mc_rows(sample_db) == before


@pytest.mark.parametrize("command", ["stats", "export", "reset"])
def test_read_errors_are_one_line_and_touch_nothing(tmp_path: Path, command: str) -> None:
    extra = ["--yes"] if command == "reset" else []
    missing = tmp_path / "missing.sqlite"
    assert_one_line_error(run(command, str(missing), *extra), 1, str(missing), "no such file")
    assert not missing.exists()

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 10)
    assert_one_line_error(run(command, str(text), *extra), 1, str(text), "not an SQLite database")
    assert text.read_text() == "not a database\n" * 10

    other = tmp_path / "other.sqlite"
    build_channel_db(str(other), {})
    before = sha256(other)
    assert_one_line_error(run(command, str(other), *extra), 1, str(other), "not an mcstore database")
    assert sha256(other) == before


# -- export ---------------------------------------------------------------------------------


def test_export_jsonl(sample_db: Path) -> None:
    result = run("export", str(sample_db))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    results = by_key(sample_results())
    assert [r["id"] for r in records] == [r.id for r in results]
    for record, r in zip(records, results, strict=True):
        assert "raw_key" not in record
        assert record["time_reply_ns"] == r.time_reply_ns
        assert record["time_reply"] == format_time_ns(r.time_reply_ns)
        assert record["time_fwd"].endswith("Z")
        assert record["success"] is r.success
        assert record["route"]["source_pubkey"] == r.route.source_pubkey.hex()
        assert [h["pubkey"] for h in record["route"]["hops"]] == [h.pubkey.hex() for h in r.route.hops]
        if r.failure is None:
            assert record["failure"] is None
        else:
            assert record["failure"]["code"] == r.failure.code
            assert record["failure"]["code_name"] == r.failure.code_name


def test_export_raw_and_to_a_file(sample_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run("export", str(sample_db), "--raw", "-o", str(out), "--namespace", "other")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Exported 3 records" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record, r in zip(records, by_key(sample_results()[:3]), strict=True):
        assert (bytes.fromhex(record["raw_key"]), bytes.fromhex(record["raw_value"])) == encode_result(r)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_export_csv(sample_db: Path) -> None:
    result = run("export", str(sample_db), "--format", "csv", "--raw")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split(",") == [*CSV_COLUMNS, "raw_key", "raw_value"]
    results = by_key(sample_results())
    assert len(lines) == 1 + len(results)
    index = next(i for i, r in enumerate(results) if r.route.hops)
    first = lines[1 + index].split(",")
    r = results[index]
    assert first[0] == str(r.id)
    assert first[CSV_COLUMNS.index("hops")].split(";")[0].split(":")[:3] == [
        str(r.route.hops[0].channel_id),
        r.route.hops[0].pubkey.hex(),
        str(r.route.hops[0].amount_to_forward_msat),
    ]


def test_export_of_an_unknown_namespace_is_empty_with_a_warning(sample_db: Path) -> None:
    result = run("export", str(sample_db), "--namespace", "nope")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "'nope' holds no records" in result.stderr and "'default'" in result.stderr


# -- import and the round trip ----------------------------------------------------------------


def test_export_import_round_trip(sample_db: Path, tmp_path: Path) -> None:
    for flags in ([], ["--raw"]):
        dump = tmp_path / f"dump{len(flags)}.jsonl"
        assert run("export", str(sample_db), "-o", str(dump), *flags).exit_code == 0
        fresh = tmp_path / f"fresh{len(flags)}.sqlite"
        result = run("import", str(fresh), str(dump), "--max-records", "0")
        assert result.exit_code == 0, result.output
        assert fetch_all(fresh) == fetch_all(sample_db)


@settings(max_examples=15, deadline=None)
@given(st.lists(payment_results(), max_size=6))
def test_export_import_round_trip_of_any_results(results: list[PaymentResult]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source, target, dump = Path(tmp, "a.sqlite"), Path(tmp, "b.sqlite"), Path(tmp, "d.jsonl")
        write_db(source, results)
        assert run("export", str(source), "-o", str(dump), "--raw").exit_code == 0
        result = run("import", str(target), str(dump), "--max-records", "0")
        assert result.exit_code == 0, result.output
        assert fetch_all(target) == fetch_all(source) == by_key(results)


def test_import_from_stdin(sample_db: Path, tmp_path: Path) -> None:
    dump = run("export", str(sample_db)).stdout
    target = tmp_path / "t.sqlite"
    result = run("import", str(target), "-", "--max-records", "0", input=dump)
    assert result.exit_code == 0, result.output
    assert fetch_all(target) == fetch_all(sample_db)


def test_import_applies_dedup_and_the_cap(sample_db: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    run("export", str(sample_db), "-o", str(dump))
    target = tmp_path / "t.sqlite"
    total = len(by_key(sample_results()))
    result = run("import", str(target), str(dump), "--max-records", "10")
    assert result.exit_code == 0
    assert f"{total - 10} pruned" in result.stdout and "10 now stored" in result.stdout
    assert fetch_all(target) == by_key(sample_results())[-10:]
    again = run("import", str(target), str(dump), "--max-records", "0")
    assert again.exit_code == 0
    assert "10 deduplicated" in again.stdout
    assert fetch_all(target) == by_key(sample_results())


def test_import_with_a_progress_bar(sample_db: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    run("export", str(sample_db), "-o", str(dump))
    result = run("import", str(tmp_path / "t.sqlite"), str(dump), "--progress")
    assert result.exit_code == 0
    assert "validating" in result.stderr
    # The bar covers the write too.
    assert f"writing {len(by_key(sample_results()))} records in one transaction" in result.stderr


def test_import_of_an_empty_file_changes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = run("import", str(tmp_path / "t.sqlite"), str(empty))
    assert result.exit_code == 0
    assert not (tmp_path / "t.sqlite").exists()


def _good_record(result: PaymentResult) -> dict[str, Any]:
    return result_to_record(result, raw=True)


def _mutate(record: dict[str, Any], path: str, value: Any) -> None:
    """Set (or, with ``value`` DELETE, remove) the field at the dotted ``path``."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    target: Any = record
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value


DELETE = object()

BAD_FIELDS = [
    # (case, dotted path, new value, field named in the error)
    ("malformed hex", "route.source_pubkey", "zz" * 33, "route.source_pubkey"),
    ("short pubkey", "route.hops[0].pubkey", "02" * 32, "route.hops[0].pubkey"),
    ("wrong type: str id", "id", "12", "id"),
    ("wrong type: float", "time_fwd_ns", 1.5, "time_fwd_ns"),
    ("wrong type: bool amount", "route.total_amount_msat", True, "route.total_amount_msat"),
    ("wrong type: hops", "route.hops", {}, "route.hops"),
    ("out of range: negative", "time_reply_ns", -1, "time_reply_ns"),
    ("out of range: 2**64", "id", 2**64, "id"),
    ("out of range: u8", "failure", {"source_index": 256, "message": None}, "failure.source_index"),
    ("missing field", "route.hops[0].pubkey", DELETE, "route.hops[0].pubkey"),
    ("missing top-level field", "time_fwd_ns", DELETE, "time_fwd_ns"),
    ("unknown field", "sucess", True, "sucess"),
    ("ISO time disagrees", "time_reply", "2001-01-01T00:00:00.000000000Z", "time_reply"),
    ("ISO time malformed", "time_fwd", "yesterday", "time_fwd"),
    ("success disagrees", "success", False, "success"),
    ("raw bytes disagree", "raw_value", "00", "raw_value"),
    ("message without index", "failure", {"source_index": None, "message": "1007"}, "failure.message"),
]


def _bad_import_file(tmp_path: Path, bad_line: str) -> Path:
    """Lines 1, 2 and 4 are valid new results; line 3 is ``bad_line``."""
    fresh = [item.result for item in simulate(3, seed=99, start_ns=START_NS * 2) if not item.duplicate]
    lines = [json.dumps(_good_record(r)) for r in fresh[:3]]
    lines.insert(2, bad_line)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _assert_bad_import_changes_nothing(sample_db: Path, bad: Path, *needles: str) -> None:
    rows, digest = mc_rows(sample_db), sha256(sample_db)
    result = run("import", str(sample_db), str(bad))
    assert_one_line_error(result, 1, f"{bad}:3:", "nothing imported", *needles)
    assert mc_rows(sample_db) == rows
    assert sha256(sample_db) == digest


@pytest.mark.parametrize("case, path, value, field", BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_a_bad_import_line_names_line_and_field_and_imports_nothing(
    sample_db: Path, tmp_path: Path, case: str, path: str, value: Any, field: str
) -> None:
    success = next(r for r in sample_results() if r.success and r.route.hops)
    record = _good_record(success)
    _mutate(record, path, value)
    bad = _bad_import_file(tmp_path, json.dumps(record))
    _assert_bad_import_changes_nothing(sample_db, bad, f": {field}: ")


@pytest.mark.parametrize(
    "case, line, needle",
    [
        ("truncated JSON", None, "json: invalid JSON"),
        ("not an object", "[1, 2, 3]", "expected an object"),
        ("not UTF-8", "\udcff", "not UTF-8"),
    ],
)
def test_a_malformed_import_line_imports_nothing(
    sample_db: Path, tmp_path: Path, case: str, line: str | None, needle: str
) -> None:
    if line is None:
        full = json.dumps(_good_record(sample_results()[0]))
        line = full[: len(full) // 2]
    bad = tmp_path / "bad.jsonl"
    good = _bad_import_file(tmp_path, "{}").read_text().splitlines()
    good[2] = line
    bad.write_bytes("\n".join(good).encode("utf-8", "surrogateescape"))
    _assert_bad_import_changes_nothing(sample_db, bad, needle)


def test_truncated_json_names_the_field_it_stopped_in(sample_db: Path, tmp_path: Path) -> None:
    full = json.dumps(_good_record(sample_results()[0]))
    cut = full[: full.index('"route"') + 12]
    bad = _bad_import_file(tmp_path, cut)
    _assert_bad_import_changes_nothing(sample_db, bad, "'route'")


def test_import_errors(sample_db: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    assert_one_line_error(run("import", str(sample_db), str(missing)), 1, str(missing))
    lnd = tmp_path / "channel.sqlite"
    build_channel_db(str(lnd), {})
    dump = tmp_path / "d.jsonl"
    run("export", str(sample_db), "-o", str(dump))
    before = sha256(lnd)
    assert_one_line_error(run("import", str(lnd), str(dump)), 1, str(lnd), "not an mcstore database")
    assert sha256(lnd) == before
    lock = NamespaceLock(str(sample_db), "default")
    lock.acquire()
    try:
        assert_one_line_error(run("import", str(sample_db), str(dump)), 1, "'default'", "open in another")
    finally:
        lock.release()
    assert_one_line_error(run("import", str(tmp_path / "no" / "db.sqlite"), str(dump)), 1, "does not exist")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    assert_one_line_error(run("import", str(text), str(dump)), 1, str(text), "not an SQLite database")
    assert_one_line_error(run("demo", "--db", str(text), "--payments", "1"), 1, "not an SQLite database")
    assert text.read_text() == "hello\n"


# -- import-lnd -----------------------------------------------------------------------------


@pytest.fixture
def lnd_rows() -> dict[str, list[tuple[bytes, bytes]]]:
    results = sample_results()
    default = [encode_result(r) for r in results]
    # A corrupted value: the key is fine, the TLV stream is cut short.
    key, value = encode_result(results[0])
    corrupted = (key[:-1] + bytes([key[-1] ^ 1]), value[:20])
    return {"default": [*default, corrupted], "other": [encode_result(r) for r in results[:2]]}


def _lnd_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_import_lnd(tmp_path: Path, lnd_rows: dict[str, list[tuple[bytes, bytes]]], wal: bool) -> None:
    lnd_dir = tmp_path / "lnd"
    lnd_dir.mkdir()
    lnd = lnd_dir / "channel.sqlite"
    build_channel_db(str(lnd), lnd_rows, wal=wal)
    digest, files = sha256(lnd), _lnd_files(lnd_dir)
    db = tmp_path / "mc.sqlite"
    result = run("import-lnd", str(lnd), str(db), "--max-records", "0")
    assert result.exit_code == 0, result.output
    bad_key = lnd_rows["default"][-1][0]
    assert bad_key.hex() in result.stderr and "skipping undecodable row" in result.stderr
    assert "1 undecodable rows skipped" in result.stdout
    assert fetch_all(db) == by_key(sample_results())
    # lnd's file is untouched, and nothing was created beside it.
    assert sha256(lnd) == digest
    assert _lnd_files(lnd_dir) == files

    other = run("import-lnd", str(lnd), str(db), "--namespace", "other")
    assert other.exit_code == 0
    assert fetch_all(db, "other") == by_key(sample_results()[:2])
    assert sha256(lnd) == digest


def test_import_lnd_while_lnd_runs(tmp_path: Path, lnd_rows: dict[str, list[tuple[bytes, bytes]]]) -> None:
    lnd = tmp_path / "channel.sqlite"
    build_channel_db(str(lnd), {"default": lnd_rows["default"][:3]})
    # lnd keeps the file open; its latest writes are still in the WAL, not in the main file.
    with closing(sqlite3.connect(lnd)) as running:
        running.execute("PRAGMA wal_autocheckpoint = 0")
        bucket = running.execute("SELECT id FROM channeldb_kv WHERE key = ?", (b"default",)).fetchone()[0]
        for key, value in lnd_rows["default"][3:6]:
            running.execute("INSERT INTO channeldb_kv(key, value, parent_id) VALUES (?, ?, ?)", (key, value, bucket))
        running.commit()
        assert (tmp_path / "channel.sqlite-wal").exists()
        digest = sha256(lnd)
        db = tmp_path / "mc.sqlite"
        result = run("import-lnd", str(lnd), str(db), "--max-records", "0")
        assert result.exit_code == 0, result.output
        assert fetch_all(db) == by_key([r for r in sample_results()][:6])
        assert sha256(lnd) == digest


def test_import_lnd_errors(tmp_path: Path, lnd_rows: dict[str, list[tuple[bytes, bytes]]]) -> None:
    db = tmp_path / "mc.sqlite"
    missing = tmp_path / "missing.sqlite"
    assert_one_line_error(run("import-lnd", str(missing), str(db)), 1, str(missing), "no such file")
    assert not missing.exists()

    bolt = tmp_path / "channel.db"
    bolt.write_bytes(b"\x00" * 4096)
    assert_one_line_error(run("import-lnd", str(bolt), str(db)), 1, str(bolt), "not an SQLite database")

    plain = tmp_path / "plain.sqlite"
    with closing(sqlite3.connect(plain)) as conn:
        conn.execute("CREATE TABLE t(x)")
    assert_one_line_error(run("import-lnd", str(plain), str(db)), 1, str(plain), "no channeldb_kv table")

    fresh = tmp_path / "fresh-node.sqlite"
    build_channel_db(str(fresh), {}, results_bucket=False)
    assert_one_line_error(run("import-lnd", str(fresh), str(db)), 1, "no mission control history")

    lnd = tmp_path / "channel.sqlite"
    build_channel_db(str(lnd), lnd_rows)
    digest = sha256(lnd)
    assert_one_line_error(
        run("import-lnd", str(lnd), str(db), "--namespace", "nope"),
        1,
        "no mission control namespace 'nope'",
        "'default'",
    )
    assert_one_line_error(run("import-lnd", str(lnd), str(lnd)), 1, "lnd's own file")
    assert sha256(lnd) == digest
    assert not db.exists()


def test_import_lnd_from_a_node_on_postgresql(
    pg_server: PostgresServer, tmp_path: Path, lnd_rows: dict[str, list[tuple[bytes, bytes]]]
) -> None:
    with scratch_schema(pg_server.dsn, prefix="lnd") as lnd, scratch_schema(pg_server.dsn) as db:
        build_channel_db_postgres(lnd, lnd_rows)
        result = run("import-lnd", lnd, db, "--max-records", "0")
        assert result.exit_code == 0, result.output
        assert "1 undecodable rows skipped" in result.stdout
        assert fetch_all(db) == by_key(sample_results())  # type: ignore[arg-type]
        into_file = tmp_path / "mc.sqlite"  # from PostgreSQL into a file works too
        assert run("import-lnd", lnd, str(into_file), "--namespace", "other").exit_code == 0
        assert fetch_all(into_file, "other") == by_key(sample_results()[:2])
        assert_one_line_error(run("import-lnd", db, str(into_file)), 1, "no channeldb_kv table")


def test_every_database_argument_takes_a_postgresql_url(pg_dsn: str, pg_server: PostgresServer, tmp_path: Path) -> None:
    demo = run("demo", "--db", pg_dsn, "--payments", "20", "--seed", "3")
    assert demo.exit_code == 0, demo.output
    assert "nothing accepted was lost" in demo.stdout
    stats = run("stats", pg_dsn)
    assert stats.exit_code == 0 and "'default'" in stats.stdout, stats.output
    querymc = run("querymc", pg_dsn, "--json")
    assert querymc.exit_code == 0 and json.loads(querymc.stdout)["pairs"], querymc.output
    dump = tmp_path / "d.jsonl"
    assert run("export", pg_dsn, "-o", str(dump)).exit_code == 0
    exported = dump.read_text().splitlines()
    assert exported
    with scratch_schema(pg_server.dsn) as other:
        imported = run("import", other, str(dump))
        assert imported.exit_code == 0, imported.output
        assert f"Imported {len(exported)} records" in imported.stdout
        assert [r.key for r in fetch_all(other)] == [r.key for r in fetch_all(pg_dsn)]  # type: ignore[arg-type]
        cleared = run("reset", other, "--yes")
        assert cleared.exit_code == 0 and f"{len(exported)} records deleted" in cleared.stdout
        assert fetch_all(other) == []  # type: ignore[arg-type]
    # A URL's password is never shown (the test server trusts any password).
    with_password = pg_dsn.replace("postgresql://mcstore@", "postgresql://mcstore:hunter2@")
    assert with_password != pg_dsn

    async def reset_while_open() -> str:
        async with open_store(with_password):
            return await trio.to_thread.run_sync(
                lambda: assert_one_line_error(run("reset", with_password, "--yes"), 1, "open in another")
            )

    line = trio.run(reset_while_open)
    assert "hunter2" not in line and "postgresql://mcstore@" in line
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = assert_one_line_error(run("stats", f"postgresql://u:hunter2@127.0.0.1:{port}/db"), 1, "cannot connect")
    assert "hunter2" not in line


# -- reset ----------------------------------------------------------------------------------


def test_reset(sample_db: Path) -> None:
    rows = mc_rows(sample_db)
    assert_one_line_error(run("reset", str(sample_db)), 2, "--yes")
    assert mc_rows(sample_db) == rows

    result = run("reset", str(sample_db), "--yes")
    assert result.exit_code == 0
    assert f"{len(by_key(sample_results()))} records deleted" in result.stdout
    assert fetch_all(sample_db) == []
    assert fetch_all(sample_db, "other") == by_key(sample_results()[:3])

    again = run("reset", str(sample_db), "--yes")
    assert again.exit_code == 0 and "already empty" in again.stdout


def test_reset_of_a_locked_namespace(sample_db: Path) -> None:
    rows = mc_rows(sample_db)
    lock = NamespaceLock(str(sample_db), "other")
    lock.acquire()
    try:
        result = run("reset", str(sample_db), "--namespace", "other", "--yes")
    finally:
        lock.release()
    assert_one_line_error(result, 1, "'other'", "open in another")
    assert mc_rows(sample_db) == rows


# -- the all-or-nothing write behind import and import-lnd ------------------------------------


async def test_store_all_writes_nothing_when_the_flush_keeps_failing(autojump_clock: trio.abc.Clock) -> None:
    memory = MemoryBackend()
    backend = FaultyBackend(memory, fail_always=True)
    with pytest.raises(FlushError):
        await store_all(backend, sample_results(), max_records=0)
    assert memory.database.rows() == {}


async def test_store_all_succeeds_when_the_retry_at_close_does(autojump_clock: trio.abc.Clock) -> None:
    memory = MemoryBackend()
    backend = FaultyBackend(memory, fail_next=1)
    stats = await store_all(backend, sample_results(), max_records=0)
    assert memory.database.results() == by_key(sample_results())
    assert stats.flush_failures == 1


# -- issue 10: what a new user runs into ------------------------------------------------------


def _dir_listing(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.mark.parametrize(
    "case",
    ["the database itself", "a symlink to it", "a hard link to it", "its -wal file", "an lnd database"],
)
@pytest.mark.parametrize("force", [False, True], ids=["", "--force"])
def test_export_never_writes_over_a_database(sample_db: Path, tmp_path: Path, case: str, force: bool) -> None:
    output = tmp_path / "out"
    if case == "the database itself":
        output = sample_db
    elif case == "a symlink to it":
        output.symlink_to(sample_db)
    elif case == "a hard link to it":
        os.link(sample_db, output)
    elif case == "its -wal file":
        output = Path(f"{sample_db}-wal")
    else:
        build_channel_db(str(output), {})
    before = {p.name: sha256(p) for p in tmp_path.iterdir() if p.is_file()}
    result = run("export", str(sample_db), "-o", str(output), *(["--force"] if force else []))
    assert_one_line_error(result, 1, str(output), "refusing")
    assert {p.name: sha256(p) for p in tmp_path.iterdir() if p.is_file()} == before


def test_export_refuses_an_existing_file_unless_forced(sample_db: Path, tmp_path: Path) -> None:
    output = tmp_path / "notes.jsonl"
    output.write_text("keep me\n")
    assert_one_line_error(run("export", str(sample_db), "-o", str(output)), 1, str(output), "--force")
    assert output.read_text() == "keep me\n"
    result = run("export", str(sample_db), "-o", str(output), "--force")
    assert result.exit_code == 0, result.output
    assert output.read_text() == run("export", str(sample_db)).stdout
    locks = {Path(lock_path_for(str(sample_db), namespace)).name for namespace in ("default", "other")}
    assert _dir_listing(tmp_path) == {sample_db.name, output.name, *locks}


def test_export_to_a_directory_names_the_directory(sample_db: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    listing = _dir_listing(tmp_path)
    line = assert_one_line_error(run("export", str(sample_db), "-o", str(target)), 1, f"{target}: is a directory")
    assert "tmp" not in line.split(str(target))[-1]
    assert _dir_listing(tmp_path) == listing and _dir_listing(target) == set()
    missing = tmp_path / "no" / "out.jsonl"
    assert_one_line_error(run("export", str(sample_db), "-o", str(missing)), 1, "does not exist")


@pytest.mark.parametrize("existing", [False, True], ids=["new file", "--force over a file"])
def test_export_that_fails_half_way_leaves_nothing_half_written(
    sample_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    read_cmds = importlib.import_module("mcstore.cli.read_cmds")

    output = tmp_path / "out.jsonl"
    if existing:
        output.write_text("old\n")
    listing = _dir_listing(tmp_path)
    calls = 0
    real = read_cmds.result_to_json_line

    def failing(result: PaymentResult, *, raw: bool = False) -> str:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise OSError(28, "No space left on device")
        return real(result, raw=raw)

    monkeypatch.setattr(read_cmds, "result_to_json_line", failing)
    result = run("export", str(sample_db), "-o", str(output), "--force")
    assert_one_line_error(result, 1, "No space left on device")
    assert calls == 5
    assert _dir_listing(tmp_path) == listing
    if existing:
        assert output.read_text() == "old\n"


def test_export_summary_counts_the_undecodable_rows(sample_db: Path, tmp_path: Path) -> None:
    with closing(sqlite3.connect(sample_db)) as conn:
        conn.execute("INSERT INTO mc_results VALUES ('default', ?, ?)", (b"\x01" * 49, b"\xff\xff"))
        conn.commit()
    total = len(by_key(sample_results()))
    result = run("export", str(sample_db), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"Exported {total} records") and "skipped 1 undecodable row " in summary
    to_stdout = run("export", str(sample_db))
    assert f"exported {total} records" in to_stdout.stderr and "skipped 1 undecodable row " in to_stdout.stderr


def test_importing_csv_says_import_reads_jsonl(sample_db: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.csv"
    assert run("export", str(sample_db), "--format", "csv", "-o", str(dump)).exit_code == 0
    target = tmp_path / "t.sqlite"
    line = assert_one_line_error(
        run("import", str(target), str(dump)), 1, f"{dump}:1:", "CSV", "import reads jsonl", '{"id":'
    )
    assert "Expecting value" not in line
    assert not target.exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_is_accepted_before_and_after_the_command(tmp_path: Path, where: str) -> None:
    command = ["demo", "--payments", "3", "--db", str(tmp_path / "d.sqlite"), "--seed", "1"]
    args = ["-vv", *command] if where == "before" else [*command, "-vv"]
    proc = subprocess.run(
        [sys.executable, "-m", "mcstore", *args], capture_output=True, text=True, env=subprocess_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG mcstore" in proc.stderr and "Stopping mission control store ticker" in proc.stderr


def _corrupt_a_page_of(db: Path, table: str) -> None:
    """Overwrite the cell area of ``table``'s root page (a leaf) with garbage."""
    with closing(sqlite3.connect(db)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size + page_size // 2)
        f.write(b"\xa5" * (page_size // 2))


def test_demo_proof_reports_a_damaged_file(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    assert run("demo", "--payments", "20", "--db", str(db), "--seed", "2").exit_code == 0
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE notes(x BLOB)")
        conn.executemany("INSERT INTO notes VALUES (?)", [(os.urandom(40),) for _ in range(50)])
        conn.commit()
    _corrupt_a_page_of(db, "notes")
    result = run("demo", "--payments", "20", "--db", str(db), "--seed", "3")
    line = assert_one_line_error(result, 1, str(db), "Proof:", "quick_check")
    assert "OK" not in line and ": OK" not in result.stdout


def test_read_only_commands_leave_no_files_behind(sample_db: Path, tmp_path: Path) -> None:
    write_db(sample_db, sample_results()[:1], namespace="empty")
    assert run("reset", str(sample_db), "-n", "empty", "--yes").exit_code == 0
    listing = _dir_listing(tmp_path)
    assert not {f"{sample_db.name}-wal", f"{sample_db.name}-shm"} & listing
    for args in (
        ["stats", str(sample_db)],
        ["export", str(sample_db)],
        ["export", str(sample_db), "--format", "csv"],
        ["reset", str(sample_db), "-n", "empty", "--yes"],
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        assert _dir_listing(tmp_path) == listing, args
    # The demo's proof reads the file after the store closed: nothing left either.
    db = tmp_path / "demo.sqlite"
    assert run("demo", "--payments", "5", "--db", str(db), "--seed", "1").exit_code == 0
    assert _dir_listing(tmp_path) == listing | {db.name, Path(lock_path_for(str(db), "default")).name}


def test_read_only_commands_read_beside_a_running_writer(sample_db: Path, tmp_path: Path) -> None:
    # A writer has the file open: its -wal holds a commit the main file does not have yet.
    extra = [item.result for item in simulate(3, seed=77, start_ns=START_NS * 3) if not item.duplicate]
    with closing(sqlite3.connect(sample_db)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.executemany(
            "INSERT INTO mc_results VALUES ('default', ?, ?)", [encode_result(r) for r in extra]
        )
        writer.commit()
        wal = tmp_path / f"{sample_db.name}-wal"
        assert wal.exists()
        digest, listing = sha256(sample_db), _dir_listing(tmp_path)
        result = run("export", str(sample_db))
        assert result.exit_code == 0
        assert len(result.stdout.splitlines()) == len(by_key(sample_results() + extra))
        assert sha256(sample_db) == digest and _dir_listing(tmp_path) == listing


class _Lines:
    """The lines of a child's pipe, read by a thread, waited for with a deadline."""

    def __init__(self, stream: Any) -> None:
        import queue
        import threading

        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            try:
                for line in stream:
                    self._queue.put(line)
            except (OSError, ValueError):  # closed by _stop
                pass
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        # Under pytest-timeout's 60 s, so that a miss shows what the child printed.
        import queue

        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{needle!r} did not come within {timeout} s; got {self.seen}") from None
            if line is None:
                raise AssertionError(f"{needle!r} never came; got {self.seen}")
            self.seen.append(line)
            if needle in line:
                return line

    def rest(self) -> str:
        while (line := self._queue.get(timeout=60)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def _start(*args: str, pause_after_open: bool = False) -> subprocess.Popen[str]:
    """``mcstore ARGS`` in a child; with ``pause_after_open``, through ``scripts/paused_cli.py`` (resume
    it with ``_resume``)."""

    def child_setup() -> None:
        # A child of a non-interactive shell may inherit SIGINT as ignored.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    command = [str(Path(__file__).parent / "scripts" / "paused_cli.py")] if pause_after_open else ["-m", "mcstore"]
    return subprocess.Popen(
        [sys.executable, *command, *args],
        stdin=subprocess.PIPE if pause_after_open else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        preexec_fn=child_setup,
    )


def _resume(proc: subprocess.Popen[str]) -> None:
    """Let a child started with ``pause_after_open`` go on."""
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.close()


def _stop(proc: subprocess.Popen[str]) -> None:
    """Kill the child if it still runs, reap it, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def _write_lock(db: Path) -> sqlite3.Connection:
    """A connection holding ``db``'s write lock until it rolls back: the store's flushes wait."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
@pytest.mark.parametrize("commit", [True, False], ids=["committed", "nothing imported"])
def test_ctrl_c_during_import_says_what_was_imported(
    sample_db: Path, tmp_path: Path, commit: bool, signum: int
) -> None:
    fresh = [item.result for item in simulate(100, seed=42, start_ns=START_NS * 2) if not item.duplicate]
    dump = tmp_path / "new.jsonl"
    dump.write_text("".join(json.dumps(_good_record(r)) + "\n" for r in fresh))
    before = mc_rows(sample_db)
    proc = _start("import", str(sample_db), str(dump), "--max-records", "0", "-vv", pause_after_open=True)
    lock: sqlite3.Connection | None = None
    try:
        err = _Lines(proc.stderr)
        err.wait_for("store open")  # the open wrote the store's fencing token; nothing else yet
        lock = _write_lock(sample_db)
        _resume(proc)
        err.wait_for(f"Writing {len(fresh)} results")  # the write phase: its flush waits for the lock
        proc.send_signal(signum)
        err.wait_for("Stopping mission control store ticker")  # the close began
        if commit:
            lock.execute("ROLLBACK")  # the close's final flush can now commit
        proc.wait(timeout=60)
        stderr = err.rest()
    finally:
        _stop(proc)
        if lock is not None:
            lock.close()
    assert proc.returncode == 128 + signum, stderr
    verb = "terminated" if signum == signal.SIGTERM else "interrupted"
    message = next(line for line in stderr.splitlines() if line.startswith("Error: "))
    if commit:
        assert message == (
            f"Error: {sample_db}: {verb} after the import committed: {len(fresh)} added, 0 deduplicated, "
            f"0 pruned; {len(before) - 3 + len(fresh)} now stored in namespace 'default'"
        )
        assert fetch_all(sample_db) == by_key(sample_results() + fresh)
    else:
        assert message == f"Error: {sample_db}: {verb}: nothing was imported"
        assert mc_rows(sample_db) == before


def test_ctrl_c_while_validating_an_import_imports_nothing(
    sample_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cmds = importlib.import_module("mcstore.cli.write_cmds")

    def interrupted(lines: Any) -> Any:
        next(iter(lines))
        raise KeyboardInterrupt

    monkeypatch.setattr(write_cmds, "iter_json_lines", interrupted)
    dump = tmp_path / "d.jsonl"
    assert run("export", str(sample_db), "-o", str(dump)).exit_code == 0
    rows = mc_rows(sample_db)
    assert_one_line_error(run("import", str(sample_db), str(dump)), 130, "interrupted while validating: nothing")
    assert mc_rows(sample_db) == rows


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
@pytest.mark.parametrize("presses", [2, 3])
def test_ctrl_c_again_while_the_demo_closes(tmp_path: Path, presses: int, signum: int) -> None:
    db = tmp_path / "demo.sqlite"
    label = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    proc = _start("demo", "--payments", str(10**7), "--db", str(db), "--seed", "4")
    lock: sqlite3.Connection | None = None
    try:
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        out.wait_for("repeat this run")
        lock = _write_lock(db)  # from now on the store's flushes, the close's included, wait
        proc.send_signal(signum)
        err.wait_for(f"{label}: stopping the payments")
        proc.send_signal(signum)  # during the close
        err.wait_for("closing, please wait")
        if presses == 3:
            proc.send_signal(signum)
            aborted = err.wait_for(f"aborted by {label} while the store was closing")
            # Until the process has ended: released earlier, the lock could let the close's
            # flush, still retrying in its thread, commit in the moment before the exit.
            proc.wait(timeout=60)
        lock.execute("ROLLBACK")
        proc.wait(timeout=60)
        stdout, stderr = out.rest(), err.rest()
    finally:
        _stop(proc)
        if lock is not None:
            lock.close()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    if presses == 2:
        # The summary and the proof still follow.
        verb = "Terminated" if signum == signal.SIGTERM else "Interrupted"
        assert "close time" in stdout and f"{verb} by {label}" in stdout
        proof = next(line for line in stdout.splitlines() if line.startswith("Proof:"))
        assert proof.endswith("nothing accepted was lost.")
        assert proof.startswith(f"Proof: {len(mc_rows(db))} records in the database, {len(mc_rows(db))} expected")
        return
    # What the abort said is what the file holds: it stopped where the last flush left it.
    stored = int(aborted.split("the last flush left ")[1].split()[0])
    assert "Proof:" not in stdout
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM mc_results").fetchone()[0] == stored
