"""BiC's bias correction layer (Wu et al., "Large scale incremental learning", CVPR 2019)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class BiasCorrection(nn.Module):
    """One (alpha, beta) pair per task on that task's logit columns: z' = alpha * z + beta.

    Task t owns the columns [known_t, known_t + n_t), in the order of :meth:`grow` calls.
    Each pair starts at (1, 0), so a fresh layer is the identity (exactly). BiC trains only
    the last task's pair in its second stage (:meth:`task_parameters`) and keeps the others.

    Args:
        num_classes: classes of a first task created at once, or 0.

    Shapes: logits (B, C) -> (B, C), C = ``num_classes``.

    The task sizes are saved in the state dict (``_extra_state``), and loading the state of
    a layer with more tasks adds the missing pairs, so a grown layer loads into a fresh one.
    """

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        self.alphas = nn.ParameterList()
        self.betas = nn.ParameterList()
        self.sizes: list[int] = []  # classes of each task
        # follows .to(device, dtype) so that the first pairs are made where the model is
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        if num_classes:
            self.grow(num_classes)

    @property
    def num_classes(self) -> int:
        return sum(self.sizes)

    @property
    def num_tasks(self) -> int:
        return len(self.sizes)

    def task_range(self, t: int) -> tuple[int, int]:
        """(start, end) of task t's columns; t may be negative (-1: the last task)."""
        t = range(self.num_tasks)[t]
        start = sum(self.sizes[:t])
        return start, start + self.sizes[t]

    def task_parameters(self, t: int) -> tuple[nn.Parameter, nn.Parameter]:
        """(alpha, beta) of task t (0-dim Parameters); t may be negative."""
        return self.alphas[t], self.betas[t]

    def grow(self, n_new: int) -> None:
        """Add a task of ``n_new`` classes with alpha = 1, beta = 0."""
        if n_new < 1:
            raise ValueError(f"grow needs n_new >= 1, got {n_new}")
        like = self.alphas[0] if len(self.alphas) else self._anchor
        self.alphas.append(nn.Parameter(torch.ones_like(like)))
        self.betas.append(nn.Parameter(torch.zeros_like(like)))
        self.sizes.append(int(n_new))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.num_classes:
            raise ValueError(f"BiasCorrection covers {self.num_classes} classes "
                             f"(tasks of {self.sizes}) but gets {logits.shape[-1]} logits")
        if not self.sizes:
            return logits
        alpha = torch.cat([a.expand(n) for a, n in zip(self.alphas, self.sizes, strict=True)])
        beta = torch.cat([b.expand(n) for b, n in zip(self.betas, self.sizes, strict=True)])
        return logits * alpha + beta  # (B, C)

    # ---- checkpoints ---------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        sizes = [int(n) for n in state["sizes"]]
        if sizes[:self.num_tasks] != self.sizes:
            raise ValueError(f"BiasCorrection: saved task sizes {sizes} do not extend this "
                             f"layer's {self.sizes}")
        for n in sizes[self.num_tasks:]:  # the saved values are loaded next, by the lists
            self.grow(n)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"
