"""Losses of multi-label class-incremental learning, as pure functions of tensors.

They follow Mulimani & Mesaros, "Class-incremental learning for multi-label audio
classification" (ICASSP 2024) and "A closer look at class-incremental learning for
multi-label audio classification" (IEEE/ACM TASLP 2025), whose method IODFD trains the new
classes with *independent learning* (IndL) and keeps the old ones with an *output
distillation* (OD) and a *feature distillation* (FD) from the frozen previous learner,
weighted adaptively as in LUCIR (Hou et al., CVPR 2019).

Where the authors' released code differs from the papers' text, the difference is a
setting here (see each function); defaults follow the text.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from audiocil.losses.distillation import check_pair


def bce_loss(logits: torch.Tensor, targets: torch.Tensor,
             pos_weight: float | torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy with sigmoids, averaged over every (clip, class) entry.

    Args:
        logits: (B, C) logits.
        targets: (B, C) multi-hot targets in {0, 1} (masked columns read 0).
        pos_weight: weight of the positive term (a scalar or (C,)), or None. The authors'
            code uses one scalar, #negatives / #positives over the phase's training targets
            (:func:`positive_weight`).

    Returns:
        A scalar (0 for an empty batch or zero classes).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"bce_loss: logits {tuple(logits.shape)} and targets "
                         f"{tuple(targets.shape)} differ in shape")
    if logits.numel() == 0:
        return logits.sum() * 0.0
    pw = None
    if pos_weight is not None:
        pw = torch.as_tensor(pos_weight, dtype=torch.float32, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=pw)


def positive_weight(targets: torch.Tensor) -> float:
    """#negatives / #positives of a (N, C) multi-hot target matrix (1.0 if no positive)."""
    pos = float(targets.sum())
    return (targets.numel() - pos) / pos if pos > 0 else 1.0


def independent_bce(logits: torch.Tensor, targets: torch.Tensor, known: int,
                    pos_weight: float | torch.Tensor | None = None) -> torch.Tensor:
    """Independent learning (IndL): BCE on the *new* classes' logits only.

    The old classes' outputs receive no gradient from the classification loss, so the new
    phase's clips (on which old classes read 0: their labels are not given) do not push
    them down. In phase 0 every class is new and this is plain BCE.

    Args:
        logits: (B, total) logits over the classes seen so far.
        targets: (B, >= total) multi-hot targets in class-order positions.
        known: classes learnt before this phase (positions 0..known-1 are old).
    """
    total = logits.shape[1]
    return bce_loss(logits[:, known:], targets[:, known:total], pos_weight)


def output_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                        T: float = 2.0, reduction: str = "batchmean") -> torch.Tensor:
    """Output distillation (OD): KL(teacher || student) of temperature-``T`` softmaxes over
    the old classes' logits, times ``T**2`` (Hinton et al., 2015).

    As in the papers, the old classes' logits are softened by a softmax across classes
    (not per-class sigmoids).

    Args:
        student_logits: (B, C_old) current learner's logits of the old classes.
        teacher_logits: (B, C_old) frozen previous learner's logits (no gradient).
        T: temperature.
        reduction: ``batchmean`` (the KL divergence per clip, averaged over the batch: the
            mathematical KL) or ``mean`` (additionally divided by C_old: PyTorch's default
            ``nn.KLDivLoss()``, which the authors' code uses; its weight ``lamda`` = 5 is
            tuned for this).
    """
    check_pair("output_distillation", student_logits, teacher_logits)
    if reduction not in ("batchmean", "mean"):
        raise ValueError(f"reduction must be batchmean|mean, got {reduction!r}")
    if student_logits.numel() == 0:
        return student_logits.sum() * 0.0
    log_p = F.log_softmax(student_logits.float() / T, dim=1)
    log_q = F.log_softmax(teacher_logits.detach().float() / T, dim=1)
    kl = F.kl_div(log_p, log_q, reduction="batchmean", log_target=True)
    if reduction == "mean":
        kl = kl / student_logits.shape[1]
    return kl * (T * T)


def sigmoid_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         T: float = 2.0) -> torch.Tensor:
    """Multi-label distillation: BCE of the student's per-class sigmoids towards the
    teacher's, both at temperature ``T``, averaged over every (clip, class) entry.

    The multi-label form of LwF (Li & Hoiem, 2016), used by ``method=lwf`` in the
    multi-label scenario. Minimal (= the teacher's binary entropy) when the two agree.
    """
    check_pair("sigmoid_distillation", student_logits, teacher_logits)
    if student_logits.numel() == 0:
        return student_logits.sum() * 0.0
    q = torch.sigmoid(teacher_logits.detach().float() / T)
    return F.binary_cross_entropy_with_logits(student_logits.float() / T, q)


def feature_distillation(student_feats: torch.Tensor, teacher_feats: torch.Tensor,
                         scope: str = "sample") -> torch.Tensor:
    """Feature distillation (FD): 1 - cosine similarity of L2-normalised embeddings.

    Args:
        student_feats: (B, D) current learner's embeddings.
        teacher_feats: (B, D) frozen previous learner's embeddings (no gradient).
        scope: ``sample`` (one cosine per clip, averaged: the papers' description) or
            ``batch`` (one cosine between the whole batch's flattened features, as the
            authors' code computes it).
    """
    check_pair("feature_distillation", student_feats, teacher_feats, "features")
    if scope not in ("sample", "batch"):
        raise ValueError(f"scope must be sample|batch, got {scope!r}")
    if student_feats.numel() == 0:
        return student_feats.sum() * 0.0
    s, t = student_feats.float(), teacher_feats.detach().float()
    if scope == "batch":
        s, t = s.reshape(1, -1), t.reshape(1, -1)
    else:
        s, t = s.flatten(1), t.flatten(1)
    cos = (F.normalize(s, dim=1) * F.normalize(t, dim=1)).sum(dim=1)
    return (1 - cos).mean()


def adaptive_weight(base: float, n_old: int, n_new: int, exponent: float = 0.5,
                    ratio: str = "old") -> float:
    """The weight of a distillation term as classes grow.

    LUCIR (Hou et al., CVPR 2019) sets ``lambda = base * sqrt(C_old / C_new)``, so that
    the more there is to keep, the more keeping it weighs; this is ``exponent=0.5,
    ratio="old"``. The IODFD authors' code uses ``base * ((C_old + C_new) / C_new) ** 0.66``
    (``ratio="total"``, ``exponent=0.66``).

    Args:
        base: lambda_base.
        n_old: classes learnt before the phase.
        n_new: classes of the phase.
        exponent: the power.
        ratio: ``old`` (C_old / C_new) or ``total`` ((C_old + C_new) / C_new).
    """
    if ratio not in ("old", "total"):
        raise ValueError(f"ratio must be old|total, got {ratio!r}")
    if n_new <= 0:
        raise ValueError(f"adaptive_weight: n_new must be positive, got {n_new}")
    num = n_old if ratio == "old" else n_old + n_new
    return float(base) * math.pow(num / n_new, exponent)
