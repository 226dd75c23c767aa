"""PODNet's losses (Douillard et al., "PODNet: Pooled Outputs Distillation for Small-Tasks
Incremental Learning", ECCV 2020).

Total loss at task t >= 1: ``nca_loss + adaptive_factor * (lambda_f * pod_flat +
lambda_c * pod_spatial)``, with lambda_f = 1, lambda_c = 5 (the paper's and PyCIL's CIFAR
setting; NCA margin 0.6, scale 1 on a learnable-sigma LSC head).

Two points differ from the reference code (PyCIL ``models/podnet.py``, itself taken from the
authors' repository), and follow the paper's Eq. 7 instead:

* The margin is subtracted from the true class's similarity only. The reference subtracts
  it from every logit (``scale * (similarities - margin)``), so it cancels in the softmax
  and has no effect.
* "Positive excluded from the denominator" excludes it: the reference zeroes the
  positive's max-shifted logit, so it still adds exp(max) to the denominator. The paper
  clips the result at 0 (``hinge=True``); the reference turns the hinge off.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.flatten(1), p=2, dim=1)


def pod_spatial(maps_student: list[torch.Tensor], maps_teacher: list[torch.Tensor]) -> torch.Tensor:
    """POD-spatial distillation of intermediate feature maps (PODNet Eq. 4-5).

    For each stage, the squared activations are summed over width, giving (B, C, H), and
    over height, giving (B, C, W). Both are flattened and concatenated, each sample's vector
    is L2-normalised, and the batch mean of the L2 distance is taken. The result is the
    average over the stages.

    Args:
        maps_student: per stage, (B, C_s, H_s, W_s) maps of the model being trained.
        maps_teacher: the frozen old model's maps, with the same shapes (no gradient).

    Returns:
        A scalar, exactly 0 when the student's maps equal the teacher's.
    """
    if len(maps_student) != len(maps_teacher) or not maps_student:
        raise ValueError(f"pod_spatial: {len(maps_student)} student and "
                         f"{len(maps_teacher)} teacher stages (need the same, > 0)")
    total = maps_student[0].new_zeros(())
    for a, b in zip(maps_student, maps_teacher, strict=True):
        if a.shape != b.shape or a.dim() != 4:
            raise ValueError(f"pod_spatial: stage shapes {tuple(a.shape)} and {tuple(b.shape)}")
        a, b = a.pow(2), b.detach().pow(2)
        pa = _unit(torch.cat([a.sum(dim=3).flatten(1), a.sum(dim=2).flatten(1)], dim=1))
        pb = _unit(torch.cat([b.sum(dim=3).flatten(1), b.sum(dim=2).flatten(1)], dim=1))
        total = total + (pa - pb).norm(dim=1).mean()
    return total / len(maps_student)


def pod_flat(h: torch.Tensor, h_old: torch.Tensor) -> torch.Tensor:
    """POD-flat distillation of the embeddings: the batch mean of ``1 - cos(h, h_old)``.

    This is computed as ``0.5 * ||h/|h| - h_old/|h_old| ||^2``, which is the same quantity
    for unit vectors but is exactly 0 when ``h == h_old`` (no rounding from ``1 - 0.99...``).

    Args:
        h: (B, D) embeddings of the model being trained.
        h_old: (B, D) embeddings of the frozen old model (no gradient).
    """
    if h.shape != h_old.shape:
        raise ValueError(f"pod_flat: shapes {tuple(h.shape)} and {tuple(h_old.shape)} differ")
    return 0.5 * (_unit(h) - _unit(h_old.detach())).pow(2).sum(dim=1).mean()


def adaptive_factor(n_total: int, n_new: int) -> float:
    """PODNet's weight on the distillation terms, ``sqrt(n_total / n_new)``: classes seen so
    far over the current task's new classes (sqrt(2) at the second of equal-sized tasks)."""
    if n_new <= 0 or n_total < n_new:
        raise ValueError(f"adaptive_factor: need 0 < n_new <= n_total, got {n_new}, {n_total}")
    return math.sqrt(n_total / n_new)


def nca_loss(similarities: torch.Tensor, y: torch.Tensor, scale: float = 1.0,
             margin: float = 0.6, exclude_positive: bool = True,
             hinge: bool = True) -> torch.Tensor:
    """NCA / LSC classification loss with an additive margin (PODNet Eq. 7).

    With ``s`` the similarities, the positive logit is ``scale * (s_y - margin)`` and every
    other logit is ``scale * s_j``. The per-sample loss is
    ``-log(exp(pos) / sum_{j != y} exp(scale * s_j))`` when ``exclude_positive`` is set
    (clipped at 0 when ``hinge`` is set), and the ordinary margin cross-entropy otherwise.
    The margin applies to the true class only, so it changes the loss. The reference code
    subtracts it from every logit, where it cancels (see the module docstring).

    Args:
        similarities: (B, C) cosine logits, or the proxy-merged class similarities of an
            LSC head (its learnable sigma already applied).
        y: (B,) class indices.
        scale: eta, a fixed multiplier on the similarities.
        margin: delta, subtracted from the true class's similarity.
        exclude_positive: leave the positive out of the denominator (PODNet: true).
        hinge: clip each sample's loss at 0, as in the paper (only with ``exclude_positive``).

    Returns:
        A scalar, the batch mean.
    """
    if similarities.dim() != 2 or similarities.shape[0] != y.shape[0]:
        raise ValueError(f"nca_loss: similarities {tuple(similarities.shape)}, y {tuple(y.shape)}")
    if exclude_positive and similarities.shape[1] < 2:
        raise ValueError("nca_loss: excluding the positive needs at least 2 classes")
    pos_mask = F.one_hot(y, similarities.shape[1]).bool()
    logits = scale * (similarities - margin * pos_mask.to(similarities.dtype))
    if not exclude_positive:
        return F.cross_entropy(logits, y)
    pos = logits.gather(1, y[:, None]).squeeze(1)
    neg = torch.logsumexp(logits.masked_fill(pos_mask, float("-inf")), dim=1)
    losses = neg - pos
    return (losses.clamp(min=0.0) if hinge else losses).mean()
