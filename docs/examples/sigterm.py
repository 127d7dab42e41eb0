"""A long-running program that stops cleanly on SIGTERM (and on Ctrl-C): the store's usual close."""

import itertools
import signal

import trio

import mcstore
from mcstore import PaymentResult, Route


async def main() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            work = trio.CancelScope()

            async def stop_on_signal() -> None:
                async for signum in signals:  # the first stops the work; later ones wait for the close
                    print(f"{signal.Signals(signum).name}: closing the store", flush=True)
                    work.cancel()

            nursery.start_soon(stop_on_signal)
            with work:
                async with mcstore.open_store("service.sqlite") as store:
                    print("ready", flush=True)
                    for i in itertools.count(1):  # stands for the node's payment attempts
                        route = Route(source_pubkey=bytes.fromhex("02" + "11" * 32), total_amount_msat=i, hops=[])
                        store.add_result(PaymentResult(id=i, time_fwd_ns=i, time_reply_ns=i, route=route))
                        await trio.sleep(0.001)
            nursery.cancel_scope.cancel()  # stop listening
    print(f"closed: {store.stats().accepted} accepted, {len(store.unpersisted)} not durable")


trio.run(main)
