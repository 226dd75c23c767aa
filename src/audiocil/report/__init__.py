"""Reports of runs and sweeps: mean ± std tables and figures from ``results_long.csv``.

``audiocil report PATH...`` (:mod:`audiocil.report.cli`); every run writes its own into
``<run_dir>/report`` and every sweep into ``<sweep_dir>/report`` (:mod:`audiocil.report.sweep`).
"""
