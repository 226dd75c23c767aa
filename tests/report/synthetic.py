"""Runs written from hand-made figures through the real records and writers, in seconds:
what a report reads (``results_long.csv`` + ``config.yaml``), with known values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from audiocil.core import FewShotTask
from audiocil.results import RunRecord, write_outputs
from audiocil.results.fewshot import FewShotRecord
from audiocil.results.multilabel import MultilabelRecord
from audiocil.scenarios.standard import split_tasks
from tests.conftest import TINY, compose_cfg

COST = {"time_s": 2.0, "train_time_s": 1.5, "train_samples": 300, "train_samples_per_s": 200.0,
        "peak_host_memory_bytes": 2**30, "peak_accelerator_memory_bytes": None, "params": 25000,
        "memory_samples": 0, "memory_bytes": None}


def _config(run_dir: Path, root: Path, overrides: list[str]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tiny = TINY if "scenario=fewshot" not in overrides and "scenario=multilabel" not in overrides \
        else [o for o in TINY if not o.startswith("scenario.")]
    cfg = compose_cfg([*tiny, *overrides], root)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / ".hydra").mkdir(exist_ok=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))


def standard_run(run_dir: Path, root: Path, method: str, seed: int, R: list[list[float]],
                 val: list[float], extra: list[str] = (), stop_after: int | None = None) -> Path:
    """A standard run over 8 classes in tasks of 4, 2, 2 with accuracy matrix ``R``."""
    _config(run_dir, root, [f"method={method}", f"seed={seed}", "scenario.increment=2", *extra])
    tasks = split_tasks(list(range(8)), 4, 2)
    rec = RunRecord({"method": method, "dataset": "synth20", "scenario": "standard",
                     "seed": seed, "tasks": [list(t.classes) for t in tasks]})
    for t, row in enumerate(R[:stop_after]):
        counts = [40 if j == 0 else 20 for j in range(len(row))]
        top1 = float(np.average(row, weights=counts))
        rec.add_step(tasks[t], {"cnn": {"top1_per_task": row, "topk_per_task": row, "top1": top1,
                                        "topk": top1, "count_per_task": counts}},
                     {"val": {"cnn": {"accuracy": val[t]}}, **COST, "time_s": 1.0 + t})
    write_outputs(rec, run_dir)
    return run_dir


def fewshot_run(run_dir: Path, root: Path, seed: int, correct: list[list[list[int]]]) -> Path:
    """A few-shot run: 4 base classes, 2 sessions of 2 ways, 2 trials; ``correct[trial][session]``
    per seen class of 10 test clips each (the base session's row is shared)."""
    _config(run_dir, root, ["method=prototype", f"seed={seed}", "scenario=fewshot",
                            "scenario.base_classes=4", "scenario.ways=2", "scenario.shots=2",
                            "scenario.sessions=2", "scenario.trials=2"])
    rec = FewShotRecord({"method": "prototype", "dataset": "synth20", "scenario": "fewshot",
                         "seed": seed, "tasks": [[0, 1, 2, 3], [4, 5], [6, 7], [4, 5], [6, 7]]},
                        4, 2, 2, 2, trials=2)
    tasks = [FewShotTask(0, (0, 1, 2, 3), 0, 4, trial=0, session=0)]
    for trial in range(2):
        for s in (1, 2):
            tasks.append(FewShotTask(len(tasks), (), 2 + 2 * s, 4 + 2 * s, trial=trial, session=s))
    for task in tasks:
        c = correct[task.trial][task.session]
        rec.add_step(task, {"classifiers": {"cnn": {"correct": c, "count": [10] * len(c)}}},
                     {"val": {"cnn": {"base_accuracy": 70.0 - 5 * task.session}}, **COST})
    write_outputs(rec, run_dir)
    return run_dir


def multilabel_run(run_dir: Path, root: Path, seed: int, f1: list[list[float]]) -> Path:
    """A multi-label run of 3 phases (4 + 2 + 2 classes) with per-block macro-F1 ``f1``
    (fractions)."""
    _config(run_dir, root, ["method=ft", f"seed={seed}", "scenario=multilabel", "dataset.name=synthmix8",
                            "scenario.init_cls=4", "scenario.increment=2"])
    tasks = split_tasks(list(range(8)), 4, 2)
    rec = MultilabelRecord({"method": "ft", "dataset": "synthmix8", "scenario": "multilabel",
                            "seed": seed, "tasks": [list(t.classes) for t in tasks]})
    for t, row in enumerate(f1):
        n = tasks[t].total
        s = {"macro_f1": float(np.mean(row)), "micro_f1": float(np.mean(row)),
             "map": float(np.mean(row)) + 0.1, "map_thresholded": float(np.mean(row)),
             "f1_per_block": row, "map_per_block": [v + 0.1 for v in row],
             "map_thresholded_per_block": row, "f1_per_class": [row[0]] * n,
             "ap_per_class": [row[0]] * n, "positives_per_class": [5] * n, "n_clips": 40}
        rec.add_step(tasks[t], {"cnn": s}, {"val": {"cnn": {"macro_f1": 50.0, "map": 60.0}}, **COST})
    write_outputs(rec, run_dir)
    return run_dir
