"""The tutorial's first program: record two payment attempts into tutorial.sqlite."""

from datetime import UTC, datetime, timedelta

import trio

import mcstore
from mcstore import Hop, PaymentFailure, PaymentResult, Route
from mcstore.model import TEMPORARY_CHANNEL_FAILURE

ME = bytes.fromhex("02" + "aa" * 32)  # our node's pubkey (33 bytes)
ALICE = bytes.fromhex("03" + "bb" * 32)
BOB = bytes.fromhex("02" + "cc" * 32)


async def main() -> None:
    # One route: us -> Alice -> Bob, 50,000 sat to Bob (amounts in msat).
    route = Route(
        source_pubkey=ME,
        total_amount_msat=50_000_000,
        hops=[
            Hop(channel_id=101, pubkey=ALICE, amount_to_forward_msat=50_000_000),
            Hop(channel_id=202, pubkey=BOB, amount_to_forward_msat=50_000_000),
        ],
    )
    sent = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    async with mcstore.open_store("tutorial.sqlite") as store:
        # The first attempt failed at Alice (hop 1): she could not forward to Bob.
        failure = PaymentFailure.from_code(source_index=1, code=TEMPORARY_CHANNEL_FAILURE)
        store.add_result(PaymentResult.from_datetimes(1, sent, sent + timedelta(seconds=1), route, failure))
        # The retry, a second later, succeeded.
        later = sent + timedelta(seconds=2)
        store.add_result(PaymentResult.from_datetimes(2, later, later + timedelta(seconds=1), route))
        print(store.stats().accepted, "accepted")
    # Leaving the block flushed both: they are durable now.
    print("closed:", store.stats().stored, "stored,", len(store.unpersisted), "not durable")


trio.run(main)
