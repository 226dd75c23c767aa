"""What a few-shot run costs, session by session: times ``python -m audiocil <overrides>`` and
splits its wall-clock time into the base session and the incremental sessions (from the
run's ``results.json``: ``cost_per_task``), then prints one line of figures.

    PYTHONPATH=src python benchmarks/bench_fewshot_sessions.py --out /tmp/bench_proto -- \\
        experiment=gm100_fscil method=prototype scenario.trials=100
    PYTHONPATH=src python benchmarks/bench_fewshot_sessions.py --out /tmp/bench_ft -- \\
        experiment=gm100_fscil method=finetune debug=smoke scenario.sessions=4

Everything after ``--`` is passed to the command as it is (add ``paths.data_dir=...``,
``paths.cache_dir=...`` to use an existing build). The run goes to ``--out`` (removed first).
``--project-trials N`` also prints the time N trials would take at the measured cost per
trial (for a "before" figure that would take hours). Run it on an otherwise idle machine,
or report ``uptime`` beside it: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def summarise(results: dict, wall_s: float, project_trials: int | None = None) -> dict:
    """Figures of a finished run: total, base session, incremental sessions (s)."""
    costs = results["cost_per_task"]
    base = [c["time_s"] for c in costs if c.get("session", c["task"]) == 0]
    sessions = [c["time_s"] for c in costs if c.get("session", c["task"]) != 0]
    trials = max(1, int(results.get("n_trials") or 1))
    out = {"wall_s": round(wall_s, 1), "tasks": len(costs), "trials": trials,
           "base_session_s": round(sum(base), 1), "sessions": len(sessions),
           "sessions_s": round(sum(sessions), 1),
           "session_mean_s": round(statistics.mean(sessions), 3) if sessions else None,
           "session_median_s": round(statistics.median(sessions), 3) if sessions else None,
           "startup_and_end_s": round(wall_s - sum(base) - sum(sessions), 1)}
    if project_trials:
        per_trial = sum(sessions) / trials
        out[f"projected_{project_trials}_trials_min"] = round(
            (wall_s - sum(sessions) + per_trial * project_trials) / 60, 1)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the run directory (removed first)")
    p.add_argument("--project-trials", type=int, default=None)
    p.add_argument("overrides", nargs="*", help="after --: the run's Hydra overrides")
    return p


def main() -> None:
    a = build_parser().parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "audiocil", *a.overrides, f"hydra.run.dir={out}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=os.environ.copy(), stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    figures = summarise(json.loads((out / "results.json").read_text()), wall, a.project_trials)
    print(json.dumps({"command": " ".join(["python -m audiocil", *a.overrides]), **figures}))


if __name__ == "__main__":
    main()
