"""Joint: at each task, train from scratch on all data of every class seen so far.

The upper bound of class-incremental learning (PyCIL calls it ``joint``): nothing is
forgotten because nothing is withheld. The network is re-initialised at each task so that
the bound is not helped or hurt by the order of earlier tasks.
"""

from __future__ import annotations

import numpy as np

from audiocil.core import Task
from audiocil.methods.base import Strategy


class Joint(Strategy):
    #: standard only: in few-shot CIL it would train on every clip of the novel classes
    scenarios = ("standard",)

    def __init__(self, *args, reinit: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reinit = reinit

    def before_task(self, task: Task, dm) -> None:
        super().before_task(task, dm)
        if self.reinit and task.index > 0:
            self.reinitialise(task.total)

    def train_indices(self, task: Task, dm) -> np.ndarray:
        return dm.indices_of(range(task.total))

    def optim_cfg(self, task: Task | None = None) -> dict:
        # trained from scratch every time: always the first task's schedule
        return self.first_task
