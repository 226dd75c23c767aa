"""WA: Weight Aligning (Zhao, Xiao, Gan, Zhang & Xia, "Maintaining Discrimination and
Fairness in Class Incremental Learning", CVPR 2020), as run by the reference toolbox (PyCIL's
``models/wa.py``, which AudioCIL copies byte for byte).

Task 0 trains with cross-entropy. Every later task trains on the new clips plus a 2000-clip
herding memory with ``(1 - lam) * CE(all logits) + lam * KD_T(old-class logits, previous
network)``, ``lam = known / total`` and ``T`` = 2 (soft cross-entropy summed over classes
and averaged over the batch, no T^2 factor:
:func:`audiocil.losses.distillation.weighted_kd_ce`). The previous network is frozen as the
teacher when the task starts. After the task's training, the head's new rows are rescaled
so that their mean L2 norm equals the old rows' (:func:`audiocil.losses.weight_align.weight_align`,
the bias unchanged); then exemplars are chosen and the class means computed, with the
aligned network. Classifiers: the head ("cnn") and the nearest mean of exemplars ("nme",
as iCaRL's). PyCIL's schedule: SGD lr 0.1, task 0 200 epochs (x0.1 at 60/120/170, weight
decay 5e-4), later tasks 170 epochs (60/100/140, weight decay 2e-4), batch 128.

Differences from the reference, and why:

* **One alignment per task.** PyCIL aligns at the end of ``_train`` and again in
  ``after_task`` (where gamma is 1 up to rounding, so the second pass only adds float
  error); here it aligns once, before exemplar selection and evaluation.
* **Weight clipping** (``clip_weights``): the paper clips the head's weights to be
  non-negative after every optimizer step (Sec. 3.3: the embedding is non-negative after a
  ReLU, so non-negative weights make a row's norm track its logits); PyCIL does not. The
  default is off, the reference toolbox's setting; on, the head's weight (not its bias) is
  clipped after every step of every task. Note that SmallCNN's embedding ends with a
  BatchNorm, so it is not non-negative and the paper's argument does not carry over.

Scenarios: standard and few-shot (aligning equalises the mean norms in whichever direction
the imbalance goes: in few-shot sessions the new rows come from a few shots). Multi-label
is refused: the correction targets the softmax competition between old and new classes
(new rows with larger norms win the argmax); independent sigmoids have no such
competition, and matching mean norms would only move each class's decision threshold.
"""

from __future__ import annotations

import torch

from audiocil.core import Task
from audiocil.heads.functional import nme_logits
from audiocil.losses.distillation import weighted_kd_ce
from audiocil.losses.weight_align import clip_nonnegative_, weight_align
from audiocil.methods.base import DistillingStrategy
from audiocil.schema import POS, Bool


class WA(DistillingStrategy):
    """Args (beyond :class:`Strategy`'s):
        T: distillation temperature (PyCIL: 2).
        clip_weights: clip the head's weight to >= 0 after every optimizer step (the paper:
            on; PyCIL: off).
    """

    scenarios = ("standard", "fewshot")
    config_ranges = {"T": POS, "clip_weights": Bool()}
    needs_memory = True
    keeps_exemplar_means = True

    def __init__(self, *args, T: float, clip_weights: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.memory is None:
            raise ValueError("method=wa needs a memory: set method.memory.size or method.memory.per_class")
        self.T, self.clip_weights = float(T), bool(clip_weights)
        self.gammas: list[float] = []  # the aligning factor of each task > 0
        self.register_buffer("class_means", torch.zeros(0, self.network.backbone.out_dim))

    def extra_state(self) -> dict:
        return {"gammas": self.gammas}

    def load_extra_state(self, state: dict) -> None:
        self.gammas = [float(g) for g in state.get("gammas", [])]

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net = self.network
        z = net.frontend(x)
        logits = net.head(net.backbone(z))
        if self.teacher is None:
            return self.objective.loss(logits, y), {}
        loss = weighted_kd_ce(logits, self.frozen(self.teacher, z), y, self.T)  # lam = known / total
        return loss, {}

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.clip_weights:
            clip_nonnegative_(self.network.head.weight.data)

    def align(self, task: Task) -> float:
        """Rescale the new rows to the old rows' mean norm; returns gamma (1 at task 0)."""
        if task.index == 0:
            return 1.0
        gamma = weight_align(self.network.head.weight.data, task.new)
        self.gammas = self.gammas[:task.index - 1] + [gamma]
        return gamma

    def after_task(self, task: Task, dm) -> None:
        self.align(task)
        super().after_task(task, dm)  # drops the teacher; exemplars and class means, aligned

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats = self.network(x)
        return {"cnn": logits, "nme": nme_logits(feats, self.class_means)}

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "nme")
