"""Scenario objectives: what single-label and multi-label learning do differently.

The scenario provides one (``scenario.objective``) and every method uses it, so no method
and no base-class code branches on multi-label:

* the classification loss over a range of class positions (cross-entropy, or binary
  cross-entropy on sigmoids over multi-hot targets);
* the distillation of a frozen teacher's outputs (softmax or sigmoid at temperature T);
* the per-batch validation figure (accuracy, or micro-F1 at 0.5);
* how exemplars are chosen (herding by class, or at random among a phase's clips: herding by
  class is ill-defined for clips that carry several classes) and replayed (a multi-label
  exemplar keeps the labels of the phase it was stored in).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from audiocil.core import Task
from audiocil.data.memory import ExemplarMemory
from audiocil.losses.distillation import kd_loss
from audiocil.losses.multilabel import bce_loss, sigmoid_distillation

log = logging.getLogger(__name__)


class SingleLabel:
    """One class per clip: softmax cross-entropy, accuracy, herding exemplars."""

    multilabel = False

    def loss(self, logits: torch.Tensor, y: torch.Tensor, lo: int = 0,
             hi: int | None = None) -> torch.Tensor:
        """Cross-entropy over the logits of class positions ``lo..hi-1`` (default: all);
        the targets must lie in that range."""
        hi = logits.shape[1] if hi is None else hi
        if lo == 0 and hi == logits.shape[1]:
            return F.cross_entropy(logits, y)
        return F.cross_entropy(logits[:, lo:hi], y - lo)

    def distill(self, student: torch.Tensor, teacher: torch.Tensor, T: float,
                scale_t2: bool = False) -> torch.Tensor:
        return kd_loss(student, teacher, T, scale_t2)

    def val_score(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[str, torch.Tensor]:
        return "acc", (logits.argmax(1) == y).float().mean() * 100

    def note_task(self, task: Task) -> None:
        """Called as each task starts (the multi-label objective records its classes' phase)."""

    def update_memory(self, memory: ExemplarMemory, task: Task, dm,
                      embed: Callable[[np.ndarray], torch.Tensor]) -> None:
        """Herding (or random) exemplars of the task's classes among its own clips."""
        memory.update(dm.by_class(range(task.known, task.total), within=dm.own_indices),
                      embed, task.total)

    def replay_indices(self, memory: ExemplarMemory, dm) -> np.ndarray:
        """The task's own clips followed by the exemplars."""
        return np.concatenate([dm.own_indices, memory.indices()])


class MultiLabel(SingleLabel):
    """Multi-hot targets: sigmoids and BCE, micro-F1, random exemplars per phase.

    Args:
        spans: class position -> (known, total) of the phase it arrived in (set by the
            scenario from its tasks): a replayed exemplar keeps these labels.
    """

    multilabel = True

    def __init__(self) -> None:
        self.spans: dict[int, tuple[int, int]] = {}

    def set_tasks(self, tasks: list[Task]) -> None:
        for t in tasks:
            self.note_task(t)

    def note_task(self, task: Task) -> None:
        self.spans.update({c: (task.known, task.total) for c in range(task.known, task.total)})

    def loss(self, logits: torch.Tensor, y: torch.Tensor, lo: int = 0,
             hi: int | None = None) -> torch.Tensor:
        """BCE over the logits of class positions ``lo..hi-1`` (targets already masked to
        the labels the scenario gives)."""
        hi = logits.shape[1] if hi is None else hi
        return bce_loss(logits[:, lo:hi], y[:, lo:hi])

    def distill(self, student: torch.Tensor, teacher: torch.Tensor, T: float,
                scale_t2: bool = False) -> torch.Tensor:
        kd = sigmoid_distillation(student, teacher, T)
        return kd * T * T if scale_t2 else kd

    def val_score(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[str, torch.Tensor]:
        pred, t = logits > 0, y[:, :logits.shape[1]] > 0
        return "micro_f1", (200 * (pred & t).sum() / (pred.sum() + t.sum()).clamp(min=1)).float()

    def update_memory(self, memory: ExemplarMemory, task: Task, dm,
                      embed: Callable[[np.ndarray], torch.Tensor]) -> None:
        """For each new class in turn, ``quota`` clips carrying it that no other class of the
        phase took yet, at random (seeded by (memory seed, class))."""
        if memory.selection != "random":
            log.info("multi-label replay: exemplars are chosen at random (memory.selection=%s "
                     "is for single-label data)", memory.selection)
        m = memory.quota(task.total)
        for c in list(memory.exemplars):
            memory.exemplars[c] = memory.exemplars[c][:m]
        taken: set[int] = set()
        for c, idx in sorted(dm.by_class(range(task.known, task.total), within=dm.own_indices).items()):
            rng = np.random.default_rng([memory.seed, c])
            free = np.asarray([i for i in idx if int(i) not in taken], dtype=np.int64)
            pick = free[rng.permutation(len(free))[:m]]
            taken.update(int(i) for i in pick)
            memory.exemplars[c] = pick

    def replay_indices(self, memory: ExemplarMemory, dm) -> np.ndarray:
        """The phase's clips and the exemplars; an exemplar keeps its own phase's labels."""
        extra = {int(i): list(range(*self.spans[c]))
                 for c, idx in memory.exemplars.items() for i in idx}
        dm.set_target_mask(dm.target_positions, extra)
        return np.unique(np.concatenate([dm.own_indices, memory.indices()]))

    def train_on_seen(self, task: Task, dm) -> np.ndarray:
        """Every clip of the seen classes with all their seen labels (an upper bound)."""
        dm.set_target_mask(range(task.total))
        return dm.indices_of(range(task.total))
