"""A linear classifier that grows as classes arrive (the head of the linear-classifier methods)."""

from __future__ import annotations

import torch
from torch import nn


class IncrementalLinear(nn.Module):
    """A linear classifier whose output grows; old class weights are kept as they are.

    Shapes: (B, in_dim) -> (B, num_classes).
    """

    def __init__(self, in_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.weight = nn.Parameter(torch.empty(0, in_dim))
        self.bias = nn.Parameter(torch.empty(0))
        if num_classes:
            self.grow(num_classes)

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    def grow(self, n_new: int) -> None:
        """Append ``n_new`` freshly initialised outputs (nn.Linear's default init)."""
        fresh = nn.Linear(self.in_dim, n_new).to(self.weight.device, self.weight.dtype)
        self.weight = nn.Parameter(torch.cat([self.weight.data, fresh.weight.data]))
        self.bias = nn.Parameter(torch.cat([self.bias.data, fresh.bias.data]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t() + self.bias
