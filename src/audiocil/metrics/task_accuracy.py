"""Per-task top-k accuracy over a class-incremental test set, as a torchmetrics Metric.

Counts are summed across processes, so under DDP each rank scores its own shard and the
result equals the single-process one exactly (no padded duplicates: see
:class:`audiocil.data.datamodule.UnpaddedDistributedSampler`).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class TaskAccuracy(Metric):
    """Correct / total per task for top-1 and top-k predictions.

    Args:
        task_of_class: (C,) long, the task of each class position (0..n_tasks-1).
        n_tasks: number of tasks seen so far.
        top_k: the k of the top-k accuracy (also reported: top-1).
    """

    full_state_update = False

    def __init__(self, task_of_class: torch.Tensor, n_tasks: int, top_k: int = 5) -> None:
        super().__init__()
        self.register_buffer("task_of_class", task_of_class.long().clone(), persistent=False)
        self.n_tasks = n_tasks
        self.top_k = top_k
        self.add_state("correct1", torch.zeros(n_tasks, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("correctk", torch.zeros(n_tasks, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(n_tasks, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits (B, C) over the classes seen so far; target (B,) class positions."""
        k = min(self.top_k, logits.shape[1])
        topk = logits.topk(k, dim=1).indices  # (B, k)
        hit1 = topk[:, 0] == target
        hitk = (topk == target[:, None]).any(dim=1)
        task = self.task_of_class.to(target.device)[target]
        self.total += torch.bincount(task, minlength=self.n_tasks)
        self.correct1 += torch.bincount(task, weights=hit1.long(), minlength=self.n_tasks).long()
        self.correctk += torch.bincount(task, weights=hitk.long(), minlength=self.n_tasks).long()

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).double()
        return {
            "top1_per_task": 100.0 * self.correct1.double() / total,
            "topk_per_task": 100.0 * self.correctk.double() / total,
            "top1": 100.0 * self.correct1.sum().double() / self.total.sum().clamp(min=1),
            "topk": 100.0 * self.correctk.sum().double() / self.total.sum().clamp(min=1),
            "count_per_task": self.total.clone(),
        }
