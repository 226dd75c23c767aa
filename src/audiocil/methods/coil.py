"""COIL: Co-Transport for Class-Incremental Learning (Zhou, Ye & Zhan, ACM MM 2021), as run by
the reference toolbox (PyCIL's ``models/coil.py``).

Classifier: a cosine head with one weight per class and a learnt scale sigma (initialised
to 1; :class:`audiocil.heads.CosineHead`). Classes are related by optimal transport between
their mean embeddings (unit-norm means of unit-norm embeddings; cost: Minkowski p =
``norm_term`` = 3; entropic plan by Sinkhorn, reg ``sinkhorn_reg`` = 0.464;
:mod:`audiocil.solvers.transport`):

* prospective transport: when a task starts, the new classes' rows are initialised from the
  old rows carried along the plan old -> new (barycentric projection of the unit-norm old
  rows, scaled so that their mean norm is the old rows' mean norm: the reference's
  calibration, its ``calibration_term`` is overwritten by that factor). In the first epoch,
  ``pt_weight`` x the distillation of the softmax of cos(h, transported rows) / T into the
  new-class logits keeps the new rows near that prediction.
* retrospective transport: from the second epoch on, every ``retro_every`` = 30 batches, the
  old classes' rows are re-estimated from the current new rows along the plan new -> old;
  the loss adds ``reg_term`` x (epoch / epochs)^2 x the distillation of the old model's
  softmax (T) into the softmax of cos(h, re-estimated rows) / T.

Base loss (tasks >= 1): ``lam * KD_T(old-class logits, old model) + (1 - lam) * CE``,
lam = known / total, T = 2 (:func:`audiocil.losses.distillation.weighted_kd_ce`); the old
model is a frozen copy of backbone + head made when a task starts and dropped when it ends.
2000 herding exemplars shared by all classes; classification by the head ("cnn") and the
nearest mean of exemplars ("nme"). Reference schedule, every task: SGD lr 0.1, momentum 0.9,
weight decay 5e-4, 160 epochs, x0.1 at 80 and 120, batch 128; sinkhorn 0.464, norm_term 3,
reg_term 1e-3, the prospective weight 1e-3 (hard-coded there).

Where and why this differs from the reference:

* Class means come from the exemplar memory for the old classes, never from their full
  training data: the reference reads every old training clip for its prospective plan, which
  breaks the memory budget (its retrospective plan already uses the exemplars).
* Hence the timing of the prospective transport. The reference solves it at the end of a
  task, reading the *next* task's data ahead of time, with the class count of the second
  task. Here it is solved at the start of each new task, in :meth:`before_task`: the new
  classes' clips are available then, and the network is the one the reference uses (the one
  the previous task left). Old-class means: the exemplars kept after the previous task;
  new-class means: all of the new task's own clips.
* The plan's marginals are uniform over each side's own classes (1/|old| and 1/|new|). The
  reference gives both sides mass 1/|old|, which no plan meets when |new| != |old|.
* The retrospective rows are recomputed at batch 0 of every epoch as well (the reference's
  ``i % 30 == 0`` counts batches within an epoch too), so a run resumed from an epoch
  checkpoint recomputes them exactly as the uninterrupted run did.

Scenarios: ``standard`` only. Multi-label data is refused: class means, the transport
between them, herding and the softmax distillations need one class per clip. Few-shot is
refused too: the method retrains the whole network for 160 epochs on each task's clips,
which on a 5-way 5-shot session fits 25 clips; the paper and the reference define and tune
it for standard tasks only.
"""

from __future__ import annotations

import torch

from audiocil.core import Task
from audiocil.heads import CosineHead
from audiocil.heads.functional import cosine_logits, nme_logits
from audiocil.losses.distillation import kd_loss, weighted_kd_ce
from audiocil.methods.base import DistillingStrategy
from audiocil.schema import NONNEG, POS, Int
from audiocil.solvers.transport import sinkhorn_plan, transport_weights


class COIL(DistillingStrategy):
    """Args (beyond :class:`Strategy`'s):
        T: distillation temperature (2).
        scale_init: the head's learnt scale sigma at creation (1).
        sinkhorn_reg: entropic regularisation of the plans (0.464).
        norm_term: order p of the Minkowski cost between class means (3).
        pt_weight: weight of the prospective distillation in the first epoch (1e-3).
        reg_term: weight of the retrospective distillation, times (epoch / epochs)^2 (1e-3).
        retro_every: batches between re-estimates of the retrospective rows (30).
    """

    scenarios = ("standard",)
    config_ranges = {"T": POS, "scale_init": POS, "sinkhorn_reg": POS, "norm_term": POS,
                     "pt_weight": NONNEG, "reg_term": NONNEG, "retro_every": Int(1)}
    needs_memory = True
    keeps_exemplar_means = True

    def __init__(self, *args, T: float, scale_init: float, sinkhorn_reg: float,
                 norm_term: float, pt_weight: float, reg_term: float, retro_every: int,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.memory is None:
            raise ValueError("method=coil needs a memory: set method.memory.size or method.memory.per_class")
        dim = self.network.backbone.out_dim
        self.network.head = CosineHead(dim, proxies=1, scale_init=scale_init, learn_scale=True)
        self.T, self.sinkhorn_reg, self.norm_term = float(T), float(sinkhorn_reg), float(norm_term)
        self.pt_weight, self.reg_term, self.retro_every = float(pt_weight), float(reg_term), int(retro_every)
        self.register_buffer("class_means", torch.zeros(0, dim))
        # recomputed from the state when a task starts / at the first batch of every epoch
        self.prospective_plan: torch.Tensor | None = None  # (known, new)
        self.prospective_rows: torch.Tensor | None = None  # (new, D)
        self.retro_plan: torch.Tensor | None = None  # (new, known)
        self.retro_rows: torch.Tensor | None = None  # (known, D)

    # ---- transport ---------------------------------------------------------------------------
    def transport_means(self, dm) -> tuple[torch.Tensor, torch.Tensor]:
        """(known, D) old-class means from the exemplars, (new, D) new-class means from the
        task's own clips, embedded by the current network."""
        assert self.memory is not None and self.task is not None
        k, total = self.task.known, self.task.total
        groups = {c: v for c, v in self.memory.exemplars.items() if c < k}
        groups.update(dm.by_class(range(k, total), within=dm.own_indices))
        means = self.feature_bank(dm).class_means(groups, total, self.embedding_dim)  # one pass
        return means[:k], means[k:]

    def plan(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sinkhorn_plan(source, target, reg=self.sinkhorn_reg, p=self.norm_term)

    @torch.no_grad()
    def prospective_transport(self, dm) -> None:
        """Initialise the new rows from the old ones along the plan old -> new."""
        head = self.network.head
        old_means, new_means = self.transport_means(dm)
        self.prospective_plan = self.plan(old_means, new_means)
        rows, _ = transport_weights(self.prospective_plan, torch.cat(head.old_parameters()))
        head.init_rows(rows)
        self.prospective_rows = rows.detach().clone()

    @torch.no_grad()
    def retrospective_transport(self, dm) -> None:
        """Re-estimate the old rows from the current new ones along the plan new -> old."""
        old_means, new_means = self.transport_means(dm)
        self.retro_plan = self.plan(new_means, old_means)
        self.retro_rows, _ = transport_weights(self.retro_plan, self.network.head.new_parameters()[0])

    # ---- hooks -------------------------------------------------------------------------------
    def before_task(self, task: Task, dm) -> None:
        super().before_task(task, dm)  # freezes the teacher (tasks > 0), grows the head
        self.retro_rows = self.retro_plan = None
        if task.index > 0:
            self.prospective_transport(dm)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.teacher is not None and self.current_epoch >= 1 and (
                batch_idx % self.retro_every == 0 or self.retro_rows is None):
            self.retrospective_transport(self.trainer.datamodule)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net = self.network
        z = net.frontend(x)
        h = net.backbone(z)
        logits = net.head(h)
        if self.teacher is None:
            return self.objective.loss(logits, y), {}
        k, T = self.known, self.T
        old_logits = self.frozen(self.teacher, z)
        base = weighted_kd_ce(logits, old_logits, y, T=T)  # lam = known / total
        epoch = self.current_epoch
        if epoch < 1:  # prospective: the new logits towards the transported rows' prediction
            assert self.prospective_rows is not None
            pt = kd_loss(logits[:, k:], cosine_logits(h, self.prospective_rows.to(h)), T)
            weight = self.pt_weight * max(1.0 - (epoch / 2) ** 2, 0.0)
            return base + weight * pt, {"base": base.detach(), "pt": pt.detach()}
        assert self.retro_rows is not None and self.stage is not None
        rt = kd_loss(cosine_logits(h, self.retro_rows.to(h)), old_logits, T)
        weight = self.reg_term * (epoch / max(self.stage.epochs, 1)) ** 2
        return base + weight * rt, {"base": base.detach(), "rt": rt.detach()}

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats = self.network(x)
        return {"cnn": logits, "nme": nme_logits(feats, self.class_means)}

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "nme")
