"""Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017): the quadratic penalty,
the diagonal empirical Fisher, and how Fishers of successive tasks are combined.

Conventions follow the reference toolbox (PyCIL's ``ewc``):

* the penalty is ``1/2 * sum_i F_i (theta_i - theta*_i)^2`` (the paper's ``lambda/2``
  split into this ``1/2`` and the method's ``lamda``);
* the Fisher is the *empirical* one, estimated from the squared gradient of the mean
  cross-entropy of each mini-batch of the task's training data (with the true labels),
  averaged over batches, then clamped from above (PyCIL's ``fishermax`` = 1e-4);
* a parameter that grew since it was anchored (the classifier's rows) is penalised on its
  old slice only: the first ``len(old)`` rows of its leading dimension;
* after task t (which brought the total from ``known`` to ``total`` classes) the stored
  Fisher is a running average weighted by class counts:
  ``F <- a * F_old + (1 - a) * F_new`` on the old slice with ``a = known / total``, and
  ``F_new`` alone on rows that did not exist before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn


def _old_slice(param: torch.Tensor, old: torch.Tensor, name: str) -> torch.Tensor:
    """The part of ``param`` that corresponds to the anchored ``old`` tensor."""
    if param.shape == old.shape:
        return param
    if param.dim() != old.dim() or param.shape[1:] != old.shape[1:] or param.shape[0] < old.shape[0]:
        raise ValueError(f"ewc: parameter {name!r} of shape {tuple(param.shape)} cannot hold "
                         f"its anchor of shape {tuple(old.shape)} as a leading slice")
    return param[: old.shape[0]]


def ewc_penalty(params: Mapping[str, torch.Tensor], old_params: Mapping[str, torch.Tensor],
                fisher: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``1/2 * sum_n sum_i fisher[n]_i * (params[n]_i - old_params[n]_i)^2``.

    Args:
        params: name -> current parameter (gradients flow through it).
        old_params: name -> its value at the end of the previous task.
        fisher: name -> diagonal Fisher, same shape as ``old_params[name]``. Only names
            present here are penalised.

    Returns:
        A scalar tensor (0 when ``fisher`` is empty).
    """
    total: torch.Tensor | None = None
    for name, f in fisher.items():
        p = params[name]
        old = old_params[name]
        cur = _old_slice(p, old, name)
        term = (f.to(cur.device, cur.dtype) * (cur - old.to(cur.device, cur.dtype)) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        device = next(iter(params.values())).device if params else None
        return torch.zeros((), device=device)
    return total / 2


def squared_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
                      ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The squared gradient of one batch's loss for every trainable parameter of ``model``
    (``.grad`` is not touched), and the loss.

    Args:
        model: maps a batch to logits, or to a tuple whose first item is the logits.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out = model(x)
    loss = loss_fn(out[0] if isinstance(out, tuple) else out, y)
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return ({n: (g.detach() ** 2 if g is not None else torch.zeros_like(p))
             for (n, p), g in zip(named, grads, strict=True)}, loss.detach())


def fisher_from_sums(sums: Mapping[str, torch.Tensor], batches: int,
                     clamp_max: float | None = None) -> dict[str, torch.Tensor]:
    """The Fisher: summed squared gradients over ``batches``, averaged, clamped from above."""
    out = {}
    for n, f in sums.items():
        f = f / max(int(batches), 1)
        out[n] = f.clamp(max=clamp_max) if clamp_max is not None else f
    return out


def fisher_diagonal(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
                    clamp_max: float | None = None) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher of ``model``'s trainable parameters.

    For each batch ``(x, y)``: the gradient ``g`` of ``loss_fn(model(x), y)`` (a batch mean),
    then ``F = mean over batches of g**2``, optionally clamped to ``clamp_max``. The model is
    used in whatever mode (train/eval) the caller left it in; ``.grad`` is not touched.

    Args:
        model: maps a batch to logits, or to a tuple whose first item is the logits.
        batches: ``(x, y)`` pairs already on the model's device.
        loss_fn: the per-batch loss (cross-entropy, as PyCIL).
        clamp_max: upper bound of each Fisher entry (PyCIL: 1e-4), or None.

    Returns:
        name -> Fisher tensor (same shape as the parameter), for every parameter that
        requires a gradient.
    """
    sums = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    count = 0
    for x, y in batches:
        sq, _ = squared_gradients(model, x, y, loss_fn)
        for n in sums:
            sums[n] += sq[n]
        count += 1
    return fisher_from_sums(sums, count, clamp_max)


def merge_fisher(old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor],
                 alpha: float) -> dict[str, torch.Tensor]:
    """Combine the stored Fisher with the new task's: ``alpha * old + (1 - alpha) * new``.

    Tensors that grew (classifier rows) are mixed on their old leading slice and keep the
    new task's values elsewhere; names only in ``new`` are taken as they are.

    Args:
        old: name -> Fisher accumulated over earlier tasks.
        new: name -> Fisher of the task just learnt.
        alpha: weight of the old Fisher (PyCIL: classes known before / classes known after).
    """
    out = {n: f.clone() for n, f in new.items()}
    for n, f_old in old.items():
        if n not in out:
            continue
        k = f_old.shape[0] if out[n].dim() else None
        if k is None:
            out[n] = alpha * f_old + (1 - alpha) * out[n]
        else:
            _old_slice(out[n], f_old, n)  # shape check
            out[n][:k] = alpha * f_old.to(out[n]) + (1 - alpha) * out[n][:k]
    return out
