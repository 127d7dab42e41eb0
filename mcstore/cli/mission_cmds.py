"""``mcstore querymc`` and ``mcstore queryprob``: mission control's view of a stored history, read-only.

Both open the database read-only (no namespace lock, nothing created or repaired, safe while
a store writes it) and rebuild the pair history as lnd does at start-up: every stored result
of the namespace, in key order, through :meth:`~mcstore.mission.MissionControlState.apply_result`
with lnd's default minimum failure relax interval (60 s), the estimator of ``queryprob``
attached to it when it learns (the historical one). So the history is the one a node
would have after a restart on this database; imports (``XImportMissionControl``) are not
stored, in lnd or here, and so are not part of it.

``querymc --json`` prints what ``lncli querymc`` prints: lnd's ``QueryMissionControlResponse``
marshalled by ``lncli`` (protobuf JSON with the proto field names, unpopulated fields
included, ``bytes`` as hex and 64-bit integers as strings, indented by four spaces)::

    {"pairs": [{"node_from": "02..", "node_to": "03..",
                "history": {"fail_time": "0", "fail_amt_sat": "0", "fail_amt_msat": "0",
                            "success_time": "1767225601", "success_amt_sat": "150",
                            "success_amt_msat": "150000"}}]}

Times are whole Unix seconds (Go's ``Time.Unix()``, which rounds down), ``"0"`` for never;
the ``*_sat`` amounts are the msat amounts divided by 1000, rounded down. lnd lists the
pairs in Go's random map order; here they are sorted by ``(node_from, node_to)``.
``queryprob --json`` prints lnd's ``QueryProbabilityResponse`` the same way:
``{"probability": 0.6, "history": {...}}``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import click
from rich.table import Table

from ..backends import open_reader, redact_location
from ..mission import ESTIMATORS, MissionControlState, TimedPairResult, make_estimator
from ..model import PUBKEY_LEN, U64_MAX, PaymentResult
from .common import (
    _CONTEXT,
    _bad_row_reporter,
    _db_argument,
    _namespace_option,
    _reported,
    _short_time,
    _stdout,
    _warn_unknown_namespace,
)
from .readonly import stream_results
from .stopping import STOPS

__all__ = ["Replayed", "pair_data", "querymc", "queryprob", "replay_history"]

_NS: Final = 1_000_000_000
_INT64_WRAP: Final = 1 << 64
_ESTIMATORS: Final = tuple(ESTIMATORS)
_TABLE_WIDTH: Final = 2 * (2 * PUBKEY_LEN + 1) + 2 * 25 + 2 * 30
"""Wide enough for two pubkeys, two times and two amounts up to 2**64 msat."""


# -- the history ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replayed:
    """A namespace's history replayed into a fresh :class:`MissionControlState`."""

    state: MissionControlState
    results: int
    """Results replayed."""
    sources: frozenset[bytes]
    """The source pubkeys of those results: the node (normally one) whose history this is."""


async def replay_history(
    db: str,
    namespace: str,
    *,
    learners: Iterable[object] = (),
    state: MissionControlState | None = None,
    apply: Callable[[PaymentResult], object] | None = None,
) -> Replayed:
    """Replay every result of ``namespace`` of ``db``, in key order, into ``state``; read-only.

    ``state`` defaults to a new one with ``learners`` attached
    (``MissionControlState(learners=...)``: a learning estimator among them learns the history).
    Each result goes to ``apply``, by default ``state.apply_result`` (``mcstore eval`` passes
    its evaluator's ``add``, which scores the result and then applies it to ``state``). Reads
    one consistent snapshot through :func:`~mcstore.backends.open_reader` (no lock, nothing
    written), streamed in batches. Rows that fail to decode are reported as warnings on stderr
    and skipped. Raises :class:`~mcstore.LocationError` for a location that is not a readable
    mcstore database.
    """
    state = MissionControlState(learners=learners) if state is None else state
    consume = state.apply_result if apply is None else apply
    count = 0
    sources: set[bytes] = set()
    async with contextlib.aclosing(await open_reader(db)) as reader:
        names = list(await reader.namespaces())
        if namespace not in names:
            _warn_unknown_namespace(db, namespace, names)
        async with contextlib.aclosing(await reader.open_snapshot(namespace)) as snapshot:
            rows = stream_results(snapshot, _bad_row_reporter(db, namespace))
            async with contextlib.aclosing(rows):
                async for _key, _value, result in rows:
                    consume(result)
                    count += 1
                    sources.add(result.route.source_pubkey)
    return Replayed(state, count, frozenset(sources))


def _replay(db: str, namespace: str, **options: Any) -> Replayed:
    """:func:`replay_history` (``options`` are its keywords), run for a command."""
    with _reported(db, namespace):
        return STOPS.run(partial(replay_history, db, namespace, **options))


def _int64(value: int) -> str:
    """``value`` as Go's ``int64(x)`` of a uint64 would print it in protobuf JSON: a string."""
    value %= _INT64_WRAP
    return str(value - _INT64_WRAP if value >= 1 << 63 else value)


def _unix_seconds(ns: int | None) -> str:
    # lnd: zero time -> 0, else time.Unix(), which rounds towards minus infinity.
    return "0" if ns is None else _int64(ns // _NS)


def pair_data(history: TimedPairResult | None) -> dict[str, str]:
    """lnd's ``PairData`` of ``history`` (None: a pair never seen), as lncli prints it."""
    if history is None:
        history = TimedPairResult()
    return {
        "fail_time": _unix_seconds(history.fail_time_ns),
        "fail_amt_sat": _int64(history.fail_amt_msat // 1000),
        "fail_amt_msat": _int64(history.fail_amt_msat),
        "success_time": _unix_seconds(history.success_time_ns),
        "success_amt_sat": _int64(history.success_amt_msat // 1000),
        "success_amt_msat": _int64(history.success_amt_msat),
    }


def _json(document: object) -> str:
    return json.dumps(document, indent=4)


def _amount(msat: int) -> str:
    return f"{msat:,} msat"


# -- querymc ----------------------------------------------------------------------------------


def _pairs_table(pairs: Mapping[tuple[bytes, bytes], TimedPairResult]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("from", no_wrap=True)
    table.add_column("to", no_wrap=True)
    table.add_column("fail time (UTC)", no_wrap=True)
    table.add_column("fail amount", justify="right", no_wrap=True)
    table.add_column("success time (UTC)", no_wrap=True)
    table.add_column("success amount", justify="right", no_wrap=True)
    for (node_from, node_to), history in sorted(pairs.items()):
        table.add_row(
            node_from.hex(),
            node_to.hex(),
            _short_time(history.fail_time_ns),
            _amount(history.fail_amt_msat),
            _short_time(history.success_time_ns),
            _amount(history.success_amt_msat),
        )
    return table


@click.command(context_settings=_CONTEXT)
@_db_argument
@_namespace_option("default", "The namespace whose history to rebuild.")
@click.option("--json", "as_json", is_flag=True, help="Print lncli querymc's JSON instead of a table.")
def querymc(db: str, namespace: str, as_json: bool) -> None:
    """Show the pair history that mission control rebuilds from the results stored in DB.

    The stored results are replayed in key order through lnd's rules, as lnd does at
    start-up. One row per directed node pair: from, to, the last failure's time and amount
    (the smallest amount that failed; 0 means any amount) and the last success's time and
    amount (the largest that went through). --json prints the shape of `lncli querymc`:
    {"pairs": [{"node_from", "node_to", "history": {"fail_time", "fail_amt_sat",
    "fail_amt_msat", "success_time", "success_amt_sat", "success_amt_msat"}}]}, with lncli's
    conventions (hex pubkeys, integers as strings, Unix seconds, 0 for never). Read-only.
    """
    replayed = _replay(db, namespace)
    pairs = replayed.state.pairs()
    if as_json:
        document = {
            "pairs": [
                {"node_from": node_from.hex(), "node_to": node_to.hex(), "history": pair_data(history)}
                for (node_from, node_to), history in sorted(pairs.items())
            ]
        }
        click.echo(_json(document))
        return
    out = _stdout()
    out.print(
        f"{len(pairs)} node pairs from {replayed.results} results in namespace {namespace!r} of {redact_location(db)}."
    )
    if pairs:
        table = _pairs_table(pairs)
        # Full pubkeys, one pair per line, whatever the terminal's width: lines that a script
        # can grep and an operator can paste into queryprob.
        out.width = max(out.width, _TABLE_WIDTH)
        out.print(table)


# -- queryprob --------------------------------------------------------------------------------


_KEY_HELP: Final = f"give a {PUBKEY_LEN}-byte public key as {2 * PUBKEY_LEN} hex digits"


def _pubkey(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not hex: {_KEY_HELP}") from None
    if len(key) != PUBKEY_LEN:
        raise click.BadParameter(f"{value!r} is {len(key)} bytes: {_KEY_HELP}")
    return key


def _msat(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    digits = value.replace("_", "")
    if not digits.isdigit() or int(digits) > U64_MAX:
        raise click.BadParameter(f"{value!r} is not an amount: give a whole number of msat from 0 to {U64_MAX}")
    return int(digits)


_TIME_PATTERN: Final = re.compile(r"-?\d+(\.\d{1,9})?")


def parse_time(text: str) -> int:
    """``--at``'s value as ns since the Unix epoch: ``now``, Unix seconds, or ISO-8601.

    Unix seconds may have up to nine decimals; an ISO-8601 time without an offset is UTC.
    Raises :class:`ValueError` naming the value.
    """
    text = text.strip()
    if text.lower() == "now":
        return time.time_ns()
    if _TIME_PATTERN.fullmatch(text):
        whole, _, fraction = text.partition(".")
        ns = abs(int(whole)) * _NS + int(fraction.ljust(9, "0") or 0)
        return -ns if whole.startswith("-") else ns
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give 'now', Unix seconds (1767225600) or ISO-8601 (2026-01-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def _time(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _probability_json(probability: float) -> float | int | str:
    # protobuf JSON (Go) writes the non-finite doubles as strings, and whole ones without a
    # fraction ("1", where Python would write "1.0").
    if math.isnan(probability):
        return "NaN"
    if math.isinf(probability):
        return "Infinity" if probability > 0 else "-Infinity"
    if probability.is_integer():
        return int(probability)
    return probability


@click.command(context_settings=_CONTEXT)
@_db_argument
@click.argument("from_pubkey", metavar="FROM", callback=_pubkey)
@click.argument("to_pubkey", metavar="TO", callback=_pubkey)
@click.argument("amount_msat", metavar="AMT_MSAT", callback=_msat)
@click.option(
    "--capacity-sat",
    required=True,
    type=click.IntRange(min=0, max=(1 << 63) - 1),
    metavar="N",
    help="The channel's capacity, in sat (mcstore has no channel graph to look it up in).",
)
@click.option(
    "--estimator",
    type=click.Choice(_ESTIMATORS),
    default="apriori",
    show_default=True,
    help="The estimator to use, with its default parameters (lnd's; LDK's for historical).",
)
@click.option(
    "--at",
    "at_ns",
    callback=_time,
    metavar="TIME",
    default="now",
    show_default=True,
    help="When to estimate: 'now', Unix seconds, or ISO-8601 (UTC unless it has an offset).",
)
@click.option(
    "--self",
    "self_pubkey",
    callback=_pubkey,
    metavar="PUBKEY",
    default=None,
    help="This node's pubkey: channels from it get the local estimate. "
    "[default: the source of the stored results, when they have one]",
)
@_namespace_option("default", "The namespace whose history to use.")
@click.option("--json", "as_json", is_flag=True, help="Print lncli queryprob's JSON shape.")
def queryprob(
    db: str,
    from_pubkey: bytes,
    to_pubkey: bytes,
    amount_msat: int,
    capacity_sat: int,
    estimator: str,
    at_ns: int,
    self_pubkey: bytes | None,
    namespace: str,
    as_json: bool,
) -> None:
    """Estimate the probability that the channel FROM -> TO forwards AMT_MSAT, and show its history.

    The history is rebuilt from the results stored in DB, as `mcstore querymc` does; the
    estimate is lnd's GetProbability: the estimator's local variant for a channel of our
    own node (--self), its pair probability otherwise. Read-only.
    """
    model = make_estimator(estimator)
    replayed = _replay(db, namespace, learners=(model,))
    if self_pubkey is None and len(replayed.sources) == 1:
        (self_pubkey,) = replayed.sources
    results = replayed.state.results_from(from_pubkey)
    local = from_pubkey == self_pubkey
    if local:
        probability = model.local_pair_probability(at_ns, results, to_pubkey)
    else:
        probability = model.pair_probability(at_ns, results, to_pubkey, amount_msat, capacity_sat)
    history = results.get(to_pubkey)
    if as_json:
        click.echo(_json({"probability": _probability_json(probability), "history": pair_data(history)}))
        return
    out = _stdout()
    variant = "local estimate, FROM is this node" if local else "pair estimate"
    out.print(f"probability  {probability:.6f}")
    out.print(
        f"of           {from_pubkey.hex()} -> {to_pubkey.hex()} forwarding {amount_msat:,} msat "
        f"(capacity {capacity_sat:,} sat)"
    )
    out.print(f"by           {estimator} ({variant}) at {_short_time(at_ns)}")
    out.print(f"from         {replayed.results} results in namespace {namespace!r} of {redact_location(db)}")
    if history is None:
        out.print("history      none: mission control knows nothing of this pair")
        return
    failed = ""
    if history.fail_time_ns is not None:
        failed = f", {_amount(history.fail_amt_msat)} or more" if history.fail_amt_msat else ", any amount"
    out.print(f"last failure {_short_time(history.fail_time_ns)}{failed}")
    out.print(
        f"last success {_short_time(history.success_time_ns)}"
        + (f", {_amount(history.success_amt_msat)}" if history.success_time_ns is not None else "")
    )
