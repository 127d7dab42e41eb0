"""Mission control over a store: what one failure teaches, and a reopen that replays it."""

import trio

from mcstore import Hop, PaymentFailure, PaymentResult, Route
from mcstore.mission import BimodalEstimator, open_mission_control
from mcstore.model import TEMPORARY_CHANNEL_FAILURE

ME, ALICE, BOB = (bytes.fromhex(prefix + byte * 32) for prefix, byte in (("02", "aa"), ("03", "bb"), ("02", "cc")))
HOUR = 3600 * 10**9


async def main() -> None:
    now = 1_700_000_000 * 10**9  # ns since the Unix epoch; without now_ns, the wall clock is used
    route = Route(source_pubkey=ME, total_amount_msat=1_000_000,
                  hops=[Hop(channel_id=1, pubkey=ALICE, amount_to_forward_msat=1_000_000),
                        Hop(channel_id=2, pubkey=BOB, amount_to_forward_msat=1_000_000)])
    async with open_mission_control("mission.sqlite", self_pubkey=ME) as mc:  # apriori, lnd's defaults
        await mc.reset()  # start from an empty history, so that every run prints the same
        p = mc.probability(ALICE, BOB, 1_000_000, 5_000, now_ns=now)
        print(round(p, 3))                                            # 0.6: an untried channel
        # Alice could not forward 1000 sat to Bob: her side of the channel lacked the liquidity.
        failure = PaymentFailure.from_code(source_index=1, code=TEMPORARY_CHANNEL_FAILURE)
        print(mc.report_result(PaymentResult(id=1, time_fwd_ns=now, time_reply_ns=now,
                                             route=route, failure=failure)))  # None: retry elsewhere
        for amount, at in ((1_000_000, now), (1_000_000, now + HOUR), (400_000, now)):
            print(round(mc.probability(ALICE, BOB, amount, 5_000, now_ns=at), 3))  # 0.0, 0.2, 0.6
        print(mc.probability(ME, ALICE, 1_000_000, 5_000, now_ns=now))  # 0.95: our own channel worked
    # Reopened: the stored history is replayed, here for the bimodal estimator.
    async with open_mission_control("mission.sqlite", self_pubkey=ME, estimator=BimodalEstimator()) as mc:
        for (frm, to), history in mc.pairs().items():
            print(frm.hex()[:6], "->", to.hex()[:6], history)
        print(round(mc.probability(ALICE, BOB, 900_000, 5_000, now_ns=now), 3))  # 0.1: under 1000 sat


trio.run(main)
