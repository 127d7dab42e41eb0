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
