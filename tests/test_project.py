"""The project around the library: its packaging metadata and the benchmark report's plot."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_license_is_an_spdx_string_that_setuptools_accepts() -> None:
    # A `license = { text = ... }` table makes setuptools >= 77 warn that it is deprecated.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]  # the first to read SPDX strings


def test_flush_cost_plot_has_log_y_axes_readable_below_10_us(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from benchmarks.common import Stats
    from benchmarks.report import plot

    def point(n: int, store_s: float, raw_s: float) -> dict[str, Any]:
        return {"n": n, "store": Stats.of([store_s] * 3), "raw": Stats.of([raw_s] * 3)}

    lnd = [point(0, 6e-6, 3e-6), point(1, 6e-4, 3e-4), point(500, 4e-3, 2e-3)]
    meta = {
        "plot": {"lnd": lnd, "throughput": [point(1, 5e-4, 3e-4), point(1000, 9e-3, 4e-3)]},
        "machine": {"date": "2026-12-02", "cpu_count": 2, "python": "3.11", "sqlite": "3.40", "trio": "0.35"},
    }
    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)
    path = tmp_path / "flush_cost.png"
    assert plot(path, meta)
    assert path.stat().st_size > 0
    (figure,) = figures
    for ax in figure.axes:
        assert ax.get_yscale() == "log"
    bottom, top = figure.axes[0].get_ylim()
    # The 3 us and 6 us points sit in the lower part of the axis, a decade apart from 44 us.
    assert bottom < 3 < 6 < 44 < top


def test_benchmark_summary_gives_each_target_its_verdict_over_runs(tmp_path: Path) -> None:
    import json

    from benchmarks import summary

    def fig(
        label: str, target: str, ratio: float | None, passed: bool | None, *,
        kind: str = "time", stat: str = "median", floor_of: str = "",
    ) -> dict[str, Any]:
        value = {"median": 1e-4 * (ratio or 1), "p99": 9e-3}
        return {
            "label": label, "kind": kind, "stat": stat, "target": target, "passed": passed, "value": value,
            "ratio": ratio, "extra": {"floor_of": floor_of} if floor_of else {},
        }

    runs = [
        # Met in 2 of 3 runs, median 1.2x.
        [fig("A", "<= 1.3x raw", r, r <= 1.3) for r in (1.2, 1.4, 1.1)],
        # Missed in every run, and the floor alone breaks 1.3x: out of reach.
        [fig("B", "<= 1.3x raw", r, False) for r in (1.6, 1.7, 1.8)],
        [fig("B floor", "", r, None, floor_of="B") for r in (1.4, 1.35, 1.5)],
        # Missed, with a floor within reach (its least ratio alone would break nothing either).
        [fig("C", "<= 1.3x raw", r, False) for r in (1.4, 1.5, 1.35)],
        [fig("C floor", "", r, None, floor_of="C") for r in (1.2, 1.25, 1.31)],
        # A rate target (higher is better): met 2 of 3; and one missed 2 of 3 (a minority of passes).
        [fig("R", ">= 0.8x raw", r, r >= 0.8, kind="rate") for r in (0.9, 0.7, 0.85)],
        [fig("S", ">= 0.8x raw", r, r >= 0.8, kind="rate") for r in (0.9, 0.7, 0.75)],
        [fig("S floor", "", r, None, kind="rate", floor_of="S") for r in (0.85, 0.82, 0.79)],
        # A target on the value (p99), not on a ratio, with no baseline in one run.
        [fig("D", "p99 <= 10 ms", r, True, stat="p99") for r in (1.0, None, 1.5)],
        # A value target passed in 1 run of 3.
        [fig("H", "<= 1 ms", None, p) for p in (True, False, False)],
    ]
    for i in range(3):
        out = tmp_path / f"run{i}"
        out.mkdir()
        (out / "partial.json").write_text(json.dumps({"figures": [rows[i] for rows in runs]}))
    paths = sorted(tmp_path.glob("run*"))
    files = summary.result_files([*paths, paths[0] / "partial.json"])  # a file named twice counts once
    assert len(files) == 3
    found, warnings = summary.collect([json.loads(p.read_text()) for p in files])
    rows = {row.label: row for row in found}
    assert {label: row.verdict for label, row in rows.items()} == {
        "A": "met", "B": "out of reach", "C": "MISS", "R": "met", "S": "MISS", "D": "met", "H": "MISS"
    }
    assert warnings == []
    assert rows["B"].floor_ratios == [1.4, 1.35, 1.5]
    assert rows["D"].values == [9e-3] * 3 and not rows["D"].on_ratio
    text = summary.markdown(found, 3)
    assert "| A | <= 1.3x raw | 2/3 | 120 us | 1.20x (1.10-1.40) |  | met |" in text
    assert "| D | p99 <= 10 ms | 3/3 | 9.00 ms |  |  | met |" in text
    # A majority of passes is not enough when the median ratio misses.
    assert summary.Row("E", "<= 1.3x raw", "time", [1.0] * 3, [1.2, 1.4, 1.5], [True, False, False]).verdict == "MISS"
    assert summary.Row("F", "<= 1.3x raw", "time", [1.0] * 3, [1.2, 1.2, 1.5], [True, True, True]).verdict == "met"
    # Half the runs is not a majority.
    assert summary.Row("I", "<= 1 ms", "time", [1.0] * 2, [], [True, False]).verdict == "MISS"
    # A floor row without its target row in the same run is reported, not attached.
    _, warnings = summary.collect([{"figures": [fig("G floor", "", 1.5, None, floor_of="G")]}])
    assert warnings == ["a floor row of 'G' without that row in its run: left out"]
    with pytest.raises(ValueError, match="has target"):
        summary.collect([
            {"figures": [fig("A", "<= 1.3x raw", 1.0, True)]}, {"figures": [fig("A", "<= 2x raw", 1.0, True)]}
        ])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no"):
        summary.result_files([empty])


def test_flush_phases_diagnostic_orders_its_timestamps(tmp_path: Path) -> None:
    import trio

    from benchmarks import phases
    from benchmarks.common import CheckFailed

    # One flush's phases run from each timestamp to the next, from the first loop turn after
    # the call ended, and add up to the total; timestamps out of order fail the run.
    marks = phases._Marks()
    marks.entered, marks.started, marks.finished, marks.returned = 30, 40, 70, 95
    marks.io_wakes[:] = [35, 60, 80, 90]
    one = phases._phases(marks, 10, 20, 100)
    assert one == {
        "adds": 10, "to hand-off": 10, "wake": 10, "in thread": 30, "loop wakes": 10, "to resume": 15,
        "after": 5, "total": 90,
    }
    marks.returned = 75  # before the loop's turn at 80
    with pytest.raises(CheckFailed, match="out of order"):
        phases._phases(marks, 10, 20, 100)
    marks.io_wakes[:] = [35, 60]
    with pytest.raises(CheckFailed, match="no event loop turn"):
        phases._phases(marks, 10, 20, 100)

    medians = trio.run(phases.measure, 2, 1, 3, tmp_path)
    assert set(medians) == {"store", "floor", "raw"}
    for side in ("store", "floor"):
        assert list(medians[side]) == list(phases.PHASES)
        assert all(v >= 0 for v in medians[side].values()), medians[side]
    assert medians["store"]["adds"] > 0 and medians["floor"]["adds"] == 0
    assert medians["raw"]["total"] > 0
    assert "| in thread |" in phases.table(2, medians)


def test_benchmark_builders_agree_and_routes_vary() -> None:
    from benchmarks.common import (
        add_as_users,
        build_results,
        lnd_bench_results,
        lnd_bench_specs,
        result_specs,
        varied_result_specs,
    )

    # Built as users write them (keywords, hop lists) or positionally: the same results.
    specs = result_specs(0, 8) + lnd_bench_specs(8, 2)
    built: list[Any] = []
    add_as_users(built.append, specs)
    assert built == build_results(specs)
    assert lnd_bench_results(8, 2) == build_results(lnd_bench_specs(8, 2))
    assert {type(r.failure).__name__ for r in built} == {"NoneType", "PaymentFailure"}

    varied = list(varied_result_specs(200))
    assert varied == list(varied_result_specs(200))  # a fixed seed
    assert [spec[0] for spec in varied] == list(range(200))
    assert all(1 <= len(spec[5]) <= 5 and len({hop[1] for hop in spec[5]}) == len(spec[5]) for spec in varied)
    assert len({hop[1] for spec in varied for hop in spec[5]}) > 300  # many nodes, not a few routes
    build_results(varied)  # valid values


def test_benchmark_flush_rows_judged_against_the_floor_are_not_tied_to_it() -> None:
    from benchmarks.cases_flush import _floor_figure
    from benchmarks.common import Figure, Stats

    def stats(x: float) -> Stats:
        return Stats.of([x] * 3)

    store = Figure(1, "flush, N=1", "time", stats(3.0), "raw", stats(2.0))
    free = _floor_figure(1, "flush floor, N=1", stats(2.5), store, None)
    assert free.extra == {} and "reach" not in free.note and "1.20x this floor" in free.note
    store.target = "<= 1.3x raw"
    tied = _floor_figure(1, "flush floor, N=1", stats(2.5), store, 1.3)
    assert tied.extra == {"floor_of": "flush, N=1"} and "<= 1.3x raw is within reach" in tied.note


def test_benchmark_estimator_queries_split_by_whether_the_pair_decides() -> None:
    from benchmarks.cases_mission import _decides, _history
    from mcstore.mission import AprioriEstimator, BimodalEstimator

    now = 1_700_000_000 * 10**9
    results = _history(30, now)
    success_only = next(peer for peer, r in results.items() if r[0] is None)
    untried = b"\x04" + bytes(32)
    apriori, bimodal = AprioriEstimator(), BimodalEstimator()
    # A success at least as large decides apriori; nothing decides an untried pair.
    assert _decides(apriori, (now, results, success_only, 1000, 1_000_000))
    assert not _decides(apriori, (now, results, untried, 1000, 1_000_000))
    assert not _decides(bimodal, (now, results, untried, 1000, 1_000_000))
    # Bimodal: a result within decay_time decides, an older one does not.
    fresh = {**results, untried: results[success_only]._replace(success_time_ns=now - 3_600 * 10**9)}
    stale = {**results, untried: results[success_only]._replace(success_time_ns=now - 8 * 86_400 * 10**9)}
    assert _decides(bimodal, (now, fresh, untried, 1000, 1_000_000))
    assert not _decides(bimodal, (now, stale, untried, 1000, 1_000_000))
