"""The lnd-like Go/bbolt baseline of case 9: find Go and bbolt, build the program, drive it.

The program, ``benchmarks/go/lndstore/main.go``, is a mission control store written from lnd's
published design (its doc comment says what it shares with lnd and where it differs). It is
built at run time into the run's temporary directory, never committed, offline: in GOPATH mode
(``GO111MODULE=off``) against the bbolt source of Debian's ``golang-github-coreos-bbolt-dev``
(``/usr/share/gocode``, or a directory of ``$GOPATH``). Without ``go`` on ``PATH`` or without
bbolt's source, :func:`find_toolchain` raises :class:`GoUnavailable` and the case is skipped
with its message; a program that does not build fails the run, as a wrong result does.

:class:`GoStore` runs the program as a subprocess on one bbolt file and talks to it through
its stdin and stdout: it sends results as plain values, one line each (:func:`spec_line`), and
reads each reply, a line of JSON (:func:`parse_reply`), with the program's own timings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from .common import NAMESPACE, ResultSpec, check

SOURCE: Final = Path(__file__).resolve().parent / "go" / "lndstore"
DEBIAN_GOPATH: Final = "/usr/share/gocode"
BBOLT: Final = "go.etcd.io/bbolt"
INSTALL_HINT: Final = "on Debian: apt-get install golang-go golang-github-coreos-bbolt-dev"
TIMEOUT_S: Final = 600


class GoUnavailable(Exception):
    """Go or bbolt's source is missing: the Go baseline's rows are skipped with this message."""


@dataclass(frozen=True)
class Toolchain:
    """A ``go`` command and the GOPATH that holds bbolt's source."""

    go: str
    gopath: str
    version: str


def find_toolchain(env: Mapping[str, str] | None = None) -> Toolchain:
    """The ``go`` on ``PATH`` and a GOPATH with bbolt; :class:`GoUnavailable` if either is missing."""
    env = os.environ if env is None else env
    go = shutil.which("go", path=env.get("PATH", os.defpath))
    if go is None:
        raise GoUnavailable(f"Go is not installed (no `go` on PATH; {INSTALL_HINT})")
    dirs = [d for d in (*env.get("GOPATH", "").split(os.pathsep), DEBIAN_GOPATH) if d]
    if not any((Path(d) / "src" / BBOLT / "db.go").is_file() for d in dirs):
        raise GoUnavailable(f"bbolt's source ({BBOLT}) is in none of {', '.join(dirs)} ({INSTALL_HINT})")
    proc = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60, check=False)
    version = proc.stdout.strip().removeprefix("go version ") or "unknown version"
    return Toolchain(go, os.pathsep.join(d for d in dirs if Path(d).is_dir()), version)


def build(toolchain: Toolchain, out_dir: Path) -> Path:
    """Build the program into ``out_dir``; return its path. Raises CheckFailed if it does not build."""
    binary = out_dir / "lndstore"
    env = dict(os.environ)
    # GOPATH mode against the installed sources: no module download, no network.
    env.update(GO111MODULE="off", GOPATH=toolchain.gopath, GOFLAGS="", GOPROXY="off", CGO_ENABLED="0")
    if not any(env.get(name) for name in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(out_dir / "go-cache")  # go needs a build cache somewhere
    proc = subprocess.run(
        [toolchain.go, "build", "-o", str(binary), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    check(proc.returncode == 0, f"building the Go baseline ({SOURCE}) failed:\n{proc.stderr.strip()}")
    return binary


def spec_line(spec: ResultSpec) -> str:
    """One result's plain values in the program's input format (see main.go)."""
    i, fwd, reply, source, total, hops, failure = spec
    fields = [str(i), str(fwd), str(reply), source.hex(), str(total), str(len(hops))]
    for channel, pubkey, amount in hops:
        fields += (str(channel), pubkey.hex(), str(amount))
    if failure is None:
        fields.append("S")
    elif not failure:
        fields.append("U")
    else:
        fields += ("F", str(failure[0]), failure[1].hex())
    return " ".join(fields)


def parse_reply(line: str, required: Iterable[str]) -> dict[str, Any]:
    """The program's reply to one command; CheckFailed for an error, bad JSON or a missing field."""
    try:
        reply = json.loads(line)
    except json.JSONDecodeError:
        reply = None
    check(isinstance(reply, dict), f"Go baseline: a reply that is not a JSON object: {line.strip()[:200]!r}")
    assert isinstance(reply, dict)
    check("error" not in reply, f"Go baseline: {reply.get('error')}")
    missing = [name for name in required if name not in reply]
    check(not missing, f"Go baseline: reply {line.strip()[:200]!r} lacks {', '.join(missing)}")
    return reply


def flush_seconds(reply: Mapping[str, Any], flushes: int) -> list[float]:
    """The per-flush times of a ``run`` reply, in seconds; CheckFailed unless there are ``flushes``."""
    times = reply["flush_ns"]
    check(
        isinstance(times, list) and len(times) == flushes and all(isinstance(t, int) and t > 0 for t in times),
        f"Go baseline: expected {flushes} positive flush times, got {str(times)[:200]}",
    )
    return [t / 1e9 for t in times]


def record_digest(rows: Iterable[tuple[bytes, bytes]]) -> tuple[int, str]:
    """The count and SHA-256 of ``(key, value)`` records in order, as the program's ``digest``."""
    h = hashlib.sha256()
    count = 0
    for key, value in rows:
        h.update(key)
        h.update(len(value).to_bytes(4, "big"))
        h.update(value)
        count += 1
    return count, h.hexdigest()


def sqlite_digest(path: str) -> tuple[int, str]:
    """:func:`record_digest` of a store file's rows of the default namespace, in key order."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        query = "SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key"
        return record_digest(conn.execute(query, (NAMESPACE,)))
    finally:
        conn.close()


class GoStore:
    """The program running on one bbolt file, with ``max_records`` (0: no cap)."""

    def __init__(self, binary: Path, path: str, max_records: int) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self.last: dict[str, Any] = {}
        """The last reply."""
        self.proc = subprocess.Popen(
            [str(binary), "-db", path, "-max-records", str(max_records)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        try:
            self.info = self._call("hello", "", ("go", "loaded", "no_sync"))
        except BaseException:
            self.proc.kill()
            self.close_quietly()
            raise

    def _call(self, command: str, body: str, required: Iterable[str]) -> dict[str, Any]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(f"{command}\n{body}")
            stdin.flush()
            line = stdout.readline()
        except BrokenPipeError:
            line = ""
        check(bool(line), f"Go baseline exited ({self.proc.poll()}) on {command!r}: {self._stderr_tail()}")
        self.last = parse_reply(line, required)
        return self.last

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:] or "(no message)"

    def run(self, specs: Sequence[ResultSpec], batch: int) -> list[float]:
        """Build, add and flush ``specs`` in flushes of ``batch``; the seconds of each flush."""
        body = "".join(spec_line(spec) + "\n" for spec in specs)
        reply = self._call(f"run {batch} {len(specs)}", body, ("flush_ns", "stored"))
        return flush_seconds(reply, -(-len(specs) // batch))

    def digest(self) -> tuple[int, str]:
        """:func:`record_digest` of the bucket's records."""
        reply = self._call("digest", "", ("count", "sha256"))
        return int(reply["count"]), str(reply["sha256"])

    def close(self) -> None:
        """End the program (it closes its database); CheckFailed if it fails."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        tail = self._stderr_tail()
        self._stderr.close()
        check(code == 0, f"Go baseline exited with {code}: {tail}")

    def __enter__(self) -> GoStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.proc.kill()
            self.close_quietly()

    def close_quietly(self) -> None:
        """Reap a killed program without raising (an error is already on its way)."""
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def filesystem(path: Path) -> str:
    """The type of the filesystem that holds ``path`` (Linux ``/proc/self/mounts``), or "unknown"."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    target = str(path.resolve())
    best, kind = "", "unknown"
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, parts[2]
    return kind
