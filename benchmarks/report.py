"""Presenting a run: the printed table, ``<name>.json``, ``<name>.md`` and the flush-cost plot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .common import Figure, Stats

COLUMNS = ("#", "Measure", "mcstore", "spread (IQR)", "Baseline (same run)", "baseline", "ratio", "Target", "")


# -- numbers ---------------------------------------------------------------------------------


def _unit(kind: str, x: float) -> tuple[float, str]:
    """The scale and unit to show ``x`` of this kind in."""
    if kind == "time":
        for scale, unit in ((1.0, " s"), (1e-3, " ms"), (1e-6, " us")):
            if abs(x) >= scale:
                return scale, unit
        return 1e-9, " ns"
    if kind == "bytes":
        return 2.0**20, " MiB"
    if kind == "rate":
        for scale, unit in ((1e6, "M/s"), (1e3, "k/s")):
            if x >= scale:
                return scale, unit
        return 1.0, "/s"
    return 1.0, ""


def fmt(kind: str, x: float) -> str:
    """One figure with its unit, to three significant digits (MiB to one decimal)."""
    if math.isnan(x):
        return "-"
    scale, unit = _unit(kind, x)
    return f"{_num(kind, x / scale)}{unit}"


def _num(kind: str, x: float) -> str:
    if kind == "bytes":
        return f"{x:.1f}"
    if x == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{digits}f}"


def _spread(fig: Figure) -> str:
    """The interquartile range, in the median's unit, and the number of samples."""
    v = fig.value
    if fig.stat != "median":
        return f"n={v.n}"
    scale, unit = _unit(fig.kind, v.median)
    return f"{_num(fig.kind, v.p25 / scale)}-{_num(fig.kind, v.p75 / scale)}{unit}, n={v.n}"


def _status(fig: Figure) -> str:
    if fig.passed is None:
        return ""
    return "PASS" if fig.passed else "MISS"


def row(fig: Figure) -> tuple[str, ...]:
    ratio = fig.ratio
    return (
        str(fig.case),
        fig.label,
        fmt(fig.kind, fig.value.get(fig.stat)),
        _spread(fig),
        fig.baseline_label,
        fmt(fig.kind, fig.baseline.get(fig.stat)) if fig.baseline else "-",
        f"{ratio:.2f}x" if ratio is not None else "-",
        fig.target,
        _status(fig),
    )


def machine_line(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    return (
        f"{m['date']} | {m['cpu_count']} CPUs ({m['cpus_usable']} usable), {m['cpu_model']} | "
        f"{m['python']} | SQLite {m['sqlite']} | trio {m['trio']} | mcstore {m['mcstore']} "
        f"({'compiled core' if m.get('compiled') else 'pure-Python core'}) | "
        f"{m['platform']} | load {'/'.join(str(x) for x in m['loadavg_at_start'])}"
    )


def run_line(meta: dict[str, Any]) -> str:
    loads = meta.get("loadavg_by_case") or {}
    by_case = ", ".join(f"{case} {'-' if load is None else load}" for case, load in loads.items())
    return (
        f"`{meta['command']}`: {meta['mode']} run, repeat {meta['repeat']}, "
        f"wall time {meta['wall_time_s']:.0f} s; medians, spread = interquartile range over the "
        "repetitions; ratio = mcstore / baseline"
        + (f"; 1-min load average as each case started: {by_case}" if by_case else "")
    )


# -- the printed table -----------------------------------------------------------------------


def print_table(console: Console, figures: list[Figure], meta: dict[str, Any]) -> None:
    table = Table(title=f"mcstore benchmarks - {machine_line(meta)}", title_justify="left", show_lines=False)
    for name in COLUMNS:
        table.add_column(name, justify="right" if name in ("mcstore", "baseline", "ratio") else "left")
    last_case = None
    for fig in figures:
        if fig.case != last_case and last_case is not None:
            table.add_section()
        last_case = fig.case
        cells = list(row(fig))
        status = cells[-1]
        if status:
            cells[-1] = f"[green]{status}[/]" if status == "PASS" else f"[bold red]{status}[/]"
        table.add_row(*cells)
    console.print(table)
    console.print(run_line(meta))
    notes = [f"  [{f.case}] {f.label}: {f.note}" for f in figures if f.note]
    if notes:
        console.print("Notes:")
        for line in notes:
            console.print(line, highlight=False, markup=False)
    for line in meta.get("skipped", []):
        console.print(line, highlight=False, markup=False)


# -- files -----------------------------------------------------------------------------------


def _write(path: Path, text: str | bytes) -> None:
    """Write through a ``.tmp`` file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(text, bytes):
        tmp.write_bytes(text)
    else:
        tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def markdown(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"Machine: {machine_line(meta)}",
        "",
        run_line(meta) + ".",
        "",
        "| " + " | ".join(COLUMNS[:-1] + ("status",)) + " |",
        "|" + "|".join("---:" if c in ("mcstore", "baseline", "ratio") else "---" for c in COLUMNS) + "|",
    ]
    for fig in figures:
        cells = [c.replace("|", "\\|") for c in row(fig)]
        if cells[-1] == "MISS":
            cells[-1] = "**MISS**"
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- [{f.case}] {f.label}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "Notes:", "", *notes]
    skipped = [f"- {line}" for line in meta.get("skipped", [])]
    if skipped:
        lines += ["", "Skipped:", "", *skipped]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, name: str, figures: list[Figure], meta: dict[str, Any]) -> list[Path]:
    """Write ``<name>.json`` and ``<name>.md`` into ``out``; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    data = dict(meta, figures=[f.to_json() for f in figures])
    data["plot"] = {
        key: [{"n": p["n"], "store": _plain(p["store"]), "raw": _plain(p["raw"])} for p in points]
        for key, points in meta.get("plot", {}).items()
    }
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    _write(json_path, json.dumps(data, indent=2, default=str) + "\n")
    _write(md_path, markdown(figures, meta))
    return [json_path, md_path]


def _plain(stats: Stats) -> dict[str, float]:
    return {k: getattr(stats, k) for k in ("n", "median", "p25", "p75", "p5", "p95")}


def _xs(points: list[dict[str, Any]]) -> list[int]:
    return [int(p["n"]) for p in points]


def plot(path: Path, meta: dict[str, Any]) -> bool:
    """Draw the flush cost against batch size; False (and no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    points = meta.get("plot", {})
    lnd, tput = points.get("lnd", []), points.get("throughput", [])
    panels = [p for p in (lnd, tput) if p]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    ax_iter = iter(axes[0])

    def series(ax: Any, data: list[dict[str, Any]], scale: float) -> None:
        xs = [p["n"] for p in data]
        for key, label, style in (
            ("store", "mcstore: add + flush()", "o-"),
            ("raw", "raw sqlite3, same rows", "s--"),
        ):
            med = [p[key].median * scale for p in data]
            lo = [max(0.0, (p[key].median - p[key].p25) * scale) for p in data]
            hi = [max(0.0, (p[key].p75 - p[key].median) * scale) for p in data]
            ax.errorbar(xs, med, yerr=[lo, hi], fmt=style, capsize=3, label=label)

    if lnd:
        ax = next(ax_iter)
        series(ax, lnd, 1e6)
        # lnd's N=0 costs 0 us, which a log axis cannot show: only its N=1 point is drawn.
        ax.plot([1], [44.0], "k^", label="lnd PR #8549, bbolt (author's machine; N=0: 0 us)")
        ax.set_xscale("symlog", linthresh=1)
        # Log, so that the values below 10 us (an empty flush) stay readable.
        ax.set_yscale("log")
        ax.set_xticks(list(_xs(lnd)))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("N new results per flush (1000 stored, max_records=1000; raw N=0: empty txn)")
        ax.set_ylabel("time per flush (us)")
        ax.set_title("lnd's BenchmarkMissionControlStoreFlushing shape")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if tput:
        ax = next(ax_iter)
        series(ax, tput, 1e3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (results per flush)")
        ax.set_ylabel("time per flush (ms), synchronous=FULL")
        ax.set_title("accepted -> durable, by batch size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    m = meta["machine"]
    fig.suptitle(
        f"mcstore flush cost, medians with IQR - {m['date'][:10]}, {m['cpu_count']} CPUs, "
        f"{m['python']}, SQLite {m['sqlite']}, trio {m['trio']}",
        fontsize=9,
    )
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return True
