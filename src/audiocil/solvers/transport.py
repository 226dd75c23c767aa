"""COIL's semantic mapping between classifiers by optimal transport (Zhou et al.,
"Co-Transport for Class-Incremental Learning", ACM MM 2021).

In prospective transport, the old classes' classifier rows are carried to the next task's
classes to initialise their rows. In retrospective transport, the new rows are carried back
to the old classes. The cost between classes is the Minkowski (p = 3) distance of their
L2-normalised mean features. The plan is entropic OT, solved by Sinkhorn (POT's
``ot.sinkhorn``, reg 0.464). Transported rows are rescaled so that their mean norm matches
the source rows' mean norm.

Fixed from the reference (PyCIL ``models/coil.py``): it gives both marginals the mass
1/|old|, so the target side sums to |new|/|old|. When |new| != |old| the marginals have
different totals and no plan meets both. Sinkhorn's scalings then grow without bound (POT
warns of numerical errors), and the plan it returns does not carry those masses. Here each
side is uniform over its own classes (1/|source|, 1/|target|).
"""

from __future__ import annotations

import ot
import torch
import torch.nn.functional as F


def sinkhorn_plan(source_means: torch.Tensor, target_means: torch.Tensor, reg: float = 0.464,
                  p: float = 3.0, normalize_means: bool = True, num_iter_max: int = 10_000,
                  stop_thr: float = 1e-10) -> torch.Tensor:
    """Entropic OT plan between two sets of classes, with uniform marginals.

    Args:
        source_means: (S, D) class mean features of the source classes.
        target_means: (T, D) class mean features of the target classes.
        reg: entropic regularisation of Sinkhorn (COIL: 0.464).
        p: order of the Minkowski cost ``||mu_s - mu_t||_p`` (COIL's ``norm_term``: 3).
        normalize_means: L2-normalise each mean first, as COIL does.
        num_iter_max, stop_thr: Sinkhorn's iteration cap and stopping threshold.

    Returns:
        (S, T) float64 plan; its rows sum to 1/S and its columns to 1/T.
    """
    src, tgt = source_means.double(), target_means.double()
    if src.dim() != 2 or tgt.dim() != 2 or src.shape[1] != tgt.shape[1]:
        raise ValueError(f"sinkhorn_plan: means {tuple(src.shape)} and {tuple(tgt.shape)}")
    if normalize_means:
        src, tgt = F.normalize(src, dim=1), F.normalize(tgt, dim=1)
    cost = ot.dist(src, tgt, metric="minkowski", p=p)
    a = torch.full((src.shape[0],), 1.0 / src.shape[0], dtype=torch.float64, device=src.device)
    b = torch.full((tgt.shape[0],), 1.0 / tgt.shape[0], dtype=torch.float64, device=src.device)
    return ot.sinkhorn(a, b, cost, reg, numItermax=num_iter_max, stopThr=stop_thr)


def transport_weights(plan: torch.Tensor, weights: torch.Tensor, normalize_rows: bool = True,
                      target_norm: float | None = None) -> tuple[torch.Tensor, float]:
    """Carry classifier rows along a plan and match their mean norm.

    Row t of the result is the barycentric projection ``sum_s plan[s, t] w_s / sum_s plan[s,
    t]``, where the ``w_s`` are the L2-normalised source rows when ``normalize_rows`` is
    set, as in COIL. The rows are then scaled by one factor gamma so that their mean L2 norm
    equals ``target_norm``, by default the source rows' own mean norm. This is COIL's
    calibration. Any constant factor in the plan (the reference multiplies by |old|) is
    absorbed by gamma.

    Args:
        plan: (S, T) transport plan (``sinkhorn_plan(source, target)``).
        weights: (S, D) classifier rows of the source classes (e.g. the old head's rows
            for prospective transport, the new rows for retrospective transport).
        normalize_rows: normalise the source rows before transporting them.
        target_norm: the mean norm to match; None takes the source rows' mean norm.

    Returns:
        ``(rows, gamma)``: (T, D) transported rows in ``weights``' dtype, and the factor.
    """
    if plan.dim() != 2 or weights.dim() != 2 or plan.shape[0] != weights.shape[0]:
        raise ValueError(f"transport_weights: plan {tuple(plan.shape)}, weights {tuple(weights.shape)}")
    w = weights.detach().double()
    src = F.normalize(w, dim=1) if normalize_rows else w
    plan = plan.to(w)
    rows = (plan.T @ src) / plan.sum(dim=0, keepdim=True).T.clamp(min=1e-300)
    want = w.norm(dim=1).mean() if target_norm is None else torch.tensor(float(target_norm))
    gamma = float(want / rows.norm(dim=1).mean().clamp(min=1e-300))
    return (gamma * rows).to(weights.dtype), gamma
