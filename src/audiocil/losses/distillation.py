"""Knowledge distillation between a frozen teacher and the student (LwF, iCaRL).

Hinton et al. (2015, "Distilling the knowledge in a neural network") soften both
distributions with a temperature ``T`` and match them. Two conventions matter when
comparing numbers across codebases:

* **Value**: :func:`kd_loss` returns the soft-target *cross-entropy*
  ``-sum_c p_T(teacher)_c * log p_T(student)_c`` averaged over the batch, which is what the
  reference toolbox (PyCIL's ``lwf`` / ``icarl``) optimises. It differs from the KL
  divergence only by the teacher's entropy, a constant w.r.t. the student, so the
  gradients are identical; but the value is not zero when the student matches.
* **T² scaling**: the gradient of a softened loss shrinks as ``1/T²``; Hinton et al.
  multiply the loss by ``T²`` to keep its scale independent of ``T``. PyCIL does *not*
  (its LwF weight ``lamda=3`` and iCaRL weight 1 are tuned without it), so the default here
  is ``scale_t2=False``; pass ``scale_t2=True`` for the Hinton convention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_pair(loss: str, student: torch.Tensor, teacher: torch.Tensor,
               what: str = "logits") -> None:
    """Raise a ValueError naming ``loss`` when the student's and teacher's tensors differ in
    shape."""
    if student.shape != teacher.shape:
        raise ValueError(f"{loss}: student {tuple(student.shape)} and teacher "
                         f"{tuple(teacher.shape)} {what} differ in shape")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 2.0,
            scale_t2: bool = False) -> torch.Tensor:
    """Distillation loss of ``student_logits`` towards ``teacher_logits``.

    Args:
        student_logits: (B, C) logits of the student on the teacher's classes.
        teacher_logits: (B, C) logits of the frozen teacher (no gradient flows into them).
        T: softmax temperature (> 0).
        scale_t2: multiply by ``T**2`` (Hinton et al.'s convention); off as in PyCIL.

    Returns:
        A scalar: the soft cross-entropy summed over classes and averaged over the batch
        (zero for an empty batch or zero classes).
    """
    check_pair("kd_loss", student_logits, teacher_logits)
    if student_logits.numel() == 0:
        return student_logits.sum() * 0.0
    log_p = F.log_softmax(student_logits.float() / T, dim=1)
    q = F.softmax(teacher_logits.detach().float() / T, dim=1)
    loss = -(q * log_p).sum(dim=1).mean()
    return loss * (T * T) if scale_t2 else loss


def weighted_kd_ce(logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                   T: float = 2.0, lam: float | None = None) -> torch.Tensor:
    """``lam * KD_T(old-class logits, teacher) + (1 - lam) * CE(all logits, y)``.

    This is the loss of BiC's first stage (Wu et al., "Large Scale Incremental Learning",
    CVPR 2019), of WA (Zhao et al., CVPR 2020) and of COIL's base term, all with T = 2 and
    ``lam = known / total`` (the share of old classes among those seen, the default). KD is
    :func:`kd_loss` on the first ``known`` logits (no T^2 factor, as in PyCIL).

    BiC's second stage is a plain cross-entropy of the bias-corrected logits on the
    validation split: ``F.cross_entropy(corrected, y)``. The reference applies a softmax
    before the cross-entropy (a double softmax); do not.

    Args:
        logits: (B, total) student logits over every class seen so far.
        teacher_logits: (B, known) frozen old model's logits, known <= total.
        targets: (B,) class indices in [0, total).
        T: distillation temperature.
        lam: the KD weight; None means ``known / total``.
    """
    known, total = teacher_logits.shape[1], logits.shape[1]
    if known > total or teacher_logits.shape[0] != logits.shape[0]:
        raise ValueError(f"weighted_kd_ce: logits {tuple(logits.shape)}, teacher "
                         f"{tuple(teacher_logits.shape)}")
    lam = known / total if lam is None else float(lam)
    ce = F.cross_entropy(logits, targets)
    if known == 0:
        return (1.0 - lam) * ce
    return lam * kd_loss(logits[:, :known], teacher_logits, T) + (1.0 - lam) * ce
