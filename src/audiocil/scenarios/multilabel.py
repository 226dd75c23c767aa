"""The multi-label class-incremental scenario (Mulimani & Mesaros, "Class-incremental
learning for multi-label audio classification", ICASSP 2024; "A closer look at
class-incremental learning for multi-label audio classification", IEEE/ACM TASLP 2025).

Classes arrive in phases (e.g. 30 base classes, then 4 phases of 5) as in the standard
scenario. In phase t:

* the training clips are those labelled with at least one of phase t's classes;
* only phase t's labels are given: the labels of past or future classes on the same clip
  are masked out of its target (they read 0), so one clip may serve several phases. The
  scenario tells the datamodule (:meth:`CILDataModule.set_target_mask`) before the method
  sees the phase, so methods need not know about it. A method may widen the mask for its
  own needs (the ``at`` upper bound uses every seen label; replay keeps exemplars' labels
  from the phase they were stored in);
* targets are multi-hot and losses use sigmoids (``strategy.multilabel`` is set from the
  datamodule);
* after the phase the model is tested on the whole test set, scored on every class seen
  so far (:mod:`audiocil.metrics.multilabel`): macro/micro-F1 at 0.5, mAP, per phase and
  per class block, and the forgetting of the base classes.

:class:`MultilabelRecord` keeps those figures and writes ``results.json``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from audiocil.metrics.multilabel import (
    MultilabelScores,
    average_forgetting,
    base_forgetting,
    mean_over_phases,
)
from audiocil.results import RunRecord
from audiocil.scenarios.standard import Task, class_order, split_tasks


class MultilabelScenario:
    """``scenario=multilabel``: phases of classes on a multi-label dataset.

    Args:
        init_cls: classes of the first phase (30 in the reference setting).
        increment: classes of each later phase (5); the last takes the remainder.
        class_order_seed: seed of the class permutation; None keeps the dataset's order
            (the reference code's: its class 0 is the first base class).
        class_order: an explicit order instead.
        threshold: decision threshold of the F1 scores (0.5).
    """

    name = "multilabel"
    multilabel = True

    def __init__(self, init_cls: int, increment: int, class_order_seed: int | None = 1993,
                 class_order: list[int] | None = None, threshold: float = 0.5) -> None:
        self.init_cls, self.increment = init_cls, increment
        self.class_order_seed, self.explicit_order = class_order_seed, class_order
        self.threshold = float(threshold)

    def make_tasks(self, dataset) -> tuple[list[int], list[Task]]:
        if not dataset.multilabel:
            raise ValueError(f"scenario=multilabel needs a multi-label dataset; {dataset.name!r} "
                             "is single-label (use scenario=standard)")
        order = class_order(dataset.num_classes, self.class_order_seed,
                            list(self.explicit_order) if self.explicit_order else None)
        return order, split_tasks(order, self.init_cls, self.increment)

    def own_indices(self, task: Task, dm) -> np.ndarray:
        """Clips carrying any of the phase's classes; their targets keep only those labels."""
        positions = range(task.known, task.total)
        dm.set_target_mask(positions)
        return dm.indices_of(positions)

    @staticmethod
    def test_loader(dm) -> DataLoader:
        """Every valid test clip once (sharded without padding under DDP)."""
        from audiocil.data.datamodule import UnpaddedDistributedSampler

        ds = dm.subset(dm.valid["test"], "test")
        world, rank = dm._world()
        sampler = UnpaddedDistributedSampler(ds, world, rank) if world > 1 else None
        return DataLoader(ds, batch_size=max(dm.batch_size, 128), sampler=sampler, shuffle=False,
                          num_workers=dm.num_workers)

    def evaluate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Scores on the whole test set over the classes seen after ``task``."""
        block = torch.zeros(task.total, dtype=torch.long)
        for t in tasks[: task.index + 1]:
            block[t.known:t.total] = t.index
        strategy.eval_metrics = nn.ModuleDict(
            {n: MultilabelScores(block, self.threshold).to(strategy.device)
             for n in strategy.eval_logits_names()})
        trainer.test(strategy, dataloaders=self.test_loader(dm), verbose=False)
        return {n: m.compute() for n, m in strategy.eval_metrics.items()}

    def new_record(self, meta: dict) -> MultilabelRecord:
        return MultilabelRecord(meta)

    def record_from_state(self, state: dict) -> MultilabelRecord:
        return MultilabelRecord.from_state(state)


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


class MultilabelRecord(RunRecord):
    """The figures of a multi-label run, phase by phase (scores in percent).

    ``results.json`` holds the shared keys (``method, dataset, scenario, seed, class_order,
    tasks, time_s_per_task, params_per_task, memory_samples``) and:

    * per phase: ``macro_f1_per_phase``, ``micro_f1_per_phase``, ``map_per_phase``,
      ``map_thresholded_per_phase`` (the reference code's AP of 0/1 predictions);
    * per phase and class block: ``f1_matrix[t][j]`` (macro-F1 of the classes of phase j
      after phase t), ``map_matrix``, ``map_thresholded_matrix``;
    * ``forgetting_per_phase`` (Fr_t: base classes' macro-F1 after phase 0 minus after
      phase t), ``avg_forgetting`` (mean over t >= 1), and the same for mAP
      (``map_forgetting_per_phase``, ``avg_map_forgetting``);
    * averages over phases: ``avg_macro_f1``, ``avg_micro_f1``, ``avg_map``,
      ``avg_map_thresholded``; last values ``last_macro_f1``, ``last_map``;
    * ``last_f1_per_class``, ``last_ap_per_class`` in class-order positions.
    """

    def add_step(self, task: Task, scores: dict[str, dict], info: dict) -> None:
        step = {"task": task.index, "n_classes": task.total, **info}
        for name, s in scores.items():
            step[name] = {
                "macro_f1": _pct(s["macro_f1"]),
                "micro_f1": _pct(s["micro_f1"]),
                "map": _pct(s["map"]),
                "map_thresholded": _pct(s["map_thresholded"]),
                "f1_row": [_pct(v) for v in s["f1_per_block"]],
                "map_row": [_pct(v) for v in s["map_per_block"]],
                "map_thresholded_row": [_pct(v) for v in s["map_thresholded_per_block"]],
                "f1_per_class": [_pct(v) for v in s["f1_per_class"]],
                "ap_per_class": [None if v != v else _pct(v) for v in s["ap_per_class"]],
                "positives_per_class": s["positives_per_class"],
                "test_clips": s["n_clips"],
            }
        self.steps = sorted([x for x in self.steps if x["task"] != task.index] + [step],
                            key=lambda x: x["task"])

    def figures(self, name: str = "cnn") -> dict:
        """The summary figures of one classifier."""
        st = [s[name] for s in self.steps]
        fr = base_forgetting([s["f1_row"][0] for s in st])
        base_map = [s["map_row"][0] for s in st]
        fr_map = base_forgetting(base_map) if None not in base_map else []
        per = {k: [s[k] for s in st] for k in ("macro_f1", "micro_f1", "map", "map_thresholded")}
        return {
            "macro_f1_per_phase": per["macro_f1"],
            "micro_f1_per_phase": per["micro_f1"],
            "map_per_phase": per["map"],
            "map_thresholded_per_phase": per["map_thresholded"],
            "f1_matrix": [s["f1_row"] for s in st],
            "map_matrix": [s["map_row"] for s in st],
            "map_thresholded_matrix": [s["map_thresholded_row"] for s in st],
            "forgetting_per_phase": fr,
            "avg_forgetting": average_forgetting(fr),
            "map_forgetting_per_phase": fr_map,
            "avg_map_forgetting": average_forgetting(fr_map) if fr_map else None,
            "avg_macro_f1": mean_over_phases(per["macro_f1"]),
            "avg_micro_f1": mean_over_phases(per["micro_f1"]),
            "avg_map": mean_over_phases(per["map"]),
            "avg_map_thresholded": mean_over_phases(per["map_thresholded"]),
            "last_macro_f1": per["macro_f1"][-1] if st else None,
            "last_micro_f1": per["micro_f1"][-1] if st else None,
            "last_map": per["map"][-1] if st else None,
            "last_f1_per_class": st[-1]["f1_per_class"] if st else [],
            "last_ap_per_class": st[-1]["ap_per_class"] if st else [],
            "test_clips": st[-1]["test_clips"] if st else 0,
        }

    def scores_json(self) -> dict:
        return {"scores_in": "percent", **self.figures("cnn")}

    def csv_columns(self, name: str) -> list[str]:
        return [f"{name}_{c}" for c in ("macro_f1", "micro_f1", "map", "map_thresholded",
                                         "base_f1", "new_f1", "forgetting")]

    def csv_values(self, step: dict, figures: dict, i: int) -> list:
        return [step["macro_f1"], step["micro_f1"], step["map"], step["map_thresholded"],
                step["f1_row"][0], step["f1_row"][-1], figures["forgetting_per_phase"][i]]

    def table(self) -> str:
        """The end-of-run summary: F1 and mAP per phase, their averages, forgetting."""
        lines = []
        m = self.meta.get("method")

        def fmt(v):
            return "  n/a" if v is None else f"{v:5.1f}"

        for n in self.classifiers():
            f = self.figures(n)
            lines.append(f"[{m}/{n}] macro-F1 per phase: "
                         + " ".join(fmt(v) for v in f["macro_f1_per_phase"]))
            lines.append(f"[{m}/{n}] mAP per phase:      "
                         + " ".join(fmt(v) for v in f["map_per_phase"]))
            lines.append(f"[{m}/{n}] forgetting (base macro-F1 drop) per phase: "
                         + " ".join(fmt(v) for v in f["forgetting_per_phase"]))
            lines.append(f"[{m}/{n}] avg macro-F1 {fmt(f['avg_macro_f1']).strip()}  "
                         f"avg micro-F1 {fmt(f['avg_micro_f1']).strip()}  "
                         f"avg mAP {fmt(f['avg_map']).strip()}  "
                         f"avg mAP(thresholded, reference code) "
                         f"{fmt(f['avg_map_thresholded']).strip()}  "
                         f"avg forgetting {fmt(f['avg_forgetting']).strip()}")
        return "\n".join(lines)
