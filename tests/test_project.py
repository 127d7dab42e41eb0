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

    def fig(label: str, target: str, ratio: float, passed: bool | None, floor_of: str = "") -> dict[str, Any]:
        return {
            "label": label, "kind": "time", "stat": "median", "target": target, "passed": passed,
            "value": {"median": ratio * 1e-4}, "ratio": ratio, "extra": {"floor_of": floor_of} if floor_of else {},
        }

    runs = [
        # met in 2 of 3 runs, median 1.2x; a miss in 3 of 3 whose floor alone breaks 1.3x;
        # a miss whose floor is within reach; a target on the value, not on the ratio.
        [fig("A", "<= 1.3x raw", r, r <= 1.3) for r in (1.2, 1.4, 1.1)],
        [fig("B", "<= 1.3x raw", r, False) for r in (1.6, 1.7, 1.8)],
        [fig("B floor", "", r, None, floor_of="B") for r in (1.4, 1.35, 1.5)],
        [fig("C", "<= 1.3x raw", r, False) for r in (1.4, 1.5, 1.35)],
        [fig("C floor", "", r, None, floor_of="C") for r in (1.2, 1.25, 1.1)],
        [fig("D", "<= 1 ms", r, r < 2) for r in (1.0, 3.0, 1.5)],
    ]
    for i in range(3):
        out = tmp_path / f"run{i}"
        out.mkdir()
        (out / "partial.json").write_text(json.dumps({"figures": [rows[i] for rows in runs]}))
    rows = {row.label: row for row in summary.collect([json.loads(p.read_text()) for p in summary.result_files(
        sorted(tmp_path.glob("run*")))])}
    assert {label: row.verdict for label, row in rows.items()} == {
        "A": "met", "B": "out of reach", "C": "MISS", "D": "met"
    }
    assert rows["B"].floor_ratios == [1.4, 1.35, 1.5]
    text = summary.markdown(list(rows.values()), 3)
    assert "| A | <= 1.3x raw | 2/3 | 120 us | 1.20x (1.10-1.40) |  | met |" in text
    # A majority of passes is not enough when the median ratio misses.
    assert summary.Row("E", "<= 1.3x raw", "time", [1.0] * 3, [1.2, 1.4, 1.5], [True, True, False]).verdict == "MISS"
    with pytest.raises(ValueError, match="holds no"):
        summary.result_files([tmp_path])


def test_flush_phases_diagnostic_orders_its_timestamps(tmp_path: Path) -> None:
    import trio

    from benchmarks import phases

    medians = trio.run(phases.measure, 2, 1, 3, tmp_path)
    assert set(medians) == {"store", "floor", "raw"}
    for side in ("store", "floor"):
        # Each phase runs from one timestamp to the next: none is negative, and they add up.
        assert list(medians[side]) == list(phases.PHASES)
        assert all(v >= 0 for v in medians[side].values()), medians[side]
    assert medians["store"]["adds"] > 0 and medians["floor"]["adds"] == 0
    assert medians["raw"]["total"] > 0
    assert "| in thread |" in phases.table(2, medians)
