"""Multi-label scores of a class-incremental run: F1 at a threshold, average precision,
per class block, and the forgetting of the base classes.

The figures follow Mulimani & Mesaros (ICASSP 2024; IEEE/ACM TASLP 2025):

* **macro-F1** (the mean over classes of each class's F1) and **micro-F1** (F1 of the
  pooled counts) of predictions ``sigmoid(logit) >= threshold`` (0.5);
* **mAP**: the mean over classes of the average precision computed from the *scores*
  (``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first:
  scikit-learn's ``average_precision_score``);
* **mAP (thresholded)**: the same AP computed from the 0/1 *predictions* instead of the
  scores, which is what the authors' released code reports as "mAP"; it is kept, labelled
  as such, to compare with their tables. With binary scores it equals
  ``precision * recall + prevalence * (1 - recall)``;
* per **class block** (the classes of each phase): macro-F1 and mAP of the block;
* **forgetting** after phase t: macro-F1 of the base classes (block 0) after phase 0
  minus after phase t (:func:`base_forgetting`).

Conventions: a class with no positive test clip has no AP and is left out of the mean
(``nan`` in per-class lists); its F1 is 0 when it is predicted anywhere and also 0 when it
is not (scikit-learn's ``zero_division=0``), so macro-F1 is over every seen class.

:class:`MultilabelScores` accumulates these over a test pass as a torchmetrics Metric:
counts are summed and scores gathered across processes, so under DDP (with an unpadded
sharded loader) each test clip is counted exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


# ---- pure functions ------------------------------------------------------------------------
def confusion_counts(preds: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-class true positives, false positives, false negatives: three (C,) long tensors.

    Args:
        preds: (N, C) 0/1 (or bool) predictions.
        targets: (N, C) 0/1 targets.
    """
    p, t = preds.bool(), targets.bool()
    tp = (p & t).sum(0).long()
    fp = (p & ~t).sum(0).long()
    fn = (~p & t).sum(0).long()
    return tp, fp, fn


def f1_per_class(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """(C,) F1 = 2TP / (2TP + FP + FN), 0 where the denominator is 0."""
    num = 2 * tp.double()
    den = (2 * tp + fp + fn).double()
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


def macro_f1(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> float:
    """Mean of the per-class F1 (0 for no class)."""
    f1 = f1_per_class(tp, fp, fn)
    return float(f1.mean()) if f1.numel() else 0.0


def micro_f1(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> float:
    """F1 of the counts pooled over classes (0 when nothing is positive or predicted)."""
    den = float(2 * tp.sum() + fp.sum() + fn.sum())
    return float(2 * tp.sum()) / den if den > 0 else 0.0


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(C,) average precision of each class from its scores; ``nan`` for a class with no
    positive.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score values taken as thresholds
    from the highest down (tied scores enter together), as scikit-learn's
    ``average_precision_score``.

    Args:
        scores: (N, C) real scores (probabilities, logits or 0/1 predictions).
        targets: (N, C) 0/1 targets.
    """
    n, c = scores.shape
    out = torch.full((c,), float("nan"), dtype=torch.float64)
    for k in range(c):
        y = targets[:, k].double()
        n_pos = float(y.sum())
        if n_pos == 0:
            continue
        s, order = torch.sort(scores[:, k].double(), descending=True, stable=True)
        y = y[order]
        tp = torch.cumsum(y, 0)
        # keep the last position of each run of tied scores: one point per threshold
        last = torch.ones(n, dtype=torch.bool)
        last[:-1] = s[1:] != s[:-1]
        tp, count = tp[last], torch.arange(1, n + 1, dtype=torch.float64)[last]
        precision, recall = tp / count, tp / n_pos
        prev = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
        out[k] = float(((recall - prev) * precision).sum())
    return out


def nanmean(x: torch.Tensor) -> float | None:
    """Mean of the non-nan entries; None when there is none."""
    ok = ~torch.isnan(x)
    return float(x[ok].mean()) if ok.any() else None


def multilabel_scores(scores: torch.Tensor, targets: torch.Tensor, block_of_class: torch.Tensor,
                      threshold: float = 0.5) -> dict:
    """Every figure of one evaluation from (N, C) probabilities and 0/1 targets.

    Args:
        scores: (N, C) probabilities (``sigmoid`` of the logits).
        targets: (N, C) 0/1 targets of the same classes.
        block_of_class: (C,) the block (phase) of each class, 0..n_blocks-1.
        threshold: a class is predicted when its probability is >= threshold.

    Returns:
        ``macro_f1, micro_f1, map, map_thresholded`` (all in 0..1), per-block lists
        ``f1_per_block, map_per_block, map_thresholded_per_block``, per-class lists
        ``f1_per_class, ap_per_class, positives_per_class`` and ``n_clips``.
    """
    preds = scores >= threshold
    tp, fp, fn = confusion_counts(preds, targets)
    ap = average_precision(scores, targets)
    ap_bin = average_precision(preds.double(), targets)
    f1 = f1_per_class(tp, fp, fn)
    n_blocks = int(block_of_class.max()) + 1 if block_of_class.numel() else 0
    blocks = [block_of_class == b for b in range(n_blocks)]
    return {
        "macro_f1": macro_f1(tp, fp, fn),
        "micro_f1": micro_f1(tp, fp, fn),
        "map": nanmean(ap),
        "map_thresholded": nanmean(ap_bin),
        "f1_per_block": [float(f1[b].mean()) for b in blocks],
        "map_per_block": [nanmean(ap[b]) for b in blocks],
        "map_thresholded_per_block": [nanmean(ap_bin[b]) for b in blocks],
        "f1_per_class": f1.tolist(),
        "ap_per_class": ap.tolist(),
        "positives_per_class": (tp + fn).tolist(),
        "n_clips": int(targets.shape[0]),
    }


def base_forgetting(base_f1_per_phase: Sequence[float]) -> list[float]:
    """Fr_t = F1 of the base classes after phase 0 minus after phase t (0 for t = 0)."""
    if not base_f1_per_phase:
        return []
    first = base_f1_per_phase[0]
    return [float(first - f) for f in base_f1_per_phase]


def mean_over_phases(values: Sequence[float | None]) -> float | None:
    """Average of a per-phase figure over the phases where it is defined."""
    vals = [v for v in values if v is not None]
    return float(sum(vals) / len(vals)) if vals else None


def average_forgetting(forgetting_per_phase: Sequence[float]) -> float:
    """Mean of Fr_t over the incremental phases t >= 1 (0 with a single phase)."""
    rest = list(forgetting_per_phase[1:])
    return float(sum(rest) / len(rest)) if rest else 0.0


# ---- the Metric ----------------------------------------------------------------------------
class MultilabelScores(Metric):
    """Collects sigmoid scores and targets of a test pass; :meth:`compute` returns
    :func:`multilabel_scores` of everything seen on every process.

    Args:
        block_of_class: (C,) block (phase) of each seen class position.
        threshold: decision threshold of F1 (0.5).

    ``update(logits, target)`` takes (B, >= C) logits and multi-hot targets and scores the
    first C columns (the classes seen so far).
    """

    full_state_update = False

    def __init__(self, block_of_class: torch.Tensor, threshold: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("block_of_class", block_of_class.long().clone(), persistent=False)
        self.n_classes = int(block_of_class.numel())
        self.threshold = float(threshold)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        c = self.n_classes
        if logits.shape[1] < c or target.shape[1] < c:
            raise ValueError(f"MultilabelScores: {c} classes are scored but logits have "
                             f"{logits.shape[1]} and targets {target.shape[1]} columns")
        self.scores.append(torch.sigmoid(logits[:, :c].float()))
        self.targets.append((target[:, :c] > 0).to(torch.uint8))

    def compute(self) -> dict:
        scores, targets = self.scores, self.targets
        if isinstance(scores, list):  # single process: still a list of batches
            scores = torch.cat(scores) if scores else torch.zeros(0, self.n_classes)
            targets = torch.cat(targets) if targets else torch.zeros(0, self.n_classes)
        return multilabel_scores(scores.double().cpu(), targets.cpu(),
                                 self.block_of_class.cpu(), self.threshold)
