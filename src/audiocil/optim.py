"""Optimizers and learning-rate schedules of a training stage, from the config.

A stage's ``optim`` node (``method.first_task``, ``method.later_tasks`` or a method's own
stage node) holds ``epochs``, an ``optimizer`` and a ``scheduler``, both Hydra nodes with
``_partial_: true``:

.. code-block:: yaml

    optimizer:                 # conf/optimizer/{sgd,adam,adamw}.yaml
      _target_: torch.optim.SGD
      _partial_: true
      lr: 0.1
      momentum: 0.9
      weight_decay: 5.0e-4
    scheduler:                 # conf/scheduler/default.yaml
      _target_: audiocil.optim.lr_schedule
      _partial_: true
      kind: multistep          # multistep | cosine | onecycle | constant
      milestones: [60, 120, 170]
      gamma: 0.1

:func:`build` instantiates the optimizer on the stage's parameter groups (a group may set its
own ``lr``, ``weight_decay``, ... e.g. old proxies frozen at lr 0) and the schedule on the
optimizer with the stage's epochs and steps per epoch, and returns what Lightning's
``configure_optimizers`` returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from hydra.utils import instantiate
from torch.optim import lr_scheduler

KINDS = ("multistep", "cosine", "onecycle", "constant")


def lr_schedule(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
                kind: str = "multistep", milestones: Sequence[int] = (), gamma: float = 0.1,
                eta_min: float = 0.0, pct_start: float = 0.3, div_factor: float = 25.0,
                final_div_factor: float = 1e4, warmup_epochs: int = 0,
                warmup_start: float = 0.1) -> dict | None:
    """A Lightning scheduler config for ``optimizer``, or None for a constant rate.

    Args:
        optimizer: the stage's optimizer (its groups' ``lr`` are the peak rates).
        epochs: the stage's epochs; steps_per_epoch: its optimizer steps per epoch.
        kind: ``multistep`` (x ``gamma`` at each of ``milestones``, in epochs), ``cosine``
            (cosine annealing to ``eta_min`` over the epochs after the warm-up), ``onecycle``
            (Smith's one-cycle policy per step: ``pct_start``, ``div_factor``,
            ``final_div_factor``, peak = each group's lr) or ``constant``.
        milestones, gamma: multistep's epochs and factor (PyCIL: x0.1).
        eta_min: cosine's floor.
        warmup_epochs: a linear warm-up from ``warmup_start`` x lr to lr over these epochs,
            then the schedule over the rest (milestones keep counting from epoch 0).
            Not combined with ``onecycle``, which warms up by itself.
    """
    if kind not in KINDS:
        raise ValueError(f"scheduler.kind must be one of {'|'.join(KINDS)}, got {kind!r}")
    if warmup_epochs < 0 or warmup_epochs > max(epochs, 0):
        raise ValueError(f"scheduler.warmup_epochs={warmup_epochs} must be in 0..epochs ({epochs})")
    if kind == "onecycle":
        if warmup_epochs:
            raise ValueError("scheduler.warmup_epochs does not combine with kind=onecycle "
                             "(it warms up by itself: set pct_start)")
        peaks = [g["lr"] for g in optimizer.param_groups]
        sched = lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=max(1, epochs * steps_per_epoch),
                                        pct_start=pct_start, div_factor=div_factor,
                                        final_div_factor=final_div_factor)
        return {"scheduler": sched, "interval": "step"}
    main: lr_scheduler.LRScheduler | None
    if kind == "multistep":
        main = lr_scheduler.MultiStepLR(optimizer, [int(m) - warmup_epochs for m in milestones
                                                    if int(m) > warmup_epochs], gamma=gamma)
    elif kind == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(epochs) - warmup_epochs, 1),
                                              eta_min=eta_min)
    else:
        main = None
    if warmup_epochs:
        warm = lr_scheduler.LinearLR(optimizer, start_factor=warmup_start, end_factor=1.0,
                                     total_iters=warmup_epochs)
        if main is None:
            main = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
        sched = lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[warmup_epochs])
        return {"scheduler": sched, "interval": "epoch"}
    if main is None:
        return None
    return {"scheduler": main, "interval": "epoch"}


def param_groups(params) -> list[dict]:
    """Normalise a stage's parameters to optimizer groups: a list of parameters, or a list of
    ``{"params": [...], **settings}`` dicts. Empty groups are dropped."""
    params = list(params)
    if params and not isinstance(params[0], Mapping):
        return [{"params": params}]
    groups = [dict(g, params=list(g["params"])) for g in params]
    return [g for g in groups if g["params"]]


def build(optim: Mapping, groups: list[dict], steps_per_epoch: int):
    """The optimizer and schedule of a stage, as ``configure_optimizers`` returns them.

    Args:
        optim: the stage's node: ``epochs``, ``optimizer`` (partial), ``scheduler``
            (partial of :func:`lr_schedule`, or None for a constant rate).
        groups: parameter groups (:func:`param_groups`).
        steps_per_epoch: optimizer steps per epoch (for one-cycle).
    """
    opt = instantiate(optim["optimizer"])(groups)
    node = optim.get("scheduler")
    if node is None:
        return opt
    sched = instantiate(node)(opt, epochs=int(optim["epochs"]),
                              steps_per_epoch=max(1, int(steps_per_epoch)))
    if sched is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": sched}


def steps_per_epoch(n_clips: int, batch_size: int, world: int = 1,
                    accumulate: int = 1) -> int:
    """Optimizer steps in an epoch of ``n_clips`` sharded over ``world`` ranks."""
    return math.ceil(math.ceil(n_clips / world) / batch_size / accumulate)
