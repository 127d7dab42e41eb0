"""``python -m benchmarks [--quick] [--out DIR] [--repeat N] [--only CASES] [--backend B]``, from the root.

Prints the results table and writes ``<name>.json``, ``<name>.md`` and the flush-cost plot
into ``--out``: ``latest.*`` and ``flush_cost.png`` for a full run of every case,
``quick.*`` and ``flush_cost_quick.png`` for ``--quick``, ``postgres.*`` for a full run of
``--backend postgres`` (case 8 alone), ``partial.*`` otherwise, so a smoke or partial run never
overwrites the published results. Case 8 starts its own throwaway PostgreSQL server (or uses
``MCSTORE_PG_DSN``), and is skipped with a note where there is none; case 9 builds its Go/bbolt
baseline with the installed Go and bbolt, and is skipped with a note where either is missing.

Exit status: 0 after a run, whatever the figures (targets are reported, not asserted);
1 if a case crashed or produced a wrong result; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import (
    cases_add,
    cases_calibrate,
    cases_close,
    cases_codec,
    cases_flush,
    cases_lnd,
    cases_mission,
    cases_postgres,
    cases_scale,
    report,
)
from .common import CheckFailed, Config, Figure, machine

CASE_NAMES = {
    "flush": 1,
    "throughput": 2,
    "add": 3,
    "codec": 4,
    "close": 5,
    "scale": 6,
    "mission": 7,
    "postgres": 8,
    "lnd": 9,
    "calibrate": 10,
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _parse_cases(text: str) -> set[int]:
    cases: set[int] = set()
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if item.isdigit() and int(item) in CASE_NAMES.values():
            cases.add(int(item))
        elif item in CASE_NAMES:
            cases.add(CASE_NAMES[item])
        else:
            names = ", ".join(f"{v}={k}" for k, v in CASE_NAMES.items())
            raise argparse.ArgumentTypeError(f"unknown case {item!r}; use numbers or names ({names})")
    if not cases:
        raise argparse.ArgumentTypeError("no case given")
    return cases


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure mcstore against same-run baselines: a table, JSON, markdown and a plot.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run for CI, under 60 s (smaller sizes, 3 repetitions)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help="directory for the JSON, markdown and PNG (default: benchmarks/results)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help="repetitions per measurement (default 9, or 3 with --quick); sample counts scale with it",
    )
    parser.add_argument(
        "--only",
        type=_parse_cases,
        default=None,
        metavar="CASES",
        help="comma-separated cases to run, by number or name: " + ", ".join(f"{v}={k}" for k, v in CASE_NAMES.items()),
    )
    parser.add_argument(
        "--backend",
        choices=("all", "sqlite", "postgres"),
        default="all",
        help="postgres: the PostgreSQL section only (case 8); sqlite: every case but 8; all (default): every case",
    )
    return parser


def _plan(cfg: Config, cases: set[int]) -> list[tuple[str, int, Callable[[], Any]]]:
    """The work to do, in order: each part's cases, the number of progress steps it takes, and itself."""
    plan: list[tuple[str, int, Callable[[], Any]]] = []
    flush_cases = cases & {1, 2}
    if flush_cases:
        label = "+".join(str(c) for c in sorted(flush_cases))
        plan.append((label, cases_flush.steps(cfg, flush_cases), lambda: cases_flush.run(cfg, flush_cases)))
    for number, module in (
        (3, cases_add),
        (4, cases_codec),
        (5, cases_close),
        (6, cases_scale),
        (7, cases_mission),
        (8, cases_postgres),
        (9, cases_lnd),
        (10, cases_calibrate),
    ):
        if number in cases:
            plan.append((str(number), module.steps(cfg), functools.partial(module.run, cfg)))
    return plan


def _loadavg() -> float | None:
    """The 1-minute load average now (None where the system has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 9)
    if repeat < 1:
        _parser().error("--repeat must be at least 1")
    cases = args.only or set(CASE_NAMES.values())
    if args.backend == "postgres":
        cases &= {CASE_NAMES["postgres"]}
    elif args.backend == "sqlite":
        cases -= {CASE_NAMES["postgres"]}
    if not cases:
        _parser().error(f"--only and --backend {args.backend} leave no case to run")
    name = "quick" if args.quick else ("latest" if cases == set(CASE_NAMES.values()) else "partial")
    if name == "partial" and cases == {CASE_NAMES["postgres"]}:
        name = "postgres"
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    console = Console(width=None if sys.stdout.isatty() else 200)
    meta: dict[str, Any] = {
        "command": command.strip(),
        "mode": "quick" if args.quick else "full",
        "repeat": repeat,
        "cases": sorted(cases),
        "machine": machine(),
    }
    started = time.perf_counter()
    tmpdir = Path(tempfile.mkdtemp(prefix="mcstore-bench-"))
    figures: list[Figure] = []
    plot_points: dict[str, Any] = {}
    cfg = Config(quick=args.quick, repeat=repeat, tmpdir=tmpdir)
    meta["loadavg_by_case"] = {}
    try:
        progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=args.quick,
        )
        plan = _plan(cfg, cases)
        with progress:
            task = progress.add_task("starting", total=sum(n for _, n, _ in plan))

            def advance(label: str) -> None:
                progress.update(task, advance=1, description=label)
                if args.quick:
                    console.print(f"  {label}  ({time.perf_counter() - started:.1f} s)", highlight=False)

            cfg.advance = advance
            for label, _, part in plan:
                # The machine is shared: the load each part started under goes with its figures.
                meta["loadavg_by_case"][label] = _loadavg()
                result = part()
                if isinstance(result, tuple):
                    part_figures, plot_points = result
                else:
                    part_figures = result
                figures += part_figures
    except CheckFailed as exc:
        console.print(f"[bold red]WRONG RESULT:[/] {exc}")
        return 1
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    figures.sort(key=lambda f: f.case)
    meta["wall_time_s"] = time.perf_counter() - started
    meta["plot"] = plot_points
    meta["skipped"] = cfg.skipped
    report.print_table(console, figures, meta)
    written = report.write_outputs(args.out, name, figures, meta)
    png = args.out / ("flush_cost.png" if name == "latest" else f"flush_cost_{name}.png")
    if plot_points and report.plot(png, meta):
        written.append(png)
    elif plot_points:
        console.print("matplotlib is not installed (pip install -e '.[bench]'): no plot written")
    misses = [f for f in figures if f.passed is False]
    console.print(
        f"Wrote {', '.join(str(p) for p in written)}. "
        f"Targets: {sum(f.passed is True for f in figures)} PASS, {len(misses)} MISS "
        "(reported, not asserted)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
