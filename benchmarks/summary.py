"""``python -m benchmarks.summary PATH [PATH ...]``: the targets over several runs.

One run of ``python -m benchmarks`` on a shared VM can pass a target that the next run misses
(the raw side's fsync alone swings by 20 %). This reads the JSON of several runs (each PATH is
a run's ``--out`` directory, or one of its ``*.json`` files) and prints, for every row with a
target: in how many runs it passed, the median of its value over the runs; for a ratio target
("<= 1.3x raw"), the median, least and greatest of its ratio, and, where the row has a floor
row (see :class:`~benchmarks.common.ThreadFloor`), the floor's median ratio. Its verdict:

- ``met``: passed in more than half of the runs (and, for a ratio target, the median ratio
  meets it);
- ``out of reach``: not met, and the floor's median ratio alone breaks the target;
- ``MISS``: neither.

For example, ten runs of cases 1 and 2::

    for i in $(seq 10); do python -m benchmarks --only flush,throughput --out /tmp/runs/$i; done
    python -m benchmarks.summary /tmp/runs/*

Exit status: 0 after a summary, whatever the verdicts; 2 if a PATH holds no results.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import fmt

_TARGET = re.compile(r"^\s*([<>]=)\s*([0-9.]+)x\b")


@dataclass
class Row:
    """One labelled row with a target, over the runs (results files) that have it."""

    label: str
    target: str
    kind: str
    values: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)
    floor_ratios: list[float] = field(default_factory=list)

    @property
    def on_ratio(self) -> bool:
        """True for a target on the ratio to the baseline ("<= 1.3x raw", ">= 0.8x raw") with at
        least one ratio measured (a run without a baseline has none)."""
        return _TARGET.match(self.target) is not None and bool(self.ratios)

    def breaks(self, ratio: float) -> bool:
        """True if ``ratio`` fails this row's ratio target."""
        match = _TARGET.match(self.target)
        if match is None:
            raise ValueError(f"row {self.label!r}: cannot read a ratio target from {self.target!r}")
        limit = float(match.group(2))
        return ratio > limit if match.group(1) == "<=" else ratio < limit

    @property
    def verdict(self) -> str:
        met = sum(self.passed) * 2 > len(self.passed)
        if met and self.on_ratio:
            met = not self.breaks(statistics.median(self.ratios))
        if met:
            return "met"
        if self.on_ratio and self.floor_ratios and self.breaks(statistics.median(self.floor_ratios)):
            return "out of reach"
        return "MISS"


def result_files(paths: list[Path]) -> list[Path]:
    """The results JSON files that ``paths`` name (files as given, directories' ``*.json``), each once."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                raise ValueError(f"{str(path)!r} holds no *.json results of python -m benchmarks")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{str(path)!r} does not exist")
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def collect(runs: list[dict[str, Any]]) -> tuple[list[Row], list[str]]:
    """The rows with a target, in first-seen order, each with its floor row's ratio from the
    runs that have both; and warnings (floor rows whose target row is missing from their run).

    Raises ``ValueError`` if a row's target or kind differs between runs.
    """
    rows: dict[str, Row] = {}
    warnings: list[str] = []
    for run in runs:
        floors: dict[str, float] = {}
        seen: set[str] = set()
        for fig in run.get("figures", []):
            ratio = fig.get("ratio")
            floor_of = fig.get("extra", {}).get("floor_of")
            if floor_of:
                if ratio is not None:
                    floors[floor_of] = float(ratio)
                continue
            if not fig.get("target") or fig.get("passed") is None:
                continue
            label = fig["label"]
            row = rows.setdefault(label, Row(label, fig["target"], fig["kind"]))
            if (row.target, row.kind) != (fig["target"], fig["kind"]):
                raise ValueError(
                    f"row {label!r} has target {fig['target']!r} ({fig['kind']}) in one run "
                    f"and {row.target!r} ({row.kind}) in another"
                )
            stat = fig.get("stat", "median")
            row.values.append(float(fig["value"]["median" if stat == "p50" else stat]))
            if ratio is not None:
                row.ratios.append(float(ratio))
            row.passed.append(bool(fig["passed"]))
            seen.add(label)
        for label, ratio in floors.items():
            if label in seen:
                rows[label].floor_ratios.append(ratio)
            else:
                warnings.append(f"a floor row of {label!r} without that row in its run: left out")
    return list(rows.values()), warnings


def markdown(rows: list[Row], runs: int) -> str:
    lines = [
        f"Over {runs} results files; passed = in how many of the files that have the row; value and ratio "
        "= medians of the files' figures, ratio to the same-run baseline (least-greatest).",
        "",
        "| row | target | passed | value | ratio | floor | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = floor = ""
        if row.on_ratio:
            ratio = f"{statistics.median(row.ratios):.2f}x ({min(row.ratios):.2f}-{max(row.ratios):.2f})"
            if row.floor_ratios:
                floor = f"{statistics.median(row.floor_ratios):.2f}x"
        lines.append(
            f"| {row.label} | {row.target} | {sum(row.passed)}/{len(row.passed)} | "
            f"{fmt(row.kind, statistics.median(row.values))} | {ratio} | {floor} | {row.verdict} |"
        )
    return "\n".join(lines)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("figures"), list):
        raise ValueError(f"{str(path)!r} is not the JSON of python -m benchmarks (no figures list)")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.summary",
        description="The targets over several runs of python -m benchmarks.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a run's --out directory or JSON file")
    args = parser.parse_args(argv)
    try:
        files = result_files(args.paths)
        runs = [_load(f) for f in files]
        rows, warnings = collect(runs)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not rows:
        parser.error(f"no row with a target in {len(files)} results files")
    print(markdown(rows, len(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
