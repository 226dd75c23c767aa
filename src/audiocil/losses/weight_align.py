"""Weight aligning (Zhao et al., "Maintaining Discrimination and Fairness in Class
Incremental Learning", CVPR 2020).

After a task, the classifier rows of the new classes are longer than the old ones, which
biases predictions toward the new classes. WA rescales the new rows by
``gamma = mean ||w_old|| / mean ||w_new||`` (the bias is unchanged). The paper also clips
the weights to be non-negative after every optimiser step (:func:`clip_nonnegative_`), which
PyCIL's WA and DER do not do.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def weight_align(weight: torch.Tensor, n_new: int) -> float:
    """Scale the last ``n_new`` rows of ``weight`` (C, D) in place so that their mean L2 norm
    equals the old rows'; returns the factor gamma (1.0 when there are no old or no new
    rows)."""
    if n_new <= 0 or n_new >= weight.shape[0]:
        return 1.0
    norms = weight.norm(dim=1)
    gamma = norms[:-n_new].mean() / norms[-n_new:].mean().clamp(min=1e-12)
    weight[-n_new:] *= gamma
    return float(gamma)


@torch.no_grad()
def clip_nonnegative_(weight: torch.Tensor) -> torch.Tensor:
    """WA's weight clipping: set the negative entries of ``weight`` to 0 in place, and
    return it."""
    return weight.clamp_(min=0.0)
