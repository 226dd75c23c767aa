"""Analytic (closed-form) class-incremental learning on a frozen backbone.

* ACIL (Zhuang et al., "ACIL: Analytic Class-Incremental Learning with Absolute Memorization
  and Privacy Protection", NeurIPS 2022): features are expanded by a fixed random layer (the
  "buffer", 512 -> 8192 with ReLU), and a ridge classifier is updated recursively. After
  every batch it equals the ridge regression on all data seen so far, in any order
  ("absolute memorization"). Setting: gamma = 0.1, buffer 8192, batches of 4096.
* DS-AL (Zhuang et al., "DS-AL: A Dual-Stream Analytic Learning for Exemplar-Free
  Class-Incremental Learning", AAAI 2024): a main ridge stream on relu(buffer) plus a
  compensation stream on tanh(buffer), fitted to the main stream's residual on the current
  task's columns ("previous label cleansing"); logits = main + C * compensation. Setting:
  gamma_main = gamma_comp = 0.1, C = 0.6 (PyCIL's CIFAR block; 1.5 on ImageNet).

Everything is float64, as in the reference code (the recursive inverse loses accuracy in
float32). R is (dim, dim): 512 MB for dim = 8192.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _pad_columns(Y: torch.Tensor, n: int) -> torch.Tensor:
    """Append zero columns to Y (N, C') up to n columns."""
    return torch.nn.functional.pad(Y, (0, max(n - Y.shape[1], 0)))


class RandomBuffer(nn.Module):
    """A fixed random linear expansion ``x -> act(x @ W^T)``. W is (buffer_size, in_dim),
    drawn from U(-1/sqrt(in_dim), 1/sqrt(in_dim)) as in the reference (nn.Linear's init,
    no bias) and seeded. The output is float64, (N, buffer_size).

    Args:
        in_dim: feature size of the frozen backbone.
        buffer_size: expanded size (ACIL, DS-AL: 8192).
        activation: ``"relu"`` (ACIL) or None (DS-AL, whose streams apply their own).
        seed: seed of the draw.
    """

    def __init__(self, in_dim: int, buffer_size: int, activation: str | None = "relu",
                 seed: int = 0) -> None:
        super().__init__()
        if activation not in ("relu", None):
            raise ValueError(f"RandomBuffer: activation must be 'relu' or None, got {activation!r}")
        self.activation = activation
        gen = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(in_dim)
        w = (2 * torch.rand(buffer_size, in_dim, generator=gen, dtype=torch.float64) - 1) * bound
        self.register_buffer("weight", w)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.to(self.weight) @ self.weight.T
        return torch.relu(z) if self.activation == "relu" else z


class RecursiveRidge(nn.Module):
    """Ridge regression ``W = (sum X^T X + gamma I)^-1 sum X^T Y``, updated batch by batch.

    The state is ``R = (sum X^T X + gamma I)^-1`` (dim, dim) and W (dim, C), both float64
    buffers, so they are saved in a ``state_dict``. W gets zero columns when a batch brings
    new classes: earlier batches had target 0 in those columns, so the result is still the
    joint ridge solution.

    Args:
        dim: input size (the buffer size).
        gamma: ridge regularisation (ACIL: 0.1).
        n_classes: initial number of output columns.
    """

    def __init__(self, dim: int, gamma: float, n_classes: int = 0) -> None:
        super().__init__()
        if gamma <= 0:
            raise ValueError(f"RecursiveRidge: gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("R", torch.eye(dim, dtype=torch.float64) / gamma)
        self.register_buffer("W", torch.zeros(dim, n_classes, dtype=torch.float64))

    @property
    def n_classes(self) -> int:
        return self.W.shape[1]

    def grow(self, n_classes: int) -> None:
        """Append zero columns to W up to ``n_classes`` outputs (never shrinks)."""
        if n_classes > self.n_classes:
            self.W = _pad_columns(self.W, n_classes)

    @torch.no_grad()
    def update(self, X: torch.Tensor, Y: torch.Tensor) -> None:
        """Add a batch by the Woodbury identity: ``K = (I + X R X^T)^-1``,
        ``R <- R - R X^T K X R``, ``W <- W + R X^T (Y - X W)`` (with the updated R).

        Args:
            X: (N, dim) inputs.
            Y: (N, C') targets (one-hot, or any real targets). C' < C means zeros in the
                missing columns; C' > C grows W.
        """
        X, Y = X.to(self.R), Y.to(self.R)
        if X.dim() != 2 or X.shape[1] != self.R.shape[0] or Y.shape[0] != X.shape[0]:
            raise ValueError(f"RecursiveRidge.update: X {tuple(X.shape)}, Y {tuple(Y.shape)}, "
                             f"dim {self.R.shape[0]}")
        self.grow(Y.shape[1])
        Y = _pad_columns(Y, self.n_classes)
        RXt = self.R @ X.T  # (dim, N)
        S = torch.eye(X.shape[0], dtype=X.dtype, device=X.device) + X @ RXt
        R = self.R - RXt @ torch.linalg.solve(S, RXt.T)
        self.R = 0.5 * (R + R.T)
        self.W = self.W + self.R @ (X.T @ (Y - X @ self.W))

    @torch.no_grad()
    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """(N, dim) -> (N, C) float64 outputs ``X @ W``."""
        return X.to(self.W) @ self.W

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        w = state_dict.get(prefix + "W")
        if w is not None and w.shape != self.W.shape:  # W grows with the classes
            self.W = self.W.new_zeros(w.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class DualStreamRidge(nn.Module):
    """DS-AL's two ridge streams on the (activation-free) buffer output ``Xb``.

    ``update`` fits the main stream on ``(relu(Xb), Y)``. It then fits the compensation
    stream on ``(tanh(Xb), Y - main(relu(Xb)))``, with the residual taken after the main
    update and its old-class columns zeroed (previous label cleansing). The output is
    ``main + compensation_ratio * compensation``.

    Args:
        dim: buffer size.
        gamma_main, gamma_comp: ridge regularisation of the two streams (0.1 each).
        compensation_ratio: C, the weight of the compensation stream (0.6).
    """

    def __init__(self, dim: int, gamma_main: float = 0.1, gamma_comp: float = 0.1,
                 compensation_ratio: float = 0.6) -> None:
        super().__init__()
        self.main = RecursiveRidge(dim, gamma_main)
        self.comp = RecursiveRidge(dim, gamma_comp)
        self.compensation_ratio = float(compensation_ratio)

    @torch.no_grad()
    def compensation_targets(self, Xb: torch.Tensor, Y: torch.Tensor, known: int) -> torch.Tensor:
        """(N, C) residual ``Y - main(relu(Xb))``, zero in the first ``known`` (old) columns."""
        Y = _pad_columns(Y.to(self.main.W), self.main.n_classes)
        residual = Y - self.main.predict(torch.relu(Xb))
        residual[:, :known] = 0.0
        return residual

    @torch.no_grad()
    def update(self, Xb: torch.Tensor, Y: torch.Tensor, known: int) -> None:
        """Fit one batch: Xb (N, dim) buffer outputs, Y (N, C) targets, ``known`` = number
        of classes of the earlier tasks (whose residual columns are cleansed)."""
        Xb = Xb.to(self.main.R)
        self.main.update(torch.relu(Xb), Y)
        self.comp.update(torch.tanh(Xb), self.compensation_targets(Xb, Y, known))

    @torch.no_grad()
    def forward(self, Xb: torch.Tensor) -> torch.Tensor:
        """(N, dim) buffer outputs -> (N, C) float64 logits."""
        Xb = Xb.to(self.main.W)
        return (self.main.predict(torch.relu(Xb))
                + self.compensation_ratio * self.comp.predict(torch.tanh(Xb)))
