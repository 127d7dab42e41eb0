"""Case 3: what ``add_result`` costs the caller, in ns per call, beside a bare ``deque.append``.

``add_result`` is on the payment path: lnd calls ``AddResult`` for every attempt. Both loops
take the same pre-built results, through a bound method looked up once, so the difference is
the store's own work: the type and state checks, the intake queue, the counters.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio

import mcstore

from .common import Config, Figure, Stats, check, collect_garbage, make_results, now_ns

ADD_RESULT_TARGET_NS: Final = 300.0
"""Issue 11: add_result <= 300 ns."""


def steps(cfg: Config) -> int:
    return 1


async def _run(cfg: Config) -> list[Figure]:
    calls = 10_000
    results = make_results(0, calls)
    store_samples: list[float] = []
    deque_samples: list[float] = []
    async with mcstore.open_store(cfg.path("add.sqlite"), max_records=0, flush_interval=3600) as store:
        for _ in range(cfg.scaled(15, 5)):
            add = store.add_result
            accepted = store.stats().accepted
            collect_garbage()
            t0 = now_ns()
            for r in results:
                add(r)
            store_samples.append((now_ns() - t0) / 1e9 / calls)
            check(store.stats().accepted == accepted + calls, "add_result: accepted count is off")

            plain: deque[mcstore.PaymentResult] = deque()
            append = plain.append
            collect_garbage()
            t0 = now_ns()
            for r in results:
                append(r)
            deque_samples.append((now_ns() - t0) / 1e9 / calls)
            check(len(plain) == calls, "deque.append: length is off")
            # Untimed: empty the store between repetitions (the same keys again dedupe).
            await store.flush()
            check(store.stats().pending == 0, "add_result: flush left results pending")
    fig = Figure(
        case=3,
        label="add_result, per call",
        kind="time",
        value=Stats.of(store_samples),
        baseline_label="deque.append, same objects",
        baseline=Stats.of(deque_samples),
        target=f"<= {ADD_RESULT_TARGET_NS:g} ns",
        extra={"calls_per_repetition": calls},
    )
    fig.passed = fig.value.median * 1e9 <= ADD_RESULT_TARGET_NS
    cfg.advance("case 3: add_result")
    return [fig]


def run(cfg: Config) -> list[Figure]:
    return trio.run(_run, cfg)
