"""Case 4: building a result and the codec, in us per result, for routes of 1, 3 and 20 hops.

Building: one 3-hop result with a failure (six validated objects: three Hop, a Route, a
PaymentFailure, the PaymentResult), beside the same fields packed into plain tuples, the
cheapest objects this interpreter can build. Codec baseline: ``pickle`` (protocol 5,
C-accelerated) on the very same objects: what a generic serializer in this interpreter costs
for the same data. ``decode_result`` does more than ``pickle.loads``: it checks every TLV bound
and builds validated model objects.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Final

import mcstore

from .common import Config, Figure, Stats, check, collect_garbage, make_results, now_ns

HOPS: Final = (1, 3, 20)
# Issue 11's targets, for the 3-hop rows.
BUILD_TARGET_S: Final = 1.5e-6
ENCODE_TARGET_S: Final = 0.5e-6
DECODE_TARGET_S: Final = 1.0e-6


def steps(cfg: Config) -> int:
    return len(HOPS) + 1


def _build(cfg: Config) -> Figure:
    """Building one 3-hop result with a failure, as a caller does, against plain tuples."""
    count = 2000
    pk, update = make_results(1, 1)[0].route.source_pubkey, bytes(138)
    Hop, Route, PaymentFailure, PaymentResult = (
        mcstore.Hop,
        mcstore.Route,
        mcstore.PaymentFailure,
        mcstore.PaymentResult,
    )
    t0_ns = 1_700_000_000_000_000_000
    samples: dict[str, list[float]] = {"build": [], "tuples": []}
    built: list[object] = []
    for _ in range(cfg.scaled(9, 3)):
        collect_garbage()
        t0 = now_ns()
        for i in range(count):
            built.append(
                PaymentResult(
                    i,
                    t0_ns + i,
                    t0_ns + i + 1000,
                    Route(
                        pk,
                        100_003_000,
                        (Hop(i, pk, 100_002_000), Hop(i + 1, pk, 100_001_000), Hop(i + 2, pk, 100_000_000)),
                    ),
                    PaymentFailure(1, update),
                )
            )
        samples["build"].append((now_ns() - t0) / 1e9 / count)
        built.clear()
        collect_garbage()
        t0 = now_ns()
        for i in range(count):
            built.append(
                (
                    i,
                    t0_ns + i,
                    t0_ns + i + 1000,
                    (pk, 100_003_000, ((i, pk, 100_002_000), (i + 1, pk, 100_001_000), (i + 2, pk, 100_000_000))),
                    (1, update),
                )
            )
        samples["tuples"].append((now_ns() - t0) / 1e9 / count)
        built.clear()
    fig = Figure(
        case=4,
        label="build, 3 hops + failure",
        kind="time",
        value=Stats.of(samples["build"]),
        baseline_label="plain tuples, same fields",
        baseline=Stats.of(samples["tuples"]),
        target=f"<= {BUILD_TARGET_S * 1e6:g} us",
        note=f"compiled core: {mcstore.COMPILED}",
    )
    fig.passed = fig.value.median <= BUILD_TARGET_S
    cfg.advance("case 4: build")
    return fig


def run(cfg: Config) -> list[Figure]:
    encode, decode = mcstore.encode_result, mcstore.decode_result
    dumps, loads = pickle.dumps, pickle.loads
    count = 2000
    figures: list[Figure] = [_build(cfg)]
    for hops in HOPS:
        results = make_results(0, count, hops)
        encoded = [encode(r) for r in results]
        pickled = [dumps(r, 5) for r in results]
        for r, (key, value) in zip(results[:50], encoded[:50], strict=True):
            check(decode(key, value) == r, f"codec: round trip failed for a {hops}-hop result")
        samples: dict[str, list[float]] = {"enc": [], "dec": [], "dump": [], "load": []}
        for _ in range(cfg.scaled(9, 3)):
            # Fresh copies: encode_result caches the value on the result, and the figure is
            # the cost of encoding, not of a cache hit.
            cold = [replace(r) for r in results]
            collect_garbage()
            t0 = now_ns()
            for r in cold:
                encode(r)
            samples["enc"].append((now_ns() - t0) / 1e9 / count)
            t0 = now_ns()
            for r in results:
                dumps(r, 5)
            samples["dump"].append((now_ns() - t0) / 1e9 / count)
            collect_garbage()
            t0 = now_ns()
            for key, value in encoded:
                decode(key, value)
            samples["dec"].append((now_ns() - t0) / 1e9 / count)
            t0 = now_ns()
            for blob in pickled:
                loads(blob)
            samples["load"].append((now_ns() - t0) / 1e9 / count)
        size = sum(len(k) + len(v) for k, v in encoded) / count
        enc = Figure(
            case=4,
            label=f"encode, {hops} hop{'s' if hops > 1 else ''}",
            kind="time",
            value=Stats.of(samples["enc"]),
            baseline_label="pickle.dumps, same objects",
            baseline=Stats.of(samples["dump"]),
            note=f"{size:.0f} B per key+value",
        )
        dec = Figure(
            case=4,
            label=f"decode, {hops} hop{'s' if hops > 1 else ''}",
            kind="time",
            value=Stats.of(samples["dec"]),
            baseline_label="pickle.loads, same objects",
            baseline=Stats.of(samples["load"]),
        )
        if hops == 3:
            enc.target, enc.passed = f"<= {ENCODE_TARGET_S * 1e6:g} us", enc.value.median <= ENCODE_TARGET_S
            dec.target, dec.passed = f"<= {DECODE_TARGET_S * 1e6:g} us", dec.value.median <= DECODE_TARGET_S
        figures += (enc, dec)
        cfg.advance(f"case 4: codec, {hops} hop{'s' if hops > 1 else ''}")
    return figures
