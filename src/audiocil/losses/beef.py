"""The pure parts of BEEF's expansion stage (Wang et al., "BEEF: Bi-Compatible
Class-Incremental Learning via Energy-Based Expansion and Fusion", ICLR 2023).

Each task trains a new backbone with the following heads on its features:

* ``train_logits`` (B, n_old_tasks + n_new): one *backward prototype* per old task (every
  old class of task i maps to column i), then one column per new class.
* ``energy_logits`` (B, total): the *forward prototypes*, one per class seen so far. They
  model "unknown" inputs near each class.

The expansion loss is ``CE(train_logits with old columns / 1.7, task pseudo-labels)`` plus
``0.01 * energy_ce`` on negatives. A negative is an input rotated by 180 degrees and moved
by 3 gradient steps (lr 1e-2, noise 1e-3) that lower its forward-prototype mass
(:func:`sample_negatives`). The energy CE then asks that the negative of a sample of class y
be classified as forward prototype y. Settings: PyCIL's (logits_alignment 1.7,
energy_weight 0.01).

Read from PyCIL's ``models/beef_iso.py``, with two deliberate changes:

* The sampler's objective is the sum of per-sample log masses. The reference takes the log
  of the mass summed over the batch, which weights each sample's gradient by 1/(batch
  mass) instead of 1/(its own mass).
* The suppressed columns are per row: each negative's own (pseudo-)label column is masked to
  -inf. The reference writes 1e-9 into the columns of *every* label in the batch, for all
  rows (``logits[:, pseudo_targets] = 1e-9``). A logit of 1e-9 still weighs exp(0) = 1 in
  the softmax, so the column is not removed.

Fusion (training the per-task biases on a balanced set) is a plain CE and needs nothing
here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def task_pseudo_targets(y: torch.Tensor, task_sizes: Sequence[int]) -> torch.Tensor:
    """Map class labels to ``train_logits`` columns. A class of old task i goes to i; a new
    class c goes to ``n_old_tasks + (c - known)``.

    Args:
        y: (B,) class indices in [0, sum(task_sizes)).
        task_sizes: classes per task, the current task last.
    """
    sizes = torch.as_tensor(list(task_sizes), device=y.device)
    ends = sizes.cumsum(0)
    known, n_old = int(ends[-1] - sizes[-1]), len(task_sizes) - 1
    old_task = torch.bucketize(y, ends[:-1], right=True)
    return torch.where(y >= known, y - known + n_old, old_task)


def expansion_ce(train_logits: torch.Tensor, pseudo_targets: torch.Tensor, n_old_tasks: int,
                 logits_alignment: float = 1.7) -> torch.Tensor:
    """CE of the train logits with the backward-prototype (old-task) columns divided by
    ``logits_alignment`` (BEEF: 1.7)."""
    scale = torch.ones(train_logits.shape[1], dtype=train_logits.dtype, device=train_logits.device)
    scale[:n_old_tasks] = 1.0 / logits_alignment
    return F.cross_entropy(train_logits * scale, pseudo_targets)


def forward_log_mass(train_logits: torch.Tensor, energy_logits: torch.Tensor) -> torch.Tensor:
    """(B,) log of the softmax mass on the forward prototypes, over the concatenation
    ``[train_logits, energy_logits]``. It equals ``logsumexp(energy) - logsumexp(all)``."""
    both = torch.cat([train_logits, energy_logits], dim=1)
    return torch.logsumexp(energy_logits, dim=1) - torch.logsumexp(both, dim=1)


def energy_ce(train_logits: torch.Tensor, energy_logits: torch.Tensor, y: torch.Tensor,
              suppress: torch.Tensor | None = None) -> torch.Tensor:
    """CE of negatives over ``[train_logits, energy_logits]``, with targets at forward
    prototype y (column ``n_train + y``).

    Args:
        train_logits: (B, n_train) logits of the negatives on the train head.
        energy_logits: (B, total) logits of the negatives on the forward prototypes.
        y: (B,) class of the sample each negative was made from.
        suppress: optional (B,) train column of each row to mask to -inf (its
            pseudo-label: the class itself at task 0, the task column later).
    """
    if train_logits.shape[0] != energy_logits.shape[0] or y.shape != train_logits.shape[:1]:
        raise ValueError(f"energy_ce: train {tuple(train_logits.shape)}, energy "
                         f"{tuple(energy_logits.shape)}, y {tuple(y.shape)}")
    if suppress is not None:
        mask = F.one_hot(suppress, train_logits.shape[1]).bool()
        train_logits = train_logits.masked_fill(mask, float("-inf"))
    both = torch.cat([train_logits, energy_logits], dim=1)
    return F.cross_entropy(both, y + train_logits.shape[1])


def sample_negatives(logits_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                     x: torch.Tensor, n_steps: int = 3, lr: float = 1e-2, noise: float = 1e-3,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """BEEF's negatives: rotate x by 180 degrees over its last two axes (frequency and time
    for a (B, C, F, T) spectrogram), then take ``n_steps`` steps of gradient descent on the
    summed :func:`forward_log_mass`, each followed by Gaussian noise of std ``noise``.

    Args:
        logits_fn: maps inputs to ``(train_logits, energy_logits)``. It should be a frozen
            copy of the network in a mode that does not update BatchNorm statistics. Only
            the input's gradient is taken (no parameter's ``.grad`` is touched).
        x: (B, ...) inputs.

    Returns:
        The negatives, detached, with x's shape.
    """
    z = torch.rot90(x.detach(), 2, dims=(-2, -1))
    for _ in range(n_steps):
        z = z.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(forward_log_mass(*logits_fn(z)).sum(), z)
        z = (z - lr * grad).detach()
        z = z + noise * torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    return z
