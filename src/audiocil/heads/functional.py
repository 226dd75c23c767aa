"""Classifier maths as pure functions: cosine scores, class means, nearest-mean logits.

Moved here from :mod:`audiocil.losses.fewshot` (``cosine_logits``, ``class_means``) and
:mod:`audiocil.methods.icarl` (``class_mean``, ``nme_logits``) so that the heads can use them
without importing a method; the old names still import from there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def cosine_logits(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(..., C) cosine similarity of features (..., D) with class weights (C, D) or (..., C, D)."""
    x = F.normalize(x, dim=-1)
    w = F.normalize(w, dim=-1)
    if w.dim() == 2:
        return x @ w.t()
    return (x.unsqueeze(-2) * w).sum(-1)


def class_means(feats: torch.Tensor, labels: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """(len(classes), D) mean feature of each class."""
    return torch.stack([feats[labels == c].mean(0) for c in classes])


def class_mean(features: torch.Tensor) -> torch.Tensor:
    """(D,) unit-norm mean of the unit-normalised rows of ``features`` (N, D); 0 if N = 0.

    iCaRL's class prototype (Rebuffi et al., CVPR 2017), as PyCIL computes it.
    """
    if len(features) == 0:
        return torch.zeros(features.shape[1])
    return F.normalize(F.normalize(features.float(), dim=1).mean(dim=0), dim=0)


def nme_logits(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """(B, C) minus the squared distance of each normalised feature (B, D) to each mean (C, D).

    iCaRL's nearest-mean-of-exemplars rule; the means are used as given (unit-norm when they
    come from :func:`class_mean`). Computed in float32.
    """
    f = F.normalize(features.float(), dim=1)
    m = means.to(f)
    d2 = (f * f).sum(1, keepdim=True) + (m * m).sum(1)[None] - 2 * f @ m.t()
    return -d2
