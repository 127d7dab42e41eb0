"""Case 10: calibration: ``mcstore eval`` and ``mcstore fit`` on stored histories, and their memory.

The histories are a demo node's (``mcstore.cli.demo.simulate``: random routes of 1 to 6 hops
over the demo's 200-node network, its failure mix, replies out of order), N distinct results
written in key order into a store file with raw ``executemany`` (with case 6's ``fill``),
scored against the demo's network as the channel graph (``--graph demo``).

Times are CPU time of the process (``time.process_time``: the Trio thread and the reader's
thread), as case 7 measures its replay, so that other processes on a shared 2-core machine do
not inflate them; the notes give the wall time of the same runs.

* ``eval``, 100k results (5k with ``--quick``), every registered estimator side by side,
  lnd's defaults: the time of what ``mcstore eval`` does after parsing its options (the
  read-only streamed replay through :func:`~mcstore.cli.mission_cmds.replay_history`, scoring
  each result before it is applied). Baseline: the same replay without scoring (what
  ``mcstore querymc`` does). Target <= 20 s. Then (full run only) each estimator alone, once:
  where the time goes.
* ``fit``, 20k results (1k with ``--quick``), per estimator: the time of ``mcstore fit``'s
  work (the replay recorded once, then the parameter search and the test scoring). Baseline:
  ``eval`` of the same file with that estimator alone, i.e. one scoring pass. Target <= 120 s.
* Memory: the growth of the RSS over its value before the replay (sampled every 1,000
  results), of ``eval`` at two history sizes (20k and 100k; 1k and 5k with ``--quick``), each
  in a fresh process (``python -m benchmarks.cases_calibrate``): the larger's baseline is the
  smaller, and a ratio near 1 shows memory flat in the history's size. And of ``fit`` at its
  size, whose record does grow with the history (the note gives bytes per result).
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from typing import Any, Final

import trio

import mcstore
from mcstore.cli.calibrate import demo_graph
from mcstore.cli.demo import simulate
from mcstore.cli.mission_cmds import replay_history
from mcstore.mission import ESTIMATORS, Evaluator, RecordedHistory, evaluate, fit, make_estimator

from .cases_scale import fill
from .common import NAMESPACE, Config, Figure, Stats, check, create_store_file, now_ns, rss_bytes, spawn_probe

EVAL_FULL: Final = (20_000, 100_000)
EVAL_QUICK: Final = (1_000, 5_000)
FIT_FULL: Final = 20_000
FIT_QUICK: Final = 1_000
EVAL_TARGET_S: Final = 20.0
FIT_TARGET_S: Final = 120.0
SAMPLE_EVERY: Final = 1000
T0_NS: Final = 1_767_225_600 * 1_000_000_000
MiB: Final = 1024 * 1024


def _eval_sizes(cfg: Config) -> tuple[int, ...]:
    return EVAL_QUICK if cfg.quick else EVAL_FULL


def _fit_size(cfg: Config) -> int:
    return FIT_QUICK if cfg.quick else FIT_FULL


def _reps(cfg: Config) -> int:
    return cfg.scaled(3, 1)


def steps(cfg: Config) -> int:
    alone = 0 if cfg.quick else len(ESTIMATORS)
    return 1 + _reps(cfg) + alone + len(ESTIMATORS) + len(_eval_sizes(cfg)) + 1


def _label(size: int) -> str:
    return f"{size // 1000}k"


# -- the history -----------------------------------------------------------------------------


def build(path: str, size: int) -> None:
    """Write ``size`` distinct results of a simulated demo node into a new store file, in key order."""
    by_key: dict[bytes, mcstore.PaymentResult] = {}
    for simulated in simulate(size, seed=9, start_ns=T0_NS):  # each payment makes one result or more
        by_key.setdefault(simulated.result.key, simulated.result)
        if len(by_key) == size:
            break
    check(len(by_key) == size, f"calibrate: simulated {len(by_key)} results, expected {size}")
    trio.run(create_store_file, path)
    fill(path, ((NAMESPACE, *mcstore.encode_result(by_key[key])) for key in sorted(by_key)), size)


# -- what the commands do --------------------------------------------------------------------


class _Sampler:
    """Samples the RSS every SAMPLE_EVERY results (an ``apply`` hook that chains another)."""

    def __init__(self, then: Any) -> None:
        self.then = then
        self.count = 0
        self.base = rss_bytes()
        self.peak = self.base

    def __call__(self, result: mcstore.PaymentResult) -> None:
        self.then(result)
        self.count += 1
        if self.count % SAMPLE_EVERY == 0:
            self.peak = max(self.peak, rss_bytes())


def run_eval(path: str, names: tuple[str, ...] | None = None, *, sample: bool = False) -> dict[str, Any]:
    """``mcstore eval PATH --graph demo`` (every estimator, or ``names``), as the command runs it."""
    graph = demo_graph()
    estimators = {name: make_estimator(name) for name in (names or tuple(ESTIMATORS))}
    gc.collect()
    evaluator = Evaluator(graph, estimators)
    hook: Any = _Sampler(evaluator.add) if sample else evaluator.add
    t0, c0 = now_ns(), time.process_time()
    trio.run(lambda: replay_history(path, NAMESPACE, state=evaluator.state, apply=hook))
    seconds, wall = time.process_time() - c0, (now_ns() - t0) / 1e9
    evaluation = evaluator.evaluation()
    probe: dict[str, Any] = {"seconds": seconds, "wall": wall, "results": evaluation.results, "pairs": evaluation.pairs}
    if sample:
        probe["rss_growth"] = max(hook.peak, rss_bytes()) - hook.base
    return probe


def run_replay(path: str) -> dict[str, Any]:
    """The same replay without scoring (``mcstore querymc``'s work)."""
    gc.collect()
    t0, c0 = now_ns(), time.process_time()
    replayed = trio.run(replay_history, path, NAMESPACE)
    return {"seconds": time.process_time() - c0, "wall": (now_ns() - t0) / 1e9, "results": replayed.results}


def run_fit(path: str, name: str, *, sample: bool = False) -> dict[str, Any]:
    """``mcstore fit PATH --graph demo --estimator NAME``, as the command runs it."""
    graph = demo_graph()
    gc.collect()
    base = rss_bytes()
    t0, c0 = now_ns(), time.process_time()
    history = RecordedHistory(graph)
    trio.run(lambda: replay_history(path, NAMESPACE, state=history.state, apply=history.add))
    recorded = rss_bytes()
    outcome = fit(history, name)
    seconds, wall = time.process_time() - c0, (now_ns() - t0) / 1e9
    probe: dict[str, Any] = {
        "seconds": seconds,
        "wall": wall,
        "results": history.results,
        "evaluations": outcome.evaluations,
        "fallback": outcome.fallback,
        "default_log_loss": outcome.default.log_loss,
        "fitted_log_loss": outcome.fitted.log_loss,
    }
    if sample:
        probe["rss_growth"] = max(recorded, rss_bytes()) - base
    return probe


def _spawn(what: str, path: str, name: str = "") -> dict[str, Any]:
    return spawn_probe("cases_calibrate", what, path, name, timeout=1200)


# -- the case ---------------------------------------------------------------------------------


def _check_small(path: str) -> None:
    """The command's streamed evaluation is the library's on the fetched results."""

    async def fetch() -> list[mcstore.PaymentResult]:
        async with mcstore.open_store(path, max_records=0, flush_interval=3600) as store:
            return await store.fetch_all()

    results = trio.run(fetch)
    graph = demo_graph()
    evaluator = Evaluator(graph)
    trio.run(lambda: replay_history(path, NAMESPACE, state=evaluator.state, apply=evaluator.add))
    check(evaluator.evaluation() == evaluate(results, graph=graph), "calibrate: streamed eval differs from evaluate()")


def run(cfg: Config) -> list[Figure]:
    figures: list[Figure] = []
    sizes = _eval_sizes(cfg)
    paths = {size: cfg.path(f"calibrate-{_label(size)}.sqlite") for size in sizes}
    fit_size = _fit_size(cfg)
    if fit_size not in paths:
        paths[fit_size] = cfg.path(f"calibrate-{_label(fit_size)}.sqlite")
    for size, path in paths.items():
        build(path, size)
    _check_small(paths[min(paths)])
    cfg.advance("case 10: built the histories")

    big = max(sizes)
    evals: list[float] = []
    replays: list[float] = []
    walls: list[float] = []
    pairs = 0
    for rep in range(_reps(cfg)):
        for kind in ("eval", "replay") if rep % 2 == 0 else ("replay", "eval"):
            probe = run_eval(paths[big]) if kind == "eval" else run_replay(paths[big])
            check(probe["results"] == big, f"calibrate: {kind} read {probe['results']} results, expected {big}")
            (evals if kind == "eval" else replays).append(probe["seconds"])
            if kind == "eval":
                walls.append(probe["wall"])
            pairs = probe.get("pairs", pairs)
        cfg.advance(f"case 10: eval {_label(big)}, repetition {rep + 1}")
    value = Stats.of(evals)
    figure = Figure(
        case=10,
        label=f"eval {_label(big)} results, {len(ESTIMATORS)} estimators ({', '.join(ESTIMATORS)})",
        kind="time",
        value=value,
        baseline_label="the same replay without scoring (querymc)",
        baseline=Stats.of(replays),
        note=(
            f"CPU time of mcstore eval's work (process, reader thread included); wall median "
            f"{Stats.of(walls).median:.1f} s; {pairs} pair observations scored per estimator"
        ),
    )
    if not cfg.quick:
        figure.target = f"<= {EVAL_TARGET_S:.0f} s"
        figure.passed = value.median <= EVAL_TARGET_S
    figures.append(figure)
    if not cfg.quick:
        # Where the time goes: each estimator scored alone, against the same baseline.
        for name in ESTIMATORS:
            probe = run_eval(paths[big], (name,))
            check(probe["results"] == big, f"calibrate: eval {name} read {probe['results']} results, expected {big}")
            figures.append(
                Figure(
                    case=10,
                    label=f"eval {_label(big)} results, {name} alone",
                    kind="time",
                    value=Stats.of([probe["seconds"]]),
                    baseline_label="the same replay without scoring (querymc)",
                    baseline=Stats.of(replays),
                )
            )
            cfg.advance(f"case 10: eval {_label(big)}, {name} alone")

    for name in ESTIMATORS:
        probe = run_fit(paths[fit_size], name)
        check(probe["results"] == fit_size, f"calibrate: fit read {probe['results']} results, expected {fit_size}")
        check(probe["fitted_log_loss"] <= probe["default_log_loss"], f"calibrate: fit of {name} worse than defaults")
        base = run_eval(paths[fit_size], (name,))
        figure = Figure(
            case=10,
            label=f"fit {name}, {_label(fit_size)} results",
            kind="time",
            value=Stats.of([probe["seconds"]]),
            baseline_label="eval of the same file, this estimator alone",
            baseline=Stats.of([base["seconds"]]),
            note=(
                f"CPU time (wall {probe['wall']:.1f} s); {probe['evaluations']} parameter sets; test log loss "
                f"{probe['default_log_loss']:.4f} (lnd's defaults) -> {probe['fitted_log_loss']:.4f}"
                + (" (fallback)" if probe["fallback"] else "")
            ),
        )
        if not cfg.quick:
            figure.target = f"<= {FIT_TARGET_S:.0f} s"
            figure.passed = probe["seconds"] <= FIT_TARGET_S
        figures.append(figure)
        cfg.advance(f"case 10: fit {name}")

    growth: dict[int, float] = {}
    for size in sizes:
        probe = _spawn("eval", paths[size])
        check(probe["results"] == size, f"calibrate: eval probe read {probe['results']} results, expected {size}")
        growth[size] = probe["rss_growth"]
        cfg.advance(f"case 10: eval memory, {_label(size)}")
    small = min(sizes)
    figures.append(
        Figure(
            case=10,
            label=f"eval RSS growth, {_label(big)} results",
            kind="bytes",
            value=Stats.of([growth[big]]),
            baseline_label=f"the same at {_label(small)} results",
            baseline=Stats.of([growth[small]]),
            note="peak RSS over its value before the replay, fresh process; ratio ~1: flat in the history's size",
        )
    )
    first = next(iter(ESTIMATORS))
    probe = _spawn("fit", paths[fit_size], first)
    figures.append(
        Figure(
            case=10,
            label=f"fit {first} RSS growth, {_label(fit_size)} results",
            kind="bytes",
            value=Stats.of([probe["rss_growth"]]),
            baseline_label="",
            baseline=None,
            note=f"the recorded history: {probe['rss_growth'] / fit_size:.0f} bytes per result (fresh process)",
        )
    )
    cfg.advance("case 10: fit memory")
    return figures


def _main(argv: list[str]) -> None:
    what, path = argv[0], argv[1]
    with contextlib.redirect_stdout(sys.stderr):
        probe = run_eval(path, sample=True) if what == "eval" else run_fit(path, argv[2], sample=True)
    print(json.dumps(probe))


if __name__ == "__main__":
    _main(sys.argv[1:])
