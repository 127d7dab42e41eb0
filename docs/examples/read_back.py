"""The tutorial's second program: read tutorial.sqlite back, oldest reply first."""

import contextlib

import trio

import mcstore


async def main() -> None:
    async with mcstore.open_store("tutorial.sqlite") as store:
        async with contextlib.aclosing(store.iter_results()) as results:
            async for result in results:
                if result.failure is None:
                    outcome = "succeeded"
                else:
                    outcome = f"failed: {result.failure.code_name}"
                print(result.id, result.time_reply.isoformat(), outcome)


trio.run(main)
