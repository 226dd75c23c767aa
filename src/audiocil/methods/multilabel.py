"""The multi-label CIL methods of Mulimani & Mesaros ("Class-incremental learning for
multi-label audio classification", ICASSP 2024; "A closer look at class-incremental learning
for multi-label audio classification", IEEE/ACM TASLP 2025), as one loss with terms on or
off. Each has a thin ``conf/method/<name>.yaml``:

========  =====================================================================================
``ft``    fine-tuning: the whole network, BCE over every seen class on the phase's clips (old
          classes read 0 there: their labels are not given), nothing against forgetting.
``fe``    feature extraction: after phase 0 the extractor is frozen (weights and BatchNorm
          statistics) and only the new classes' classifier rows are trained (BCE on them);
          the old rows are kept exactly as they were.
``at``    audio tagging: at each phase, a network trained from scratch on every training clip
          of the seen classes with all their seen labels; the upper bound.
``indl``  independent learning: BCE on the new classes' logits only.
``iod``   IndL + output distillation (KL of T-softened softmaxes over the old classes'
          logits, times T²) from the frozen previous learner.
``ifd``   IndL + feature distillation (1 - cosine of L2-normalised embeddings) from it.
``iodfd`` IndL + both, weighted adaptively as classes grow.
========  =====================================================================================

The adaptive weight of a distillation term is LUCIR's (Hou et al., CVPR 2019),
``lambda = lambda_base * (C_old / C_new) ** 0.5`` (``lambda_exponent: 0.5``,
``lambda_ratio: old``), on both terms: this is the default because it is the formula the
papers describe. The authors' released code instead uses
``lambda_base * ((C_old + C_new) / C_new) ** 0.66`` (``lambda_ratio: total,
lambda_exponent: 0.66``) on the output distillation only (``adaptive_terms: [kd]``). The base
weights are the code's: ``lambda_kd`` = 5 on a KL averaged over the old classes as well
(``kd_reduction: mean``, PyTorch's default ``nn.KLDivLoss()``, for which 5 is tuned) and
``lambda_fd`` = 1. The code's feature distillation is one cosine between the whole batch's
flattened last convolutional maps (``fd_scope: batch`` flattens the same way; the features
here are the backbone's embeddings, per clip by default as the papers describe), and it
weights the positive BCE term by #negatives / #positives of the phase (``pos_weight: auto``,
off by default).

Defaults from the paper: SGD momentum 0.9, batch 32, lr 0.01 in phase 0 and 0.001 after,
cosine schedule, T = 2, class-balanced mini-batches (``sampler: balanced``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from audiocil.core import Stage, Task
from audiocil.losses.multilabel import (
    adaptive_weight,
    bce_loss,
    feature_distillation,
    output_distillation,
    positive_weight,
)
from audiocil.methods.base import DistillingStrategy


class _Learner(nn.Module):
    """Backbone + head of a previous phase: ``(B, 1, F, T) -> (logits, embeddings)``."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(z)
        return self.head(feats), feats


class MultilabelCIL(DistillingStrategy):
    """Args (beyond :class:`Strategy`'s):
        loss_classes: ``new`` (IndL: BCE on the phase's classes only) or ``seen`` (BCE over
            every seen class, as fine-tuning).
        train_data: ``phase`` (the scenario's clips of the phase, with only its labels) or
            ``seen`` (every clip of the seen classes with all their seen labels: ``at``).
        reinit: re-initialise the network at every phase > 0 and train it with the first
            phase's schedule (``at``).
        freeze_extractor: freeze the backbone after phase 0 and keep the old classes'
            classifier rows unchanged (``fe``).
        lambda_kd: base weight of the output distillation (0: off).
        lambda_fd: base weight of the feature distillation (0: off).
        T: distillation temperature (2).
        kd_reduction: ``batchmean`` (KL per clip) or ``mean`` (also divided by C_old, the
            authors' code).
        fd_scope: ``sample`` (a cosine per clip) or ``batch`` (the authors' code).
        adaptive_terms: the terms whose weight grows as in :func:`adaptive_weight`.
        lambda_exponent, lambda_ratio: the adaptive weight's exponent and ratio (``old``:
            C_old / C_new, LUCIR; ``total``: (C_old + C_new) / C_new, the authors' code).
        pos_weight: None, or ``auto`` (#neg / #pos of the loss's targets over the phase's
            training clips, as the authors' code) or a number.
        sampler: ``balanced`` (class-balanced mini-batches) or ``shuffle``.
    """

    scenarios = ("multilabel",)

    def __init__(self, *args, loss_classes: str, train_data: str, reinit: bool,
                 freeze_extractor: bool, lambda_kd: float, lambda_fd: float, T: float,
                 kd_reduction: str, fd_scope: str, adaptive_terms: Sequence[str],
                 lambda_exponent: float, lambda_ratio: str, pos_weight: float | str | None,
                 sampler: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        checks = {"loss_classes": (loss_classes, ("new", "seen")),
                  "train_data": (train_data, ("phase", "seen")),
                  "kd_reduction": (kd_reduction, ("batchmean", "mean")),
                  "fd_scope": (fd_scope, ("sample", "batch")),
                  "lambda_ratio": (lambda_ratio, ("old", "total")),
                  "sampler": (sampler, ("balanced", "shuffle"))}
        for key, (val, allowed) in checks.items():
            if val not in allowed:
                raise ValueError(f"method.{key} must be {'|'.join(allowed)}, got {val!r}")
        bad = set(adaptive_terms) - {"kd", "fd"}
        if bad:
            raise ValueError(f"method.adaptive_terms may hold kd and fd, got {sorted(bad)}")
        if isinstance(pos_weight, str) and pos_weight != "auto":
            raise ValueError(f"method.pos_weight must be null, auto or a number, got {pos_weight!r}")
        if freeze_extractor and loss_classes != "new":
            raise ValueError("freeze_extractor trains the new classes' rows only: loss_classes must be new")
        self.loss_classes, self.train_data, self.reinit = loss_classes, train_data, reinit
        self.freeze_extractor = freeze_extractor
        self.lambda_kd, self.lambda_fd, self.T = float(lambda_kd), float(lambda_fd), float(T)
        self.kd_reduction, self.fd_scope = kd_reduction, fd_scope
        self.adaptive_terms = tuple(adaptive_terms)
        self.lambda_exponent, self.lambda_ratio = float(lambda_exponent), lambda_ratio
        self.pos_weight_cfg = pos_weight
        self.pos_weight: float | None = None
        self.sampler = sampler
        self.frozen_rows: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- phase set-up ----------------------------------------------------------------------
    def needs_teacher(self, task: Task) -> bool:
        """Phases after the first, when a distillation term is on."""
        return task.index > 0 and (self.lambda_kd > 0 or self.lambda_fd > 0)

    def teacher_module(self) -> nn.Module:
        """The previous learner: its logits and its embedding."""
        return _Learner(self.network.backbone, self.network.head)

    def before_task(self, task: Task, dm) -> None:
        super().before_task(task, dm)  # freezes the previous learner, then grows the head
        if self.reinit and task.index > 0:
            self.reinitialise(task.total)
        if self.freeze_extractor and task.index > 0:
            head = self.network.head
            self.frozen_rows = (head.weight.data[:task.known].clone(),
                                head.bias.data[:task.known].clone())

    def stages(self, task: Task, dm) -> list[Stage]:
        """One stage; ``fe`` trains only the head after phase 0 (the frozen backbone stays in
        eval mode, so its BatchNorm statistics do not move either)."""
        optim = self.first_task if self.reinit else self.optim_cfg(task)
        params = (lambda: list(self.network.head.parameters())) \
            if self.freeze_extractor and task.index > 0 else None
        return [self.train_stage(task, optim=optim, params=params, sampler=self.sampler)]

    def train_indices(self, task: Task, dm) -> np.ndarray:
        if self.train_data == "seen":
            idx = self.objective.train_on_seen(task, dm)
        else:
            idx = super().train_indices(task, dm)
        self.pos_weight = self._pos_weight(task, dm, idx)
        return idx

    def _pos_weight(self, task: Task, dm, idx: np.ndarray) -> float | None:
        cfg = self.pos_weight_cfg
        if cfg is None:
            return None
        if cfg != "auto":
            return float(cfg)
        ds = dm.subset(idx)
        y = torch.stack([ds.target(int(i)) for i in idx]) if len(idx) else torch.zeros(0, 1)
        lo = task.known if self.loss_classes == "new" else 0
        return positive_weight(y[:, lo:task.total])

    def after_task(self, task: Task, dm) -> None:
        self.frozen_rows = None
        super().after_task(task, dm)  # drops the teacher

    # ---- training ---------------------------------------------------------------------------
    def weight(self, term: str) -> float:
        """The weight of distillation term ``kd`` or ``fd`` in the current phase."""
        base = self.lambda_kd if term == "kd" else self.lambda_fd
        if term not in self.adaptive_terms or self.known == 0:
            return base
        return adaptive_weight(base, self.known, self.total - self.known, self.lambda_exponent,
                               self.lambda_ratio)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net = self.network
        z = net.frontend(x)
        feats = net.backbone(z)
        logits = net.head(feats)
        k, total = self.known, logits.shape[1]
        lo = k if self.loss_classes == "new" else 0
        cls = bce_loss(logits[:, lo:], y[:, lo:total], self.pos_weight)
        loss, extra = cls, {"bce": cls.detach()}
        if self.teacher is not None and k > 0:
            t_logits, t_feats = self.frozen(self.teacher, z)
            if self.lambda_kd > 0:
                kd = output_distillation(logits[:, :k], t_logits, self.T, self.kd_reduction)
                loss = loss + self.weight("kd") * kd
                extra["kd"] = kd.detach()
            if self.lambda_fd > 0:
                fd = feature_distillation(feats, t_feats, self.fd_scope)
                loss = loss + self.weight("fd") * fd
                extra["fd"] = fd.detach()
        return loss, extra

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.frozen_rows is not None:  # fe: the old rows stay as they were (weight decay)
            w, b = self.frozen_rows
            head = self.network.head
            head.weight.data[: len(w)] = w.to(head.weight.device)
            head.bias.data[: len(b)] = b.to(head.bias.device)
