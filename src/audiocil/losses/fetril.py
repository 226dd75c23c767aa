"""FeTrIL's pseudo-features (Petit et al., "FeTrIL: Feature Translation for Exemplar-Free
Class-Incremental Learning", WACV 2023).

The backbone is frozen after the first task, and only one mean feature per old class is
kept. At each later task, every old class c is paired with the new class n(c) whose mean is
closest by cosine similarity. The features of n(c) are translated so that their mean
becomes c's: ``f - mu_n(c) + mu_c``. The classifier is then trained on real (new) plus
pseudo (old) features. This is the paper's "FeTrIL^1" setting (one new class per old
class), which PyCIL runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_new_class(old_means: torch.Tensor, new_means: torch.Tensor) -> torch.Tensor:
    """(O,) index of the most cosine-similar new class for each old class.

    Args:
        old_means: (O, D) stored mean features of the old classes.
        new_means: (N, D) mean features of the current task's classes.
    """
    if old_means.dim() != 2 or new_means.dim() != 2 or old_means.shape[1] != new_means.shape[1]:
        raise ValueError(f"nearest_new_class: means {tuple(old_means.shape)} and "
                         f"{tuple(new_means.shape)}")
    return (F.normalize(old_means, dim=1) @ F.normalize(new_means, dim=1).T).argmax(dim=1)


def pseudo_features(new_feats: torch.Tensor, mu_new: torch.Tensor,
                    mu_old: torch.Tensor) -> torch.Tensor:
    """Translate a new class's features onto an old class: ``f - mu_new + mu_old``.

    Args:
        new_feats: (M, D) features of the new class n(c).
        mu_new: (D,) mean of that class, the mean of ``new_feats``. With that mean, the
            pseudo-features' mean is exactly ``mu_old`` up to rounding.
        mu_old: (D,) stored mean of the old class c.

    Returns:
        (M, D) pseudo-features of class c.
    """
    if new_feats.dim() != 2 or mu_new.shape != new_feats.shape[1:] or mu_old.shape != mu_new.shape:
        raise ValueError(f"pseudo_features: feats {tuple(new_feats.shape)}, means "
                         f"{tuple(mu_new.shape)} and {tuple(mu_old.shape)}")
    return new_feats - mu_new + mu_old
