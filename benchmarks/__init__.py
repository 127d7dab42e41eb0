"""mcstore's benchmarks: ``python -m benchmarks`` from the project root (``make bench``).

Every figure is measured next to a baseline taken in the same run (raw ``sqlite3`` on the
same rows and settings, a bare ``deque.append``, ``pickle``, ...), and reported as a median
with its spread over several repetitions, plus the ratio between the two: on a shared, noisy
machine the ratio means more than the absolute time.

Modules: :mod:`benchmarks.common` (timing, statistics, the machine, synthetic results, raw
SQLite), one ``cases_*`` module per group of cases, :mod:`benchmarks.gobaseline` (the
lnd-like Go/bbolt store of case 9, built from ``benchmarks/go/lndstore``), and
:mod:`benchmarks.report` (table, JSON, markdown and plot). Targets are reported (PASS/MISS),
never asserted: a run fails only on a crash or a wrong result.
"""
