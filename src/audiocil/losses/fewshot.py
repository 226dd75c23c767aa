"""Pieces shared by the few-shot methods: cosine and stochastic classifiers, margin and
distillation losses, the self-attention block, gates and Gaussian feature replay.

Used by :mod:`audiocil.methods.meta_sc` (Li et al., Interspeech 2023), :mod:`.pan`
(Li et al., IEEE TMM 2023) and :mod:`.amfo` (Li et al., IEEE/ACM TASLP 2024).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# moved to the heads package; still importable from here
from audiocil.heads.functional import class_means as class_means
from audiocil.heads.functional import cosine_logits as cosine_logits


def stochastic_weights(mu: torch.Tensor, sigma: torch.Tensor, offset: float,
                       stochastic: bool) -> torch.Tensor:
    """META-SC's classifier weights: mu + softplus(sigma - offset) * eps (training), or mu.

    The offset (4 in the code) makes the initial spread softplus(-4) = 0.018.
    """
    if not stochastic:
        return mu
    return mu + F.softplus(sigma - offset) * torch.randn_like(mu)


def cosface_loss(cos: torch.Tensor, y: torch.Tensor, scale: float, margin: float) -> torch.Tensor:
    """Large-margin cosine loss (CosFace; Wang et al., CVPR 2018): cross-entropy of
    ``scale * (cos - margin * onehot(y))``. A negative margin loosens the target class (the
    "negative margin" of Liu et al., ECCV 2020), which AMFO uses for transferable features."""
    onehot = F.one_hot(y, cos.shape[1]).to(cos)
    return F.cross_entropy(scale * (cos - margin * onehot), y)


def soft_distillation(student: torch.Tensor, teacher: torch.Tensor, T: float) -> torch.Tensor:
    """Soft cross-entropy of the teacher's tempered softmax over the student's, on the
    teacher's classes (the first ``teacher.shape[1]`` columns); mean over the batch."""
    s = F.log_softmax(student[:, :teacher.shape[1]] / T, dim=1)
    return -(F.softmax(teacher / T, dim=1) * s).sum(1).mean()


def gate(a: torch.Tensor, beta: float) -> torch.Tensor:
    """AMFO's gate of a task-specific layer: sigmoid(beta * batch mean of its output), (D,).
    ``beta`` grows with the epoch, so the gate hardens towards 0/1 during a session."""
    return torch.sigmoid(beta * a.mean(0))


def compression_penalty(alpha: torch.Tensor, r: float) -> torch.Tensor:
    """relu(|alpha|_1 / D - r): keeps a session's gate sparse (at most a fraction r open)."""
    return F.relu(alpha.abs().sum() / alpha.numel() - r)


def class_covariances(feats: torch.Tensor, labels: torch.Tensor, classes: Sequence[int]
                      ) -> torch.Tensor:
    """(len(classes), D, D) unbiased covariance of each class (zeros for a single sample)."""
    out = []
    for c in classes:
        f = feats[labels == c].double()
        if len(f) < 2:
            out.append(torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64))
            continue
        f = f - f.mean(0)
        out.append(f.t() @ f / (len(f) - 1))
    return torch.stack(out).float()


def calibrate_covariance(own: torch.Tensor, base: torch.Tensor, weights: torch.Tensor
                         ) -> torch.Tensor:
    """A few-shot class's covariance mixed with the base classes' (AMFO's distribution
    calibration): ``weights[-1] * own + sum_j weights[j] * base[j]``.

    Args:
        own: (D, D) the class's covariance from its few shots.
        base: (B, D, D) base-class covariances.
        weights: (B + 1,) mixing weights (a softmax of the class's similarity to each base
            class and to itself).
    """
    return weights[-1] * own + torch.einsum("b,bij->ij", weights[:-1].to(base), base)


def gaussian_factors(covs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(C, D, D) matrices L with L L^T = cov (symmetric square roots; singular covariances
    of a few samples are fine)."""
    vals, vecs = torch.linalg.eigh(covs.double())
    return (vecs * vals.clamp(min=0).add(eps).sqrt().unsqueeze(-2)).float()


def sample_gaussian(means: torch.Tensor, factors: torch.Tensor, n: int,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pseudo-features of each class from N(mean, L L^T).

    Returns:
        (C * n, D) features class by class, and (C * n,) their row in ``means``.
    """
    C, D = means.shape
    z = torch.randn(C, n, D, generator=generator).to(means)
    x = means[:, None] + z @ factors.transpose(1, 2)
    return x.reshape(C * n, D), torch.arange(C).repeat_interleave(n)


class SelfAttention(nn.Module):
    """One-head scaled dot-product self-attention with a residual connection and layer
    norm (the ``MultiHeadAttention(1, D, D, D)`` block of FEAT, used by META-SC and PAN).

    Shapes: (B, L, D) -> (B, L, D).
    """

    def __init__(self, dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        for lin in (self.q, self.k, self.v):
            nn.init.normal_(lin.weight, 0.0, math.sqrt(1.0 / dim))  # sqrt(2 / (d_model + d_k))
        self.out = nn.Linear(dim, dim)
        nn.init.xavier_normal_(self.out.weight)
        self.attn_dropout = nn.Dropout(0.1)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.temperature = math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / self.temperature, dim=-1)
        h = self.attn_dropout(attn) @ self.v(x)
        return self.norm(x + self.dropout(self.out(h)))
