"""The standard class-incremental scenario: ``init_cls`` classes, then ``increment`` at a time.

The class order follows the reference toolbox (PyCIL and the audio CIL code built on it):
``np.random.seed(1993); np.random.permutation(n_classes)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    """One step of the stream.

    Attributes:
        index: 0-based task id.
        classes: original dataset class ids learnt in this task, in class order.
        known: number of classes learnt before this task (their positions are 0..known-1).
        total: number of classes known after this task.
    """

    index: int
    classes: tuple[int, ...]
    known: int
    total: int

    @property
    def new(self) -> int:
        return self.total - self.known


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
            raise ValueError(
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
        raise ValueError(f"scenario.init_cls={init_cls} must be in 1..{n} (the dataset has {n} classes)")
    if increment <= 0 and init_cls < n:
        raise ValueError(f"scenario.increment={increment} must be positive")
    bounds = [0, init_cls]
    while bounds[-1] < n:  # as PyCIL: a last chunk smaller than `increment` is its own task
        bounds.append(min(bounds[-1] + increment, n))
    return [
        Task(index=i, classes=tuple(order[a:b]), known=a, total=b)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
