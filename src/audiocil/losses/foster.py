"""FOSTER's class-balanced losses (Wang et al., "FOSTER: Feature Boosting and Compression
for Class-Incremental Learning", ECCV 2022).

Old classes have only exemplars (20 per class) and new classes their full data, so both
stages reweight classes by the inverse effective number of samples (Cui et al., CVPR 2019):
``w_c ∝ (1 - beta) / (1 - beta^{n_c})``. The settings are beta_1 = 0.96 for boosting and
beta_2 = 0.97 for compression (PyCIL and the authors' code).

* Boosting: ``CE(z / w, y)`` (:func:`logit_adjusted_ce`), plus CE of the new-feature head,
  plus lambda_okd * KD of the old classes' logits toward the old head.
* Compression: balanced KD (:func:`bkd_loss`) of the single-backbone student toward the
  boosted teacher.

We use the real sample counts per class. The reference's ``getlen`` sums the sample
indices instead of counting them, which makes w_new about 1 - beta.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiocil.losses.distillation import check_pair


def class_balanced_weights(counts: torch.Tensor | list[int], beta: float,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Effective-number class weights, normalised to sum to the number of classes.

    Args:
        counts: (C,) number of training samples of each class (all > 0).
        beta: in [0, 1); 0 gives equal weights, and values near 1 approach inverse
            frequency (FOSTER: 0.96 for boosting, 0.97 for compression).
        dtype: dtype of the result (the computation is float64).

    Returns:
        (C,) weights ``w_c = (1 - beta) / (1 - beta^{n_c})`` scaled so that
        ``sum_c w_c = C``. Equal counts give ones.
    """
    n = torch.as_tensor(counts, dtype=torch.float64)
    if n.dim() != 1 or n.numel() == 0 or (n <= 0).any():
        raise ValueError(f"class_balanced_weights: counts must be (C,) and > 0, got {counts}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"class_balanced_weights: beta must be in [0, 1), got {beta}")
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    return (w / w.sum() * n.numel()).to(dtype)


def logit_adjusted_ce(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """FOSTER's boosting loss ``CE(z / w, y)``: each class's logit is divided by its weight.

    A class with a large weight (few samples, i.e. old classes) has its logit shrunk during
    training, so the model learns larger raw logits for it. That offsets the bias toward
    new classes at test time, when the logits are used unscaled. The multiplicative form is
    the one the reference code trains with, which we follow. The additive form of Menon et
    al. (ICLR 2021), ``z + tau * log(prior)``, is the other common choice and is not the
    one FOSTER's results come from.

    Args:
        logits: (B, C) logits over all classes seen so far.
        y: (B,) class indices.
        weights: (C,) :func:`class_balanced_weights`, all > 0.
    """
    if weights.shape != logits.shape[1:]:
        raise ValueError(f"logit_adjusted_ce: weights {tuple(weights.shape)} for logits "
                         f"{tuple(logits.shape)}")
    return F.cross_entropy(logits / weights.to(logits), y)


def bkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, weights: torch.Tensor,
             T: float = 2.0) -> torch.Tensor:
    """Balanced knowledge distillation (FOSTER's compression stage).

    The teacher's softmax at temperature T is multiplied by the class weights and
    renormalised per sample. The loss is the soft cross-entropy of the student's
    log-softmax at T toward it, summed over classes and averaged over the batch, with no
    T^2 factor. This is :func:`~audiocil.losses.distillation.kd_loss` when the weights are
    all ones.

    Args:
        student_logits: (B, C) student logits.
        teacher_logits: (B, C) frozen teacher logits (no gradient).
        weights: (C,) class weights (:func:`class_balanced_weights` with beta_2).
        T: temperature (FOSTER: 2).
    """
    check_pair("bkd_loss", student_logits, teacher_logits)
    if weights.shape != student_logits.shape[1:]:
        raise ValueError(f"bkd_loss: weights {tuple(weights.shape)} for logits "
                         f"{tuple(student_logits.shape)}")
    if student_logits.numel() == 0:
        return student_logits.sum() * 0.0
    log_p = F.log_softmax(student_logits.float() / T, dim=1)
    q = F.softmax(teacher_logits.detach().float() / T, dim=1) * weights.to(log_p)
    q = q / q.sum(dim=1, keepdim=True)
    return -(q * log_p).sum(dim=1).mean()
