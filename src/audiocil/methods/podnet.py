"""PODNet: Pooled Outputs Distillation for Small-Tasks Incremental Learning (Douillard, Cord,
Ollion, Robert & Valle, ECCV 2020), as run by the reference toolbox (PyCIL's
``models/podnet.py``, itself taken from the authors' ``incremental_learning.pytorch``).

Classifier: the local similarity classifier (LSC), a cosine head with ``proxies`` = 10
proxies per class merged by a softmax over their cosines, times a learnt scale sigma
(initialised to 1) (:class:`audiocil.heads.CosineHead`). From the second task on, the old
classes' proxies sit in their own optimizer group at ``old_proxies_lr`` = 0 (and no weight
decay), as in PyCIL: only the new proxies, sigma and the backbone learn in the first stage.

Loss (:mod:`audiocil.losses.pod`): ``NCA + f * (lambda_f * POD-flat + lambda_c * POD-spatial)``
on the task's clips plus a 2000-clip herding memory, with ``f = sqrt(N_total / N_new)``
(0 on the first task), lambda_f = 1, lambda_c = 5. POD-flat is ``1 - cos`` between the
embeddings of the model and of its teacher; POD-spatial compares the width- and
height-pooled squared maps of every backbone stage (``backbone(x, return_maps=True)``). The
teacher is a frozen copy of the backbone made when a task starts (:meth:`make_teacher`) and
dropped when it ends, so the two distillation terms are exactly zero at the start of a task.

Second stage ``finetune`` (tasks >= 1): class-balanced finetuning of the head alone (the
backbone frozen, BatchNorm statistics included) on the exemplar memory, 20 epochs at lr
0.005 with a cosine schedule, with the NCA loss. Classification: the head ("cnn") and the
nearest mean of exemplars ("nme", as iCaRL's).

Reference schedule: SGD lr 0.1, momentum 0.9, weight decay 5e-4, 160 epochs with cosine
annealing on every task, batch 128, memory 2000 shared by all classes.

Fixed from the reference:

* NCA's margin (0.6) is subtracted from the true class's similarity only. The reference
  subtracts it from every logit, where it cancels in the softmax: its margin has no effect.
  The positive is left out of the denominator, as in the paper (the reference still adds
  exp(max) for it). The paper's Eq. 7 clips the loss at 0 (``[.]_+``); the reference and the
  authors' code do not, and their numbers were made without it, so ``nca.hinge`` is false
  here too (set it to true for the paper's form).
* The balanced finetuning stays within the memory budget. The reference rebuilds the memory
  at ``memory_size // known`` per class for the old *and* the new classes (4000 exemplars at
  the second of ten tasks) and truncates it afterwards. Here the finetune stage's ``begin``
  builds the memory at its final quota ``memory_size // total`` (old classes truncated, new
  ones chosen by herding with the network just trained), and finetunes on it: at most
  ``memory_size`` clips, equally many per class.

Other differences: the reference's finetuning leaves the frozen backbone in train mode (its
BatchNorm statistics move on the memory); here it stays in eval mode. New classes' proxies
are initialised at random as in PyCIL (the authors' code imprints them from k-means of the
new classes' features). The reference's backbone is a ``cosine_resnet`` without the last
ReLU; here any backbone of ``conf/backbone`` is used as it is.

Scenarios: ``standard`` only. Multi-label data is refused: NCA is a softmax over classes with
one positive, and herding and the class means need single-label clips. Few-shot is refused
too: the balanced finetuning corrects the excess of new-class clips over old exemplars, which
few-shot sessions (5 clips per new class, more exemplars per old class) do not have, and the
160-epoch full-network schedule on a session's 25 clips is what few-shot protocols avoid.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from audiocil.core import Stage, Task
from audiocil.heads import CosineHead
from audiocil.heads.functional import nme_logits
from audiocil.losses.pod import adaptive_factor, nca_loss, pod_flat, pod_spatial
from audiocil.methods.base import DistillingStrategy
from audiocil.schema import NONNEG, POS, Bool, Choice, Int


class PODNet(DistillingStrategy):
    """Args (beyond :class:`Strategy`'s):
        proxies: LSC proxies per class (10).
        scale_init: the learnt scale sigma at creation (1).
        merge: how a class's proxy cosines are merged (``softmax``: LSC).
        lambda_c: weight of POD-spatial (5); lambda_f: weight of POD-flat (1).
        nca: ``nca_loss`` settings: ``scale`` (1), ``margin`` (0.6), ``exclude_positive``
            (true), ``hinge`` (false, as the reference; true: the paper's Eq. 7).
        old_proxies_lr: learning rate (and no weight decay) of the old proxies in the first
            stage of tasks >= 1 (0: frozen, as the reference).
        finetune: the ``finetune`` stage's ``epochs``, ``optimizer``, ``scheduler``.
    """

    scenarios = ("standard",)
    config_ranges = {"proxies": Int(1), "scale_init": POS, "merge": Choice("softmax", "max", "mean"),
                     "lambda_c": NONNEG, "lambda_f": NONNEG, "nca.scale": POS, "nca.margin": NONNEG,
                     "nca.exclude_positive": Bool(), "nca.hinge": Bool(), "old_proxies_lr": NONNEG}
    needs_memory = True
    keeps_exemplar_means = True

    def __init__(self, *args, proxies: int, scale_init: float, merge: str, lambda_c: float,
                 lambda_f: float, nca: Mapping, old_proxies_lr: float, finetune: Mapping,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.memory is None:
            raise ValueError("method=podnet needs a memory: set method.memory.size or method.memory.per_class")
        dim = self.network.backbone.out_dim
        self.network.head = CosineHead(dim, proxies=proxies, scale_init=scale_init,
                                       learn_scale=True, merge=merge)
        self.lambda_c, self.lambda_f = float(lambda_c), float(lambda_f)
        self.nca = {k: nca[k] for k in ("scale", "margin", "exclude_positive", "hinge")}
        self.old_proxies_lr, self.finetune = float(old_proxies_lr), dict(finetune)
        self.register_buffer("class_means", torch.zeros(0, dim))

    # ---- structure -------------------------------------------------------------------------
    def teacher_module(self) -> nn.Module:
        """The teacher is the backbone alone (POD compares embeddings and stage maps)."""
        return self.network.backbone

    # ---- stages ----------------------------------------------------------------------------
    @property
    def factor(self) -> float:
        """The adaptive weight of the distillation, sqrt(N_total / N_new); 0 on task 0."""
        if self.task is None or self.task.known == 0:
            return 0.0
        return adaptive_factor(self.task.total, self.task.new)

    def train_parameters(self) -> list:
        """Every parameter; from task 1 on the old proxies in a group of their own at
        ``old_proxies_lr`` and no weight decay."""
        params = self.default_parameters()
        old = self.network.head.old_parameters()
        if self.known == 0 or not old:
            return params
        ids = {id(p) for p in old}
        return [{"params": [p for p in params if id(p) not in ids]},
                {"params": old, "lr": self.old_proxies_lr, "weight_decay": 0.0}]

    def stages(self, task: Task, dm) -> list[Stage]:
        train = self.train_stage(task, params=self.train_parameters)
        if task.index == 0:
            return [train]
        assert self.memory is not None
        memory = self.memory
        finetune = Stage("finetune", int(self.finetune["epochs"]), optim=self.finetune,
                         params=lambda: list(self.network.head.parameters()),
                         indices=lambda dm: memory.indices(), loss=self.finetune_loss,
                         begin=self.balance_memory)
        return [train, finetune]

    def balance_memory(self, dm) -> None:
        """The memory at its final quota (old classes truncated, new ones by herding): the
        finetune stage's balanced training set. Depends only on the state at the stage's
        start (it is run again when a killed stage resumes)."""
        assert self.memory is not None and self.task is not None
        self.objective.update_memory(self.memory, self.task, dm, self.feature_bank(dm))

    # ---- losses ----------------------------------------------------------------------------
    def distillation_terms(self, z: torch.Tensor, h: torch.Tensor,
                           maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(POD-flat, POD-spatial) of the embeddings h (B, D) and stage maps of the model
        against its teacher's on the same front-end output z (B, 1, F, T)."""
        assert self.teacher is not None, "before_task makes the teacher of every task > 0"
        h_old, maps_old = self.frozen(self.teacher, z, return_maps=True)
        return pod_flat(h, h_old), pod_spatial(maps, maps_old)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net = self.network
        z = net.frontend(x)
        h, maps = net.backbone(z, return_maps=True)
        nca = nca_loss(net.head(h), y, **self.nca)
        if self.teacher is None:
            return nca, {}
        flat, spatial = self.distillation_terms(z, h, maps)
        loss = nca + self.factor * (self.lambda_f * flat + self.lambda_c * spatial)
        return loss, {"nca": nca.detach(), "pod_flat": flat.detach(), "pod_spatial": spatial.detach()}

    def finetune_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """NCA of the head on the frozen backbone's embeddings (the reference's distillation
        terms carry no gradient to the head and are left out)."""
        return nca_loss(self.network(x)[0], y, **self.nca), {}

    # ---- end of task, evaluation -------------------------------------------------------------
    def after_task(self, task: Task, dm) -> None:
        if task.index == 0:
            super().after_task(task, dm)  # exemplars and class means
            return
        if self.teacher is not None:
            self.drop_teacher()
        # the finetune stage set the memory; its class means with the finetuned network
        self.set_exemplar_means(task.total, self.feature_bank(dm))

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats = self.network(x)
        return {"cnn": logits, "nme": nme_logits(feats, self.class_means)}

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "nme")
