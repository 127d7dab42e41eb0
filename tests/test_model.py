"""Tests of mcstore.model: validation rules, derived values and helpers."""

from __future__ import annotations

import copy
import dataclasses
import gc
import importlib.util
import pickle
import sys
import types
import weakref
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import payment_results

import mcstore
from mcstore import _select, codec, model
from mcstore.model import (
    FAILURE_CODE_NAMES,
    KEY_LEN,
    PUBKEY_LEN,
    U64_MAX,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)

PK_A = b"\x02" + b"\xaa" * 32
PK_B = b"\x03" + b"\xbb" * 32


def make_hop(**kw: Any) -> Hop:
    args: dict[str, Any] = {"channel_id": 1, "pubkey": PK_B, "amount_to_forward_msat": 1000}
    args.update(kw)
    return Hop(**args)


def make_route(**kw: Any) -> Route:
    args: dict[str, Any] = {
        "source_pubkey": PK_A,
        "total_amount_msat": 1000,
        "hops": (make_hop(),),
    }
    args.update(kw)
    return Route(**args)


def make_result(**kw: Any) -> PaymentResult:
    args: dict[str, Any] = {
        "id": 1,
        "time_fwd_ns": 10,
        "time_reply_ns": 20,
        "route": make_route(),
    }
    args.update(kw)
    return PaymentResult(**args)


# (constructor, class name, field name) for every u64 field of the model.
U64_FIELDS = [
    (make_hop, "Hop", "channel_id"),
    (make_hop, "Hop", "amount_to_forward_msat"),
    (make_route, "Route", "total_amount_msat"),
    (make_result, "PaymentResult", "id"),
    (make_result, "PaymentResult", "time_fwd_ns"),
    (make_result, "PaymentResult", "time_reply_ns"),
]
PUBKEY_FIELDS = [
    (make_hop, "Hop", "pubkey"),
    (make_route, "Route", "source_pubkey"),
]
BOOL_FIELDS = [
    (make_hop, "Hop", "has_blinding_point"),
    (make_hop, "Hop", "has_custom_records"),
]


# -- integers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "owner", "name"), U64_FIELDS)
@pytest.mark.parametrize("value", [0, 1, 2**63, U64_MAX])
def test_u64_fields_accept_edges(make: Any, owner: str, name: str, value: int) -> None:
    assert getattr(make(**{name: value}), name) == value


@pytest.mark.parametrize(("make", "owner", "name"), U64_FIELDS)
@pytest.mark.parametrize("value", [-1, 2**64, -(2**64), 2**100])
def test_u64_fields_reject_out_of_range(make: Any, owner: str, name: str, value: int) -> None:
    with pytest.raises(ValueError) as info:
        make(**{name: value})
    message = str(info.value)
    assert f"{owner}.{name}" in message
    assert repr(value) in message
    assert "u64" in message


@pytest.mark.parametrize(("make", "owner", "name"), U64_FIELDS)
@pytest.mark.parametrize("value", [True, False, "1", 1.0, None, b"\x01"])
def test_u64_fields_reject_wrong_types(make: Any, owner: str, name: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        make(**{name: value})
    message = str(info.value)
    assert f"{owner}.{name}" in message
    assert repr(value) in message


def test_exact_error_message_of_the_brief() -> None:
    with pytest.raises(ValueError) as info:
        make_hop(channel_id=-1)
    assert str(info.value) == "Hop.channel_id must be a u64 (0 <= x < 2**64), got -1"


def test_int_subclass_is_stored_as_plain_int() -> None:
    class MyInt(int):
        pass

    hop = make_hop(channel_id=MyInt(5))
    assert type(hop.channel_id) is int
    assert hop == make_hop(channel_id=5)


# -- public keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "owner", "name"), PUBKEY_FIELDS)
@pytest.mark.parametrize("length", [0, 32, 34, 65])
def test_pubkeys_reject_wrong_length(make: Any, owner: str, name: str, length: int) -> None:
    with pytest.raises(ValueError) as info:
        make(**{name: b"\x02" * length})
    message = str(info.value)
    assert f"{owner}.{name}" in message
    assert f"got {length} bytes" in message


@pytest.mark.parametrize(("make", "owner", "name"), PUBKEY_FIELDS)
@pytest.mark.parametrize("value", [PK_A.hex(), None, 5, list(PK_A)])
def test_pubkeys_reject_non_bytes(make: Any, owner: str, name: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        make(**{name: value})
    assert f"{owner}.{name}" in str(info.value)


@pytest.mark.parametrize(("make", "owner", "name"), PUBKEY_FIELDS)
@pytest.mark.parametrize("convert", [bytearray, memoryview])
def test_pubkeys_convert_bytes_like(make: Any, owner: str, name: str, convert: Any) -> None:
    obj = make(**{name: convert(PK_A)})
    assert type(getattr(obj, name)) is bytes
    assert obj == make(**{name: PK_A})


def test_huge_value_is_shortened_in_message() -> None:
    with pytest.raises(ValueError) as info:
        make_hop(pubkey=b"\x00" * 10_000)
    assert len(str(info.value)) < 300


# -- flags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "owner", "name"), BOOL_FIELDS)
@pytest.mark.parametrize("value", [0, 1, None, "True"])
def test_flags_reject_non_bool(make: Any, owner: str, name: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        make(**{name: value})
    assert f"{owner}.{name}" in str(info.value)
    assert repr(value) in str(info.value)


def test_flags_default_false() -> None:
    hop = Hop(1, PK_B, 2)
    assert hop.has_blinding_point is False
    assert hop.has_custom_records is False


# -- routes ---------------------------------------------------------------------------------


def test_hops_stored_as_tuple_so_list_and_tuple_compare_equal() -> None:
    hop = make_hop()
    from_list = make_route(hops=[hop, hop])
    from_tuple = make_route(hops=(hop, hop))
    assert from_list.hops == (hop, hop)
    assert type(from_list.hops) is tuple
    assert from_list == from_tuple
    assert hash(from_list) == hash(from_tuple)


def test_route_copies_the_callers_list() -> None:
    hops = [make_hop()]
    route = make_route(hops=hops)
    hops.append(make_hop())
    assert len(route.hops) == 1


def test_empty_hops_allowed() -> None:
    assert make_route(hops=[]).hops == ()


@pytest.mark.parametrize("hops", [[make_hop(), "hop"], [None], [(1, PK_B, 2)]])
def test_hops_elements_must_be_hops(hops: list[object]) -> None:
    with pytest.raises(TypeError, match=r"Route\.hops\[\d\]"):
        make_route(hops=hops)


@pytest.mark.parametrize("hops", ["", b"", 5, None, {make_hop()}, iter([make_hop()])])
def test_hops_must_be_a_sequence(hops: object) -> None:
    with pytest.raises(TypeError, match=r"Route\.hops"):
        make_route(hops=hops)


# -- failures -------------------------------------------------------------------------------


def test_failure_source_unknown() -> None:
    failure = PaymentFailure()
    assert failure.source_index is None
    assert failure.message is None
    assert failure.code is None
    assert failure.code_name is None


@pytest.mark.parametrize("index", [0, 1, 255])
def test_source_index_range_ok(index: int) -> None:
    assert PaymentFailure(index).source_index == index


@pytest.mark.parametrize("index", [-1, 256, 2**64])
def test_source_index_out_of_range(index: int) -> None:
    with pytest.raises(ValueError) as info:
        PaymentFailure(index)
    assert "PaymentFailure.source_index" in str(info.value)
    assert repr(index) in str(info.value)


@pytest.mark.parametrize("index", [True, False, "1", 1.0])
def test_source_index_wrong_type(index: object) -> None:
    with pytest.raises(TypeError) as info:
        PaymentFailure(index)  # type: ignore[arg-type]
    assert "PaymentFailure.source_index" in str(info.value)
    assert repr(index) in str(info.value)


@pytest.mark.parametrize("message", [b"", b"\x10"])
def test_message_needs_two_bytes(message: bytes) -> None:
    with pytest.raises(ValueError) as info:
        PaymentFailure(0, message)
    assert "PaymentFailure.message" in str(info.value)
    assert repr(message) in str(info.value)


def test_message_of_two_bytes_ok() -> None:
    assert PaymentFailure(0, b"\x10\x07").code == 0x1007


def test_message_without_source_index_rejected() -> None:
    with pytest.raises(ValueError, match="source_index"):
        PaymentFailure(None, b"\x10\x07")


@pytest.mark.parametrize("message", ["1007", 4103, [16, 7]])
def test_message_wrong_type(message: object) -> None:
    with pytest.raises(TypeError, match=r"PaymentFailure\.message"):
        PaymentFailure(0, message)  # type: ignore[arg-type]


@pytest.mark.parametrize("convert", [bytearray, memoryview])
def test_message_bytes_like_converted(convert: Any) -> None:
    failure = PaymentFailure(3, convert(b"\x10\x07ab"))
    assert type(failure.message) is bytes
    assert failure == PaymentFailure(3, b"\x10\x07ab")


def test_failure_codes_and_names() -> None:
    failure = PaymentFailure(2, b"\x10\x07\x00\x00")
    assert failure.code == model.TEMPORARY_CHANNEL_FAILURE == 0x1007
    assert failure.code_name == "temporary_channel_failure"
    assert PaymentFailure(0, b"\x12\x34").code_name == "unknown_failure_0x1234"
    assert PaymentFailure(0, b"\x00\x00").code_name == "unknown_failure_0x0000"


def test_failure_code_table_matches_bolt4() -> None:
    badonion, perm, node, update = 0x8000, 0x4000, 0x2000, 0x1000
    expected = {
        "invalid_realm": perm | 1,
        "temporary_node_failure": node | 2,
        "permanent_node_failure": perm | node | 2,
        "required_node_feature_missing": perm | node | 3,
        "invalid_onion_version": badonion | perm | 4,
        "invalid_onion_hmac": badonion | perm | 5,
        "invalid_onion_key": badonion | perm | 6,
        "temporary_channel_failure": update | 7,
        "permanent_channel_failure": perm | 8,
        "required_channel_feature_missing": perm | 9,
        "unknown_next_peer": perm | 10,
        "amount_below_minimum": update | 11,
        "fee_insufficient": update | 12,
        "incorrect_cltv_expiry": update | 13,
        "expiry_too_soon": update | 14,
        "incorrect_or_unknown_payment_details": perm | 15,
        "final_incorrect_cltv_expiry": 18,
        "final_incorrect_htlc_amount": 19,
        "channel_disabled": update | 20,
        "expiry_too_far": 21,
        "invalid_onion_payload": perm | 22,
        "mpp_timeout": 23,
        "invalid_onion_blinding": badonion | perm | 24,
    }
    by_name = {name: code for code, name in FAILURE_CODE_NAMES.items()}
    for name, code in expected.items():
        assert by_name[name] == code, name
        # Every name has an UPPER_CASE module constant with the same number.
        assert getattr(model, name.upper()) == code
    # The only extras are the two codes BOLT 4 retired, which old rows may still hold.
    assert set(by_name) - set(expected) == {"incorrect_payment_amount", "final_expiry_too_soon"}
    assert len(by_name) == len(FAILURE_CODE_NAMES)  # names are unique


def test_failure_code_names_is_read_only() -> None:
    with pytest.raises(TypeError):
        FAILURE_CODE_NAMES[1] = "x"  # type: ignore[index]


def test_from_code() -> None:
    failure = PaymentFailure.from_code(3, model.FEE_INSUFFICIENT, b"\x01\x02")
    assert failure == PaymentFailure(3, b"\x10\x0c\x01\x02")
    assert failure.code_name == "fee_insufficient"
    assert PaymentFailure.from_code(0, model.MPP_TIMEOUT).message == b"\x00\x17"


@pytest.mark.parametrize(
    ("code", "error"), [(-1, ValueError), (0x10000, ValueError), (True, TypeError), ("1", TypeError)]
)
def test_from_code_rejects_bad_code(code: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="code"):
        PaymentFailure.from_code(0, code)


def test_from_code_rejects_bad_index_and_payload() -> None:
    with pytest.raises(ValueError, match="source_index"):
        PaymentFailure.from_code(256, 1)
    with pytest.raises(TypeError, match="payload"):
        PaymentFailure.from_code(0, 1, "x")  # type: ignore[arg-type]


# -- results --------------------------------------------------------------------------------


def test_success_property() -> None:
    assert make_result().success is True
    assert make_result(failure=PaymentFailure()).success is False
    assert make_result(failure=PaymentFailure(1, b"\x40\x0f")).success is False


def test_key_layout() -> None:
    result = make_result(id=0x0102030405060708, time_reply_ns=0x1112131415161718)
    key = result.key
    assert len(key) == KEY_LEN == 49
    assert key[:8] == bytes.fromhex("1112131415161718")
    assert key[8:16] == bytes.fromhex("0102030405060708")
    assert key[16:] == PK_A
    assert len(PK_A) == PUBKEY_LEN


def test_key_not_part_of_equality_or_repr_and_recomputed_by_replace() -> None:
    result = make_result()
    assert "_key" not in repr(result)
    replaced = dataclasses.replace(result, id=99)
    assert replaced.key[8:16] == (99).to_bytes(8, "big")
    assert replaced != result
    assert dataclasses.replace(replaced, id=1) == result


def test_results_are_frozen_hashable_and_picklable() -> None:
    result = make_result(failure=PaymentFailure(0, b"\x20\x02"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.id = 5  # type: ignore[misc]
    assert hash(result) == hash(make_result(failure=PaymentFailure(0, b"\x20\x02")))
    clone = pickle.loads(pickle.dumps(result))
    assert clone == result
    assert clone.key == result.key


@pytest.mark.parametrize(
    ("name", "value"), [("route", None), ("route", make_hop()), ("failure", "oops"), ("failure", 1)]
)
def test_result_object_fields_type_checked(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"PaymentResult.{name}"):
        make_result(**{name: value})


def test_no_ordering_check_between_times() -> None:
    assert make_result(time_fwd_ns=20, time_reply_ns=10).time_fwd_ns == 20


@given(payment_results())
def test_strategy_results_have_consistent_keys(result: PaymentResult) -> None:
    assert result.key == (
        result.time_reply_ns.to_bytes(8, "big") + result.id.to_bytes(8, "big") + result.route.source_pubkey
    )


# -- datetimes ------------------------------------------------------------------------------


def test_from_datetimes_is_exact() -> None:
    # 2023-11-14T22:13:20.999999Z: 1_700_000_000.999999 s cannot be represented exactly
    # as a float, so any float-based conversion would be off by some nanoseconds.
    fwd = datetime(2023, 11, 14, 22, 13, 20, 999_999, tzinfo=UTC)
    reply = fwd + timedelta(microseconds=1)
    result = PaymentResult.from_datetimes(7, fwd, reply, make_route())
    assert result.time_fwd_ns == 1_700_000_000_999_999_000
    assert result.time_reply_ns == 1_700_000_001_000_000_000
    assert result.id == 7
    assert result.time_fwd == fwd
    assert result.time_reply == reply
    assert result.time_fwd.tzinfo is not None
    assert result.time_fwd.utcoffset() == timedelta(0)


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2500, 1, 1), timezones=st.just(UTC)))
def test_from_datetimes_round_trips(moment: datetime) -> None:
    result = PaymentResult.from_datetimes(1, moment, moment, make_route())
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    assert result.time_fwd_ns == expected
    assert result.time_fwd == moment


def test_from_datetimes_other_timezone() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(1970, 1, 1, 2, 0, 0, 1, tzinfo=plus_two)
    result = PaymentResult.from_datetimes(1, moment, moment, make_route(), PaymentFailure())
    assert result.time_fwd_ns == 1000
    assert result.failure == PaymentFailure()


def test_from_datetimes_rejects_naive() -> None:
    naive = datetime(2024, 1, 1)
    aware = naive.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="time_fwd"):
        PaymentResult.from_datetimes(1, naive, aware, make_route())
    with pytest.raises(ValueError, match="time_reply"):
        PaymentResult.from_datetimes(1, aware, naive, make_route())


def test_from_datetimes_rejects_non_datetimes_and_pre_epoch() -> None:
    with pytest.raises(TypeError, match="time_fwd"):
        PaymentResult.from_datetimes(1, 1.5, datetime.now(UTC), make_route())  # type: ignore[arg-type]
    before = datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(ValueError, match="u64"):
        PaymentResult.from_datetimes(1, before, before, make_route())


def test_time_properties_truncate_to_microseconds() -> None:
    result = make_result(time_fwd_ns=1_999, time_reply_ns=U64_MAX)
    assert result.time_fwd == datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert result.time_reply.year == 2554


def test_source_index_int_subclass_stored_as_int() -> None:
    class Index(int):
        pass

    failure = PaymentFailure(Index(3), b"\x10\x07")
    assert type(failure.source_index) is int
    assert failure == PaymentFailure(3, b"\x10\x07")


# -- the cyclic garbage collector ---------------------------------------------------------------
# The compiled classes are acyclic (model.py explains why that is safe): the collector never
# tracks them, and nothing else about them changes.

_GC_TRACKED_BY_PATH = not mcstore.COMPILED


def _model_objects(result: PaymentResult) -> list[object]:
    return [result, result.route, *result.route.hops, *([result.failure] if result.failure else [])]


def _ways_to_get(result: PaymentResult) -> dict[str, PaymentResult]:
    """``result`` and its equal copies, by every way the library or a user makes one."""
    route = result.route
    rebuilt_hops = [
        Hop(
            channel_id=h.channel_id,
            pubkey=h.pubkey,
            amount_to_forward_msat=h.amount_to_forward_msat,
            has_blinding_point=h.has_blinding_point,
            has_custom_records=h.has_custom_records,
        )
        for h in route.hops
    ]
    keywords = PaymentResult(
        id=result.id,
        time_fwd_ns=result.time_fwd_ns,
        time_reply_ns=result.time_reply_ns,
        route=Route(source_pubkey=route.source_pubkey, total_amount_msat=route.total_amount_msat, hops=rebuilt_hops),
        failure=result.failure,
    )
    return {
        "given": result,
        "keywords and a list of hops": keywords,
        "decoded": codec.decode_result(*codec.encode_result(result)),
        "unpickled": pickle.loads(pickle.dumps(result)),
        "copied": copy.copy(result),
        "deep-copied": copy.deepcopy(result),
        "replaced": dataclasses.replace(result),
    }


@settings(max_examples=25)
@given(payment_results())
def test_model_objects_are_untracked_by_the_collector_exactly_on_the_compiled_path(result: PaymentResult) -> None:
    for how, made in _ways_to_get(result).items():
        assert made == result, how
        for obj in _model_objects(made):
            assert gc.is_tracked(obj) is _GC_TRACKED_BY_PATH, (how, type(obj).__name__)


def test_a_tuple_of_hops_is_untracked_by_the_collector_once_it_survives_a_collection() -> None:
    # CPython untracks a tuple whose items are all untracked when a collection first sees it;
    # the hops of a compiled route are then invisible to the collector too.
    route = make_route(hops=[make_hop(), make_hop(channel_id=2)])
    gc.collect()
    assert gc.is_tracked(route.hops) is _GC_TRACKED_BY_PATH


def _pure_model() -> Any:
    """mcstore/model.py loaded afresh as a plain Python module (the pure path's classes, also
    when the compiled core is in use)."""
    # A package of its own over mcstore's folder, so that the model's relative import of the
    # byte helpers loads them afresh from their .py file too.
    package = types.ModuleType("_mcstore_pure_core_for_tests")
    package.__path__ = [str(Path(mcstore.__file__).parent)]
    sys.modules[package.__name__] = package
    name = f"{package.__name__}.model"
    spec = importlib.util.spec_from_file_location(name, Path(mcstore.__file__).parent / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses looks the module up
    spec.loader.exec_module(module)
    return module


_PURE = _pure_model()


def _as_pure(result: PaymentResult) -> Any:
    route = result.route
    failure = result.failure
    return _PURE.PaymentResult(
        result.id,
        result.time_fwd_ns,
        result.time_reply_ns,
        _PURE.Route(
            route.source_pubkey,
            route.total_amount_msat,
            tuple(
                _PURE.Hop(h.channel_id, h.pubkey, h.amount_to_forward_msat, h.has_blinding_point, h.has_custom_records)
                for h in route.hops
            ),
        ),
        None if failure is None else _PURE.PaymentFailure(failure.source_index, failure.message),
    )


@settings(max_examples=50)
@given(payment_results(), payment_results())
def test_untracked_objects_compare_hash_and_print_as_the_pure_ones(a: PaymentResult, b: PaymentResult) -> None:
    pure_a, pure_b = _as_pure(a), _as_pure(b)
    assert gc.is_tracked(pure_a) and gc.is_tracked(pure_a.route)
    assert repr(a) == repr(pure_a)
    assert hash(a) == hash(pure_a)
    assert hash(a.route) == hash(pure_a.route)
    assert (a == b) is (pure_a == pure_b)
    assert (a.route == b.route) is (pure_a.route == pure_b.route)
    assert a.key == pure_a.key
    assert pickle.loads(pickle.dumps(a)) == a


def test_a_cycle_through_a_user_object_holding_results_is_still_collected() -> None:
    # Untracked objects may be referenced from a cycle (they are leaves); the cycle is collected.
    class Holder:
        pass

    holder = Holder()
    holder.me = holder  # type: ignore[attr-defined]
    holder.results = [make_result(failure=PaymentFailure(0, b"\x10\x07")), make_result(id=2)]  # type: ignore[attr-defined]
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None


@pytest.mark.skipif(not mcstore.COMPILED, reason="the compiled classes only")
@pytest.mark.parametrize("cls", [Hop, Route, PaymentFailure, PaymentResult])
def test_an_interpreted_class_cannot_subclass_a_compiled_one(cls: type) -> None:
    # What makes the compiled classes acyclic: no subclass can add a field that holds user objects.
    sub = type("Sub", (cls,), {})
    with pytest.raises(TypeError, match="interpreted classes cannot inherit from compiled"):
        sub.__new__(sub)


# -- keyword calls --------------------------------------------------------------------------------
# The compiled classes take keyword arguments through mcstore/_kwcall.c (installed by
# mcstore._select), which must change nothing but the speed: every call gives what
# type.__call__, the usual path, gives, the same object or the same error.

_SIGNATURES = {
    Hop: (("channel_id", 5), ("pubkey", PK_B), ("amount_to_forward_msat", 7), ("has_blinding_point", True),
          ("has_custom_records", False)),
    Route: (("source_pubkey", PK_A), ("total_amount_msat", 9), ("hops", [make_hop()])),
    PaymentFailure: (("source_index", 1), ("message", b"\x10\x07")),
    PaymentResult: (("id", 1), ("time_fwd_ns", 2), ("time_reply_ns", 3), ("route", make_route()),
                    ("failure", PaymentFailure(0))),
}
_ODD_VALUES = st.sampled_from([None, -1, 2**64, "x", b"\x02" * 33, True, 1.5, [make_hop()], ()])


def _outcome(call: Any) -> tuple[str, object]:
    try:
        return "value", call()
    except Exception as exc:  # the same type and message on both paths is the point
        return type(exc).__name__, str(exc)


@settings(max_examples=4 * settings().max_examples)  # cheap examples: 4x the profile's
@given(st.data())
def test_keyword_calls_give_what_type_call_gives(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(list(_SIGNATURES)))
    params = list(_SIGNATURES[cls])
    given_count = data.draw(st.integers(0, len(params)))
    chosen = params[:given_count]
    if data.draw(st.booleans()):  # leave a gap, or drop a required one
        chosen = [params[i] for i in data.draw(st.lists(st.integers(0, len(params) - 1), unique=True))]
    values = {name: (data.draw(_ODD_VALUES) if data.draw(st.integers(0, 4)) == 0 else value) for name, value in chosen}
    by_position = data.draw(st.integers(0, len(values)))
    names = list(values)
    args = [values[n] for n in names[:by_position]]
    kwargs = {n: values[n] for n in data.draw(st.permutations(names[by_position:]))}
    extra = data.draw(st.sampled_from([None, "unknown", "repeat", "code", "runtime name"]))
    if extra == "unknown":
        kwargs["amount"] = 1
    elif extra == "repeat" and args:
        kwargs[names[0]] = args[0]
    elif extra == "code" and cls is PaymentFailure:
        kwargs["code"] = 0x1007
    elif extra == "runtime name" and kwargs:
        first = next(iter(kwargs))
        kwargs["".join(list(first))] = kwargs.pop(first)  # an equal str that is not the interned one
    assert _outcome(lambda: cls(*args, **kwargs)) == _outcome(lambda: type.__call__(cls, *args, **kwargs))


@pytest.mark.skipif(not mcstore.COMPILED, reason="the compiled classes only")
def test_the_compiled_classes_take_keywords_through_the_fast_path() -> None:
    kwcall = importlib.import_module("mcstore._native._kwcall")
    for name in _select.MODEL_CLASSES:
        assert kwcall.installed(getattr(model, name)), name
