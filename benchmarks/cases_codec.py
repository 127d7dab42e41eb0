"""Case 4: the codec, in us per result, for routes of 1, 3 and 20 hops.

Baseline: ``pickle`` (protocol 5, C-accelerated) on the very same objects: what a generic
serializer in this interpreter costs for the same data. ``decode_result`` does more than
``pickle.loads``: it checks every TLV bound and builds validated model objects.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Final

import mcstore

from .common import Config, Figure, Stats, check, collect_garbage, make_results, now_ns

HOPS: Final = (1, 3, 20)


def steps(cfg: Config) -> int:
    return len(HOPS)


def run(cfg: Config) -> list[Figure]:
    encode, decode = mcstore.encode_result, mcstore.decode_result
    dumps, loads = pickle.dumps, pickle.loads
    count = 2000
    figures: list[Figure] = []
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
        figures.append(
            Figure(
                case=4,
                label=f"encode, {hops} hop{'s' if hops > 1 else ''}",
                kind="time",
                value=Stats.of(samples["enc"]),
                baseline_label="pickle.dumps, same objects",
                baseline=Stats.of(samples["dump"]),
                note=f"{size:.0f} B per key+value",
            )
        )
        figures.append(
            Figure(
                case=4,
                label=f"decode, {hops} hop{'s' if hops > 1 else ''}",
                kind="time",
                value=Stats.of(samples["dec"]),
                baseline_label="pickle.loads, same objects",
                baseline=Stats.of(samples["load"]),
            )
        )
        cfg.advance(f"case 4: codec, {hops} hop{'s' if hops > 1 else ''}")
    return figures
