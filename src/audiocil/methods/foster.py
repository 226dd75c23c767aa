"""FOSTER: Feature Boosting and Compression (Wang, Zhou, Ye & Zhan, "FOSTER: Feature
Boosting and Compression for Class-Incremental Learning", ECCV 2022), as run by the reference
toolbox (PyCIL's ``models/foster.py`` and ``FOSTERNet``; the audio CIL code adds only
hard-coded checkpoint I/O).

Task 0: cross-entropy. Each later task has two training stages:

* ``boosting``: the extractor learnt so far is frozen as phi_old (parameters and BatchNorm
  statistics: a :class:`FrozenCopy`, in eval mode) and a trainable copy phi_new is added.
  A head over the concatenation [phi_old, phi_new] (old rows keep the old head's weights on
  phi_old's columns) and an auxiliary head ``fe_head`` on phi_new alone are trained with
  ``CE(z / w, y) + CE(fe_head, y) + lambda_okd * KD_T(z[:, :known], old head)``, where w are
  class-balanced weights (beta_1 = 0.96) of the stage's real per-class counts
  (:mod:`audiocil.losses.foster`).
* ``compression``: a student with ONE extractor, initialised from phi_old (its head's old
  rows from the old head, new rows fresh), learns by balanced distillation (beta_2 = 0.97,
  T = 2) from the frozen boosted teacher, without weight decay. After the task the network
  is the student: the model keeps one extractor whatever the number of tasks.

Reported classifiers: ``cnn`` (the compressed student, the model that carries on),
``teacher`` (the boosted model, kept frozen after compression until it has been evaluated
and saved in the task checkpoint, so ``python -m audiocil.evaluate`` reproduces its
figures; at task 0 both are the same network) and ``nme`` (nearest mean of exemplars on
the student's features). While the teacher is kept, ``params_per_task`` counts it too;
``report_teacher: false`` drops it after compression (the student alone is counted).

Reference settings (PyCIL's exps/foster.json): 20 exemplars per class (fixed), herding;
SGD momentum 0.9, batch 128, cosine schedules: 200 base epochs (lr 0.1, weight decay 5e-4),
170 boosting epochs and 130 compression epochs (lr 0.1; weight decay 5e-4 and 0); beta_1
0.96, beta_2 0.97, lambda_okd 1, T 2, ``oofc: ft`` (the new-feature columns of the old rows
are trained), no weight aligning of teacher or student (the reference's ``az`` and WA
variants are off there and not implemented here).

Fixed relative to the reference: (1) task 0 is trained here, not loaded from a checkpoint
chosen by its test accuracy; no epoch is chosen on the test set. (2) The class weights use
the real number of clips of each class in the stage (PyCIL's ``getlen`` sums indices).
(3) Exemplars and class means come from the student (the network that carries on); PyCIL
herds on the teacher's concatenated features because its teacher stays its network until
the next task starts. Single-label only: the logit adjustment and balanced distillation
reweight one softmax over the classes and herding needs one class per clip, so
``scenario=multilabel`` is refused. In ``scenario=fewshot`` both stages run on the K shots
of each new class plus the exemplars (the weights then favour the few-shot classes).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from audiocil.core import Stage, Task
from audiocil.data.frontend import Frontend
from audiocil.heads import IncrementalLinear
from audiocil.heads.functional import nme_logits
from audiocil.losses.foster import bkd_loss, class_balanced_weights, logit_adjusted_ce
from audiocil.methods.base import FrozenCopy, Strategy, structural
from audiocil.schema import NONNEG, POS, Bool, Num


def stage_class_counts(dm, indices: np.ndarray, total: int) -> list[int]:
    """Number of training clips of each class position 0..total-1 among ``indices``."""
    return np.bincount(dm.class_positions("train")[indices], minlength=total)[:total].tolist()


class FosterNetwork(nn.Module):
    """Front end + trainable extractor (+ frozen phi_old and its head while boosting).

    ``forward`` returns (logits, features); features are phi's (B, D), or while boosting the
    concatenation [phi_old, phi_new] (B, 2D).
    """

    def __init__(self, frontend: Frontend, backbone: nn.Module) -> None:
        super().__init__()
        self.frontend, self.backbone = frontend, backbone
        self.out_dim = int(backbone.out_dim)
        self.head = IncrementalLinear(self.out_dim)
        self.old_backbone: FrozenCopy | None = None
        self.old_head: FrozenCopy | None = None
        self.fe_head: nn.Linear | None = None

    def features(self, z: torch.Tensor) -> torch.Tensor:
        new = self.backbone(z)
        return new if self.old_backbone is None else torch.cat([self.old_backbone(z), new], 1)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.features(self.frontend(batch))

    def forward(self, batch: torch.Tensor, frontend_done: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(batch) if frontend_done else self.embed(batch)
        return self.head(feats), feats

    def boost(self, n_new: int) -> None:
        """Freeze phi and its head; phi_new = the trainable phi; a head over [phi_old, phi_new]."""
        D, old = self.out_dim, self.head
        self.old_backbone, self.old_head = FrozenCopy(self.backbone), FrozenCopy(old)
        head = IncrementalLinear(2 * D, old.num_classes + n_new).to(old.weight.device)
        with torch.no_grad():
            head.weight[:old.num_classes, :D] = old.weight
            head.bias[:old.num_classes] = old.bias
        self.head = head
        self.fe_head = nn.Linear(D, head.num_classes).to(old.weight.device)

    def student(self) -> FosterNetwork:
        """One extractor initialised from phi_old; old head rows from the old head."""
        assert self.old_backbone is not None and self.old_head is not None
        backbone = copy.deepcopy(self.old_backbone.module).train()
        for p in backbone.parameters():
            p.requires_grad_(True)
        s = FosterNetwork(self.frontend, backbone)
        old = self.old_head.module
        s.head = IncrementalLinear(self.out_dim, self.head.num_classes).to(old.weight.device)
        with torch.no_grad():
            s.head.weight[:old.num_classes] = old.weight
            s.head.bias[:old.num_classes] = old.bias
        return s


class FOSTER(Strategy):
    """Args (beyond :class:`Strategy`'s):
        beta1: class-balance beta of the boosting loss (PyCIL: 0.96).
        beta2: class-balance beta of the compression distillation (PyCIL: 0.97).
        lambda_okd: weight of the old-head distillation in boosting (PyCIL: 1).
        T: distillation temperature of both stages (PyCIL: 2).
        compression: the compression stage's ``epochs``, ``optimizer``, ``scheduler``.
        report_teacher: evaluate the boosted teacher as classifier ``teacher`` (kept until
            the next task starts) or drop it after compression.
    """

    scenarios = ("standard", "fewshot")
    config_ranges = {"beta1": Num(0, lt=1), "beta2": Num(0, lt=1), "lambda_okd": NONNEG, "T": POS,
                     "report_teacher": Bool()}
    needs_memory = True
    keeps_exemplar_means = True  # of the student's features

    def __init__(self, backbone: nn.Module, frontend: Frontend, *args, beta1: float,
                 beta2: float, lambda_okd: float, T: float, compression: Mapping,
                 report_teacher: bool, **kwargs) -> None:
        super().__init__(backbone, frontend, *args, **kwargs)
        if self.memory is None:
            raise ValueError("method=foster needs a memory: set method.memory.per_class (20)")
        self.network = FosterNetwork(frontend, backbone)
        self.beta1, self.beta2, self.lambda_okd, self.T = float(beta1), float(beta2), float(lambda_okd), float(T)
        self.compression, self.report_teacher = dict(compression), bool(report_teacher)
        self.teacher: FrozenCopy | None = None  # the boosted network, after compression
        self.register_buffer("class_means", torch.zeros(0, self.network.out_dim))
        self.register_buffer("boost_weights", torch.zeros(0))     # w(beta1) of the last task
        self.register_buffer("compress_weights", torch.zeros(0))  # w(beta2) of the last task

    # ---- structure ----------------------------------------------------------------------
    @structural
    def boost(self, n_new: int) -> None:
        self.network.boost(n_new)

    @structural
    def compress(self) -> None:
        """The boosted network becomes the frozen teacher; the network is the student."""
        self.teacher = FrozenCopy(self.network)
        self.network = self.network.student()

    @structural
    def drop_teacher(self) -> None:
        self.teacher = None

    def before_task(self, task: Task, dm) -> None:
        if task.index == 0:
            super().before_task(task, dm)
            return
        self.task = task
        self.objective.note_task(task)
        if self.teacher is not None:
            self.drop_teacher()
        self.boost(task.new)

    # ---- stages ---------------------------------------------------------------------------
    def stages(self, task: Task, dm) -> list[Stage]:
        if task.index == 0:
            return [self.train_stage(task)]
        boosting = self.train_stage(task, "boosting", begin=self.boosting_begin,
                                    loss=self.boosting_loss, end=lambda dm: self.compress())
        compression = self.train_stage(task, "compression", optim=self.compression,
                                       begin=self.compression_begin, loss=self.compression_loss)
        return [boosting, compression]

    def _weights(self, dm, beta: float) -> torch.Tensor:
        counts = stage_class_counts(dm, self.train_indices(self.task, dm), self.total)
        return class_balanced_weights(counts, beta).to(self.device)

    def boosting_begin(self, dm) -> None:
        self.boost_weights = self._weights(dm, self.beta1)

    def compression_begin(self, dm) -> None:
        self.compress_weights = self._weights(dm, self.beta2)

    def boosting_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net, k = self.network, self.known
        assert net.old_backbone is not None and net.old_head is not None and net.fe_head is not None
        z = net.frontend(x)
        old, new = self.frozen(net.old_backbone, z), net.backbone(z)  # (B, D) each
        logits = net.head(torch.cat([old, new], 1))      # (B, total)
        ce = logit_adjusted_ce(logits, y, self.boost_weights)
        fe = self.objective.loss(net.fe_head(new), y)
        kd = self.objective.distill(logits[:, :k], net.old_head(old), self.T)
        loss = ce + fe + self.lambda_okd * kd
        return loss, {"ce": ce.detach(), "fe": fe.detach(), "kd": kd.detach()}

    def compression_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        assert self.teacher is not None
        net = self.network
        z = net.frontend(x)
        student = net.head(net.features(z))
        teacher = self.frozen(self.teacher, z, frontend_done=True)[0]
        return bkd_loss(student, teacher, self.compress_weights, self.T), {}

    # ---- end of task and evaluation ---------------------------------------------------------
    def after_task(self, task: Task, dm) -> None:
        if self.teacher is not None and not self.report_teacher:
            self.drop_teacher()
        super().after_task(task, dm)  # herding and class means on the student's features

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats = self.network(x)
        out = {"cnn": logits}
        if self.report_teacher:
            out["teacher"] = self.teacher(x)[0] if self.teacher is not None else logits
        out["nme"] = nme_logits(feats, self.class_means)
        return out

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "teacher", "nme") if self.report_teacher else ("cnn", "nme")

    def validation_step(self, batch, batch_idx: int) -> None:
        """The per-epoch figure of the network being trained (the boosted one while boosting)."""
        x, y, _ = batch
        name, value = self.objective.val_score(self.network(x)[0], y)
        self.log(f"val/{name}", value, prog_bar=True, batch_size=len(y), sync_dist=True)
