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
* targets are multi-hot and losses use sigmoids (the scenario's objective,
  :class:`audiocil.objectives.MultiLabel`);
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

from audiocil.core import Task
from audiocil.data.datamodule import UnpaddedDistributedSampler
from audiocil.errors import ConfigError
from audiocil.metrics.multilabel import MultilabelScores
from audiocil.objectives import MultiLabel
from audiocil.results.multilabel import MultilabelRecord
from audiocil.scenarios.standard import class_order, split_tasks


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
        self.objective = MultiLabel()

    def make_tasks(self, dataset) -> tuple[list[int], list[Task]]:
        if not dataset.multilabel:
            raise ConfigError(f"scenario=multilabel needs a multi-label dataset; {dataset.name!r} "
                             "is single-label (use scenario=standard)")
        order = class_order(dataset.num_classes, self.class_order_seed,
                            list(self.explicit_order) if self.explicit_order else None)
        tasks = split_tasks(order, self.init_cls, self.increment)
        self.objective.set_tasks(tasks)
        return order, tasks

    def own_indices(self, task: Task, dm) -> np.ndarray:
        """Clips carrying any of the phase's classes; their targets keep only those labels."""
        positions = range(task.known, task.total)
        dm.set_target_mask(positions)
        return dm.indices_of(positions)

    @staticmethod
    def test_loader(dm, split: str = "test") -> DataLoader:
        """Every valid clip of the split once (sharded without padding under DDP)."""
        ds = dm.subset(dm.eval_subset(dm.valid[split], split), split)
        world, rank = dm._world()
        sampler = UnpaddedDistributedSampler(ds, world, rank) if world > 1 else None
        return DataLoader(ds, batch_size=max(dm.batch_size, 128), sampler=sampler, shuffle=False,
                          num_workers=dm.num_workers)

    def evaluate(self, trainer, strategy, dm, task: Task, tasks: list[Task],
                 split: str = "test") -> dict:
        """Scores on the whole test set (or ``split``) over the classes seen after ``task``."""
        block = torch.zeros(task.total, dtype=torch.long)
        for t in tasks[: task.index + 1]:
            block[t.known:t.total] = t.index
        strategy.eval_metrics = nn.ModuleDict(
            {n: MultilabelScores(block, self.threshold).to(strategy.device)
             for n in strategy.eval_logits_names()})
        trainer.test(strategy, dataloaders=self.test_loader(dm, split), verbose=False)
        return {n: m.compute() for n, m in strategy.eval_metrics.items()}

    def validate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Macro-F1 and mAP (percent) on the validation clips (carved from the training
        data) over the seen classes, per classifier."""
        scores = self.evaluate(trainer, strategy, dm, task, tasks, split="val")
        return {n: {"macro_f1": 100.0 * float(s["macro_f1"]), "map": 100.0 * float(s["map"])}
                for n, s in scores.items()}

    def new_record(self, meta: dict) -> MultilabelRecord:
        return MultilabelRecord(meta)

    def record_from_state(self, state: dict) -> MultilabelRecord:
        return MultilabelRecord.from_state(state)
