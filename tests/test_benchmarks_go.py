"""The benchmarks' lnd-like Go/bbolt baseline (case 9): its protocol, its skip without Go, its bytes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

import mcstore

FAKE_GO = """#!/bin/sh
if [ "$1" = version ]; then echo "go version go0.0 fake/test"; exit 0; fi
echo "boom: $*" >&2
exit 1
"""


def _fake_gopath(root: Path) -> Path:
    """A GOPATH that holds a (fake) bbolt source, so that only `go` decides."""
    (root / "src" / "go.etcd.io" / "bbolt").mkdir(parents=True)
    (root / "src" / "go.etcd.io" / "bbolt" / "db.go").write_text("package bbolt\n")
    return root


def test_go_baseline_is_skipped_with_a_note_where_go_or_bbolt_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import gobaseline
    from benchmarks.__main__ import main
    from benchmarks.common import CheckFailed

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(gobaseline.GoUnavailable, match=r"no `go` on PATH.*golang-go"):
        gobaseline.find_toolchain()
    out = tmp_path / "out"
    assert main(["--quick", "--only", "lnd", "--out", str(out)]) == 0
    data = json.loads((out / "quick.json").read_text())
    assert data["figures"] == []
    (note,) = data["skipped"]
    assert note.startswith("case 9 (lnd-like Go/bbolt baseline) skipped: Go is not installed")
    markdown = (out / "quick.md").read_text()
    assert f"- {note}" in markdown
    # The load each case started under is reported with the figures (a shared machine).
    assert list(data["loadavg_by_case"]) == ["9"]
    assert "1-min load average as each case started: 9 " in markdown

    # `go` present, bbolt's source nowhere.
    go = empty / "go"
    go.write_text(FAKE_GO)
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(gobaseline, "DEBIAN_GOPATH", str(tmp_path / "no-gocode"))
    monkeypatch.setenv("GOPATH", str(tmp_path / "gopath"))
    with pytest.raises(gobaseline.GoUnavailable, match="bbolt's source .* in none of .*coreos-bbolt-dev"):
        gobaseline.find_toolchain()

    # Both present, but the program does not build: that fails the run, it is not skipped.
    monkeypatch.setattr(gobaseline, "DEBIAN_GOPATH", str(_fake_gopath(tmp_path / "gocode")))
    toolchain = gobaseline.find_toolchain()
    assert toolchain.version == "go0.0 fake/test"
    with pytest.raises(CheckFailed, match="building the Go baseline .* failed:\nboom: build"):
        gobaseline.build(toolchain, tmp_path)


def test_go_baseline_protocol_lines_and_replies() -> None:
    from benchmarks import gobaseline
    from benchmarks.common import CheckFailed, lnd_bench_specs, result_specs

    success, temporary, _, unknown = result_specs(0, 4)
    assert gobaseline.spec_line(success).endswith(" S")
    assert gobaseline.spec_line(unknown).endswith(" U")
    fields = gobaseline.spec_line(temporary).split()
    i, fwd, reply, source, total, hops, failure = temporary
    assert fields[:6] == [str(i), str(fwd), str(reply), source.hex(), str(total), "3"]
    assert fields[6:9] == [str(hops[0][0]), hops[0][1].hex(), str(hops[0][2])]
    assert failure and fields[-3:] == ["F", str(failure[0]), failure[1].hex()]
    assert len(fields) == 6 + 3 * 3 + 3
    assert gobaseline.spec_line(lnd_bench_specs(7, 1)[0]).split()[:1] == ["7"]

    reply = gobaseline.parse_reply('{"flush_ns": [1500, 2500], "stored": 2}\n', ("flush_ns", "stored"))
    assert gobaseline.flush_seconds(reply, 2) == [1.5e-6, 2.5e-6]
    with pytest.raises(CheckFailed, match="expected 3 positive flush times"):
        gobaseline.flush_seconds(reply, 3)
    with pytest.raises(CheckFailed, match="expected 1 positive flush times"):
        gobaseline.flush_seconds({"flush_ns": [0]}, 1)
    with pytest.raises(CheckFailed, match="Go baseline: bolt: timeout"):
        gobaseline.parse_reply('{"error": "bolt: timeout"}', ())
    with pytest.raises(CheckFailed, match="not a JSON object: 'panic: oops'"):
        gobaseline.parse_reply("panic: oops\n", ())
    with pytest.raises(CheckFailed, match="lacks sha256"):
        gobaseline.parse_reply('{"count": 1}', ("count", "sha256"))


def test_go_baseline_stores_the_stores_bytes_dedups_and_prunes(tmp_path: Path) -> None:
    from benchmarks import gobaseline
    from benchmarks.common import build_results, result_specs

    try:
        toolchain = gobaseline.find_toolchain()
    except gobaseline.GoUnavailable as exc:
        pytest.skip(str(exc))
    binary = gobaseline.build(toolchain, tmp_path)
    specs = result_specs(0, 6)  # every outcome: success, failures from a hop, source unknown
    db = str(tmp_path / "mc.bbolt")
    with gobaseline.GoStore(binary, db, 3) as go:
        assert go.info["loaded"] == 0 and go.info["no_sync"] is False
        assert len(go.run(specs[:4], 4)) == 1  # over the cap alone: the oldest is not written
        assert (go.last["added"], go.last["pruned"], go.last["stored"]) == (3, 0, 3)
        assert len(go.run(specs[4:], 1)) == 2
        assert (go.last["added"], go.last["pruned"], go.last["stored"]) == (2, 2, 3)
        assert len(go.run(specs[5:] * 2, 2)) == 1  # stored already, and twice in the batch
        assert (go.last["added"], go.last["pruned"], go.last["stored"]) == (0, 0, 3)
        kept = build_results(specs[3:])
        assert go.digest() == gobaseline.record_digest(mcstore.encode_result(r) for r in kept)
    with gobaseline.GoStore(binary, db, 3) as go:
        assert go.info["loaded"] == 3
