"""The standard class-incremental scenario: ``init_cls`` classes, then ``increment`` at a time.

The class order follows the reference toolbox (PyCIL and the audio CIL code built on it):
``np.random.seed(1993); np.random.permutation(n_classes)``.
"""

from __future__ import annotations

import numpy as np
import torch

from audiocil.core import Task
from audiocil.errors import ConfigError
from audiocil.objectives import SingleLabel
from audiocil.results.standard import RunRecord


def class_order(n_classes: int, seed: int | None = 1993,
                explicit: list[int] | None = None) -> list[int]:
    """The order in which classes arrive.

    Args:
        n_classes: number of classes in the dataset.
        seed: permutation seed (the reference toolbox uses 1993); None keeps 0..n-1.
        explicit: a user-given order; it must be a permutation of 0..n_classes-1.
    """
    if explicit is not None:
        order = [int(c) for c in explicit]
        if sorted(order) != list(range(n_classes)):
            raise ConfigError(
                f"scenario.class_order must list every class 0..{n_classes - 1} exactly once; "
                f"got {len(order)} entries"
            )
        return order
    if seed is None:
        return list(range(n_classes))
    state = np.random.RandomState(seed)  # same stream as np.random.seed(seed)
    return [int(c) for c in state.permutation(n_classes)]


def split_tasks(order: list[int], init_cls: int, increment: int) -> list[Task]:
    """Cut a class order into tasks; the last task takes the remainder.

    >>> [t.classes for t in split_tasks([3, 0, 1, 2, 4], 2, 2)]
    [(3, 0), (1, 2), (4,)]
    """
    n = len(order)
    if not 0 < init_cls <= n:
        raise ConfigError(f"scenario.init_cls={init_cls} must be in 1..{n} (the dataset has {n} classes)")
    if increment <= 0 and init_cls < n:
        raise ConfigError(f"scenario.increment={increment} must be positive")
    bounds = [0, init_cls]
    while bounds[-1] < n:  # as PyCIL: a last chunk smaller than `increment` is its own task
        bounds.append(min(bounds[-1] + increment, n))
    return [
        Task(index=i, classes=tuple(order[a:b]), known=a, total=b)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]


class StandardScenario:
    """``scenario=standard``: disjoint tasks of whole classes, scored by top-1/top-5 accuracy.

    Args:
        init_cls: classes of the first task.
        increment: classes of each later task (the last takes the remainder).
        class_order_seed: seed of the class permutation (1993 as in the reference toolbox).
        class_order: an explicit order instead.
    """

    name = "standard"
    multilabel = False

    def __init__(self, init_cls: int, increment: int, class_order_seed: int | None = 1993,
                 class_order: list[int] | None = None) -> None:
        self.objective = SingleLabel()
        self.init_cls, self.increment = init_cls, increment
        self.class_order_seed, self.explicit_order = class_order_seed, class_order

    def make_tasks(self, dataset) -> tuple[list[int], list[Task]]:
        if dataset.multilabel:
            raise ConfigError(f"dataset {dataset.name!r} is multi-label: use scenario=multilabel")
        order = class_order(dataset.num_classes, self.class_order_seed,
                            list(self.explicit_order) if self.explicit_order else None)
        return order, split_tasks(order, self.init_cls, self.increment)

    def own_indices(self, task: Task, dm) -> np.ndarray:
        return dm.indices_of(range(task.known, task.total))

    def evaluate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Top-1 / top-5 per seen task over the test clips of every seen class."""
        task_of_class = torch.zeros(task.total, dtype=torch.long)
        for t in tasks[: task.index + 1]:
            task_of_class[t.known:t.total] = t.index
        strategy.setup_eval(task_of_class, task.index + 1)
        strategy.test_pass(trainer, dm, "test")
        out = {}
        for name, metric in strategy.eval_metrics.items():
            out[name] = {k: v.cpu().reshape(-1).tolist() if k.endswith("per_task") else float(v)
                         for k, v in metric.compute().items()}
        return out

    def validate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Top-1 accuracy over the validation clips of every seen class, per classifier.

        Validation clips are carved from the training data by the dataset loaders; this is
        what the run's ``val_objective`` (the figure sweeps optimise) is made of."""
        strategy.setup_eval(torch.zeros(task.total, dtype=torch.long), 1)
        strategy.test_pass(trainer, dm, "val", range(task.total))
        return {name: {"accuracy": float(m.compute()["top1"])}
                for name, m in strategy.eval_metrics.items()}

    def new_record(self, meta: dict) -> RunRecord:
        return RunRecord(meta)

    def record_from_state(self, state: dict) -> RunRecord:
        return RunRecord.from_state(state)
