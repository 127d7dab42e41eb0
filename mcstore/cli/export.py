"""The record format of ``mcstore export`` and ``mcstore import``: one result per line.

A result becomes one JSON object (a line of a ``.jsonl`` file) or one CSV row. The JSON
object has these keys; :func:`result_to_record` writes them and :func:`parse_record` reads
them back, validating every field::

    id, time_fwd_ns, time_reply_ns        integers (u64)
    time_fwd, time_reply                  ISO-8601 UTC with nanoseconds, informative
    success                               boolean, informative (true iff failure is null)
    route: {source_pubkey (hex, 33 bytes), total_amount_msat,
            hops: [{channel_id, pubkey, amount_to_forward_msat,
                    has_blinding_point, has_custom_records}]}
    failure: null, or {source_index (int|null), code (int|null), code_name (str|null),
                       message (hex|null)}
    raw_key, raw_value                    lnd's bytes as hex, only with ``--raw``

The ``*_ns`` integers, the route and ``failure.message`` are the data; the informative keys
(``time_fwd``, ``time_reply``, ``success``, ``failure.code``, ``failure.code_name``) and the
raw bytes may be left out, but when present they must agree with the data. Unknown keys are
refused, so that a misspelt key is an error instead of a silently dropped field.

Limits: ``import`` reads a line of at most :data:`MAX_LINE_BYTES` (1 MiB), never holding more
than that of one line in memory, and ``import`` and ``import-lnd`` accept a route of at most
:data:`MAX_HOPS` (64) hops and a failure message of at most :data:`MAX_FAILURE_MESSAGE_BYTES`
(65535) bytes. No result lnd records comes near them: an onion's 1300 bytes of routing data
carry at most 38 hops (at least 34 bytes each), and BOLT 4 gives a failure message a u16
length (lnd pads them to 256 bytes); a record within them takes about 300 KiB at most.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Final

from ..codec import decode_result, encode_result
from ..errors import DecodeError
from ..model import (
    KEY_LEN,
    PUBKEY_LEN,
    U8_MAX,
    U64_MAX,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)

__all__ = [
    "CSV_COLUMNS",
    "JSONL_EXAMPLE",
    "MAX_FAILURE_MESSAGE_BYTES",
    "MAX_HOPS",
    "MAX_LINE_BYTES",
    "RecordError",
    "format_hops",
    "format_time_ns",
    "iter_json_lines",
    "over_limits",
    "parse_json_line",
    "read_lines",
    "parse_record",
    "parse_time_iso",
    "result_to_csv_row",
    "result_to_json_line",
    "result_to_record",
]

CSV_COLUMNS: Final = (
    "id",
    "time_fwd_ns",
    "time_fwd",
    "time_reply_ns",
    "time_reply",
    "success",
    "source_pubkey",
    "total_amount_msat",
    "hop_count",
    "hops",
    "failure_source_index",
    "failure_code",
    "failure_code_name",
    "failure_message",
)
"""The CSV header; ``raw_key`` and ``raw_value`` follow when the raw bytes are asked for."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S: Final = 1_000_000_000

_TOP_KEYS: Final = frozenset(
    {
        "id",
        "time_fwd_ns",
        "time_reply_ns",
        "time_fwd",
        "time_reply",
        "success",
        "route",
        "failure",
        "raw_key",
        "raw_value",
    }
)
MAX_LINE_BYTES: Final = 1 << 20
"""The longest line ``import`` reads, in bytes (1 MiB), newline excluded."""
MAX_HOPS: Final = 64
"""The most hops a route may have in what ``import`` and ``import-lnd`` accept."""
MAX_FAILURE_MESSAGE_BYTES: Final = 0xFFFF
"""The longest failure message ``import`` and ``import-lnd`` accept, in bytes (BOLT 4's u16 length)."""
_MAX_DEPTH_HINT: Final = 4
"""How deeply a record nests (record, route, hops, hop): for the error about a deeper line."""

_ROUTE_KEYS: Final = frozenset({"source_pubkey", "total_amount_msat", "hops"})
_HOP_KEYS: Final = frozenset(
    {"channel_id", "pubkey", "amount_to_forward_msat", "has_blinding_point", "has_custom_records"}
)
_FAILURE_KEYS: Final = frozenset({"source_index", "code", "code_name", "message"})

_ISO_TIME: Final = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")
_JSON_KEY: Final = re.compile(r'"([A-Za-z_]+)"\s*:')


class RecordError(ValueError):
    """A record that does not describe a valid result.

    ``field`` is the dotted path of the offending field (``route.hops[1].pubkey``), or
    ``"json"`` when the line is not valid JSON; ``problem`` says what is wrong with it;
    ``line`` is the 1-based line number when the record came from a file.
    """

    def __init__(self, field: str, problem: str, line: int | None = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.line = line


# -- writing ------------------------------------------------------------------------------


def format_time_ns(ns: int) -> str:
    """ISO-8601 UTC text of ``ns`` nanoseconds since the epoch, keeping all nine digits."""
    seconds, fraction = divmod(ns, _NS_PER_S)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def _failure_record(failure: PaymentFailure) -> dict[str, object]:
    message = failure.message
    return {
        "source_index": failure.source_index,
        "code": failure.code,
        "code_name": failure.code_name,
        "message": None if message is None else message.hex(),
    }


def result_to_record(result: PaymentResult, *, raw: bool = False) -> dict[str, object]:
    """The JSON-ready record of ``result``; with ``raw``, lnd's key and value bytes as hex."""
    route = result.route
    record: dict[str, object] = {
        "id": result.id,
        "time_fwd_ns": result.time_fwd_ns,
        "time_reply_ns": result.time_reply_ns,
        "time_fwd": format_time_ns(result.time_fwd_ns),
        "time_reply": format_time_ns(result.time_reply_ns),
        "success": result.success,
        "route": {
            "source_pubkey": route.source_pubkey.hex(),
            "total_amount_msat": route.total_amount_msat,
            "hops": [
                {
                    "channel_id": hop.channel_id,
                    "pubkey": hop.pubkey.hex(),
                    "amount_to_forward_msat": hop.amount_to_forward_msat,
                    "has_blinding_point": hop.has_blinding_point,
                    "has_custom_records": hop.has_custom_records,
                }
                for hop in route.hops
            ],
        },
        "failure": None if result.failure is None else _failure_record(result.failure),
    }
    if raw:
        key, value = encode_result(result)
        record["raw_key"] = key.hex()
        record["raw_value"] = value.hex()
    return record


def result_to_json_line(result: PaymentResult, *, raw: bool = False) -> str:
    """One line of jsonl (without the newline) for ``result``."""
    return json.dumps(result_to_record(result, raw=raw), separators=(",", ":"))


def format_hops(route: Route) -> str:
    """The hops as one compact CSV cell: ``channel_id:pubkey:amount_msat[:flags];...``.

    ``flags`` is present only when set: ``b`` for a blinding point, ``c`` for custom records.
    """
    parts = []
    for hop in route.hops:
        flags = ("b" if hop.has_blinding_point else "") + ("c" if hop.has_custom_records else "")
        text = f"{hop.channel_id}:{hop.pubkey.hex()}:{hop.amount_to_forward_msat}"
        parts.append(f"{text}:{flags}" if flags else text)
    return ";".join(parts)


def result_to_csv_row(result: PaymentResult, *, raw: bool = False) -> list[str]:
    """The CSV row of ``result``, in :data:`CSV_COLUMNS` order (then the raw bytes, with ``raw``).

    Absent values (a success's failure fields) are empty cells.
    """
    failure = result.failure

    def cell(value: object) -> str:
        return "" if value is None else str(value)

    row = [
        str(result.id),
        str(result.time_fwd_ns),
        format_time_ns(result.time_fwd_ns),
        str(result.time_reply_ns),
        format_time_ns(result.time_reply_ns),
        "true" if result.success else "false",
        result.route.source_pubkey.hex(),
        str(result.route.total_amount_msat),
        str(len(result.route.hops)),
        format_hops(result.route),
        cell(None if failure is None else failure.source_index),
        cell(None if failure is None else failure.code),
        cell(None if failure is None else failure.code_name),
        cell(None if failure is None or failure.message is None else failure.message.hex()),
    ]
    if raw:
        key, value = encode_result(result)
        row += [key.hex(), value.hex()]
    return row


# -- reading ------------------------------------------------------------------------------


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object) -> str:
    """The value as JSON text, shortened so an error line stays one readable line."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):  # pragma: no cover - values come from json.loads
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong_type(field: str, expected: str, value: object) -> RecordError:
    return RecordError(field, f"expected {expected}, got {_json_type(value)} {_show(value)}")


def _object(value: object, field: str, allowed: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _wrong_type(field, "an object", value)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise RecordError(_join(field, unknown[0]), "unknown field")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _required(obj: Mapping[str, object], path: str, key: str) -> object:
    if key not in obj:
        raise RecordError(_join(path, key), "missing")
    return obj[key]


def _int(value: object, field: str, maximum: int) -> int:
    # bool is an int in Python but not in JSON: true is never a valid amount.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(field, "an integer", value)
    if not 0 <= value <= maximum:
        raise RecordError(field, f"out of range: {value} is not in 0..{maximum}")
    return value


def _u64(obj: Mapping[str, object], path: str, key: str) -> int:
    return _int(_required(obj, path, key), _join(path, key), U64_MAX)


def _bool(obj: Mapping[str, object], path: str, key: str) -> bool:
    value = _required(obj, path, key)
    if not isinstance(value, bool):
        raise _wrong_type(_join(path, key), "a boolean", value)
    return value


def _hex(value: object, field: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise _wrong_type(field, "a hex string", value)
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise RecordError(field, f"not valid hex: {_show(value)}") from None
    if length is not None and len(data) != length:
        raise RecordError(field, f"must be {length} bytes, got {len(data)}")
    return data


def parse_time_iso(text: str) -> tuple[int, int]:
    """Parse ISO-8601 text with an explicit offset into ``(ns since the epoch, unit in ns)``.

    ``unit`` is the precision the text gives (1 for nine fraction digits, 10**9 for none).
    Raises ValueError for text in another shape or an impossible date.
    """
    match = _ISO_TIME.fullmatch(text)
    if match is None:
        raise ValueError("expected YYYY-MM-DDTHH:MM:SS[.fraction] and Z or an offset")
    base, fraction, zone = match.groups()
    moment = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    digits = fraction or ""
    nanos = int(digits.ljust(9, "0")) if digits else 0
    return seconds * _NS_PER_S + nanos, 10 ** (9 - len(digits))


def _check_iso(obj: Mapping[str, object], key: str, ns: int) -> None:
    if key not in obj:
        return
    value = obj[key]
    if not isinstance(value, str):
        raise _wrong_type(key, "an ISO-8601 string", value)
    try:
        iso_ns, unit = parse_time_iso(value)
    except ValueError as exc:
        raise RecordError(key, f"not an ISO-8601 time ({exc}): {_show(value)}") from None
    if iso_ns != ns - ns % unit:
        raise RecordError(key, f"{value} disagrees with {key}_ns {ns} ({format_time_ns(ns)})")


def _parse_hop(value: object, path: str) -> Hop:
    obj = _object(value, path, _HOP_KEYS)
    return Hop(
        channel_id=_u64(obj, path, "channel_id"),
        pubkey=_hex(_required(obj, path, "pubkey"), _join(path, "pubkey"), PUBKEY_LEN),
        amount_to_forward_msat=_u64(obj, path, "amount_to_forward_msat"),
        has_blinding_point=_bool(obj, path, "has_blinding_point"),
        has_custom_records=_bool(obj, path, "has_custom_records"),
    )


def _parse_route(value: object) -> Route:
    obj = _object(value, "route", _ROUTE_KEYS)
    source = _hex(_required(obj, "route", "source_pubkey"), "route.source_pubkey", PUBKEY_LEN)
    total = _u64(obj, "route", "total_amount_msat")
    hops_value = _required(obj, "route", "hops")
    if not isinstance(hops_value, list):
        raise _wrong_type("route.hops", "an array", hops_value)
    _raise_over_limits(len(hops_value), 0)
    hops = [_parse_hop(hop, f"route.hops[{i}]") for i, hop in enumerate(hops_value)]
    return Route(source, total, hops)


def _parse_failure(value: object) -> PaymentFailure | None:
    if value is None:
        return None
    obj = _object(value, "failure", _FAILURE_KEYS)
    index_value = _required(obj, "failure", "source_index")
    index = None if index_value is None else _int(index_value, "failure.source_index", U8_MAX)
    message_value = _required(obj, "failure", "message")
    if isinstance(message_value, str):
        _raise_over_limits(0, len(message_value) // 2)
    message = None if message_value is None else _hex(message_value, "failure.message")
    if message is not None and len(message) < 2:
        raise RecordError("failure.message", "must be at least 2 bytes (a u16 failure code)")
    if message is not None and index is None:
        raise RecordError(
            "failure.message", "requires a failure.source_index (lnd only decrypts a known source)"
        )
    failure = PaymentFailure(index, message)
    if "code" in obj:
        code = obj["code"]
        if code is not None:
            code = _int(code, "failure.code", 0xFFFF)
        if code != failure.code:
            raise RecordError("failure.code", f"{_show(code)} disagrees with failure.message")
    if "code_name" in obj:
        name = obj["code_name"]
        if name is not None and not isinstance(name, str):
            raise _wrong_type("failure.code_name", "a string or null", name)
        if name != failure.code_name:
            raise RecordError(
                "failure.code_name",
                f"{_show(name)} disagrees with failure.message "
                f"(code {_show(failure.code)} is {_show(failure.code_name)})",
            )
    return failure


def _check_raw(obj: Mapping[str, object], result: PaymentResult) -> None:
    if "raw_key" not in obj and "raw_value" not in obj:
        return
    key = _hex(_required(obj, "", "raw_key"), "raw_key", KEY_LEN)
    value = _hex(_required(obj, "", "raw_value"), "raw_value")
    if key != result.key:
        raise RecordError("raw_key", "disagrees with id, time_reply_ns and route.source_pubkey")
    try:
        decoded = decode_result(key, value)
    except DecodeError as exc:
        raise RecordError("raw_value", f"not a valid lnd value: {exc}") from None
    if decoded != result:
        raise RecordError("raw_value", "decodes to a different result than the record's fields")


def over_limits(hops: int, message_bytes: int) -> tuple[str, str] | None:
    """``(field, problem)`` if a route of ``hops`` hops or a failure message of
    ``message_bytes`` bytes is over the import limits (:data:`MAX_HOPS`,
    :data:`MAX_FAILURE_MESSAGE_BYTES`); else None."""
    if hops > MAX_HOPS:
        return "route.hops", f"{hops} hops, more than the limit of {MAX_HOPS}"
    if message_bytes > MAX_FAILURE_MESSAGE_BYTES:
        return "failure.message", f"{message_bytes} bytes, more than the limit of {MAX_FAILURE_MESSAGE_BYTES}"
    return None


def _raise_over_limits(hops: int, message_bytes: int) -> None:
    problem = over_limits(hops, message_bytes)
    if problem is not None:
        raise RecordError(*problem)


def parse_record(value: object) -> PaymentResult:
    """Validate one decoded JSON record and build its :class:`~mcstore.PaymentResult`.

    Raises :class:`RecordError` naming the first field that is missing, unknown, of the wrong
    type, out of range, malformed, or in disagreement with another field.
    """
    obj = _object(value, "", _TOP_KEYS)
    result_id = _u64(obj, "", "id")
    time_fwd_ns = _u64(obj, "", "time_fwd_ns")
    time_reply_ns = _u64(obj, "", "time_reply_ns")
    _check_iso(obj, "time_fwd", time_fwd_ns)
    _check_iso(obj, "time_reply", time_reply_ns)
    route = _parse_route(_required(obj, "", "route"))
    failure = _parse_failure(_required(obj, "", "failure"))
    if "success" in obj:
        success = obj["success"]
        if not isinstance(success, bool):
            raise _wrong_type("success", "a boolean", success)
        if success != (failure is None):
            raise RecordError("success", f"{_show(success)} disagrees with failure ({_show(obj['failure'])})")
    try:
        result = PaymentResult(result_id, time_fwd_ns, time_reply_ns, route, failure)
    except (TypeError, ValueError) as exc:  # pragma: no cover - every field was checked above
        raise RecordError("record", str(exc)) from None
    _check_raw(obj, result)
    return result


def _field_near(text: str, position: int) -> str:
    """The last JSON key that starts before ``position``: where a syntax error is."""
    names = _JSON_KEY.findall(text, 0, position)
    return names[-1] if names else ""


JSONL_EXAMPLE: Final = (
    '{"id":1,"time_fwd_ns":1767225600000000000,"time_reply_ns":1767225600250000000,'
    '"route":{"source_pubkey":"02ab...","total_amount_msat":1000,"hops":[...]},"failure":null}'
)
"""What a line of the jsonl that ``import`` reads looks like (shortened)."""


def _not_jsonl(text: str) -> str:
    """The problem with a line that is not even the start of a JSON object."""
    csv_hint = ""
    if text.startswith(",".join(CSV_COLUMNS[:2])):
        csv_hint = "this is the CSV that 'export --format csv' writes; "
    return (
        f"{csv_hint}import reads jsonl, one JSON object per line as 'mcstore export' writes it "
        f"by default, such as {JSONL_EXAMPLE}"
    )


def parse_json_line(text: str) -> PaymentResult:
    """Parse one jsonl line into a result; raise :class:`RecordError` if it is not a valid record.

    For a line that is not valid JSON (truncated, say) the error's field is ``json`` and the
    problem names the column and the last key read before it.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if not text.lstrip().startswith("{"):
            raise RecordError("json", _not_jsonl(text)) from None
        near = _field_near(text, exc.pos)
        where = f"column {exc.colno}" + (f", after field {near!r}" if near else "")
        raise RecordError("json", f"invalid JSON at {where}: {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will parse
        raise RecordError("json", f"invalid JSON: {exc}") from None
    except RecursionError:  # json's parser recurses once per level of nesting
        raise RecordError(
            "json", f"nested too deeply to be a record (a record nests {_MAX_DEPTH_HINT} levels deep)"
        ) from None
    return parse_record(value)


def read_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The lines of ``stream`` (each with its newline, the last one maybe without), holding at
    most ``limit + chunk`` bytes at a time.

    Raises :class:`RecordError` (field ``json``, with its ``line`` set) for a line longer
    than ``limit`` bytes (newline excluded), as soon as it has read that much of it.
    """
    read = getattr(stream, "read1", stream.read)  # what a pipe has, without waiting for more
    pending = bytearray()
    number = 1
    while data := read(chunk):
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if len(pending) + end - start > limit:
                raise _too_long(limit, number)
            line = bytes(pending + data[start : end + 1]) if pending else data[start : end + 1]
            pending.clear()
            yield line
            number += 1
            start = end + 1
        pending += data[start:]
        if len(pending) > limit:
            raise _too_long(limit, number)
    if pending:
        yield bytes(pending)


def _too_long(limit: int, number: int) -> RecordError:
    return RecordError("json", f"line longer than {limit} bytes, the limit; not a record", number)


def iter_json_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, PaymentResult]]:
    """Parse binary lines into ``(line number, result)``, skipping blank lines.

    Raises :class:`RecordError`, with its ``line`` set, for the first bad line.
    """
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError("json", f"not UTF-8 text at byte {exc.start}", number) from None
        if not text.strip():
            continue
        try:
            result = parse_json_line(text)
        except RecordError as error:
            raise RecordError(error.field, error.problem, number) from None
        yield number, result
