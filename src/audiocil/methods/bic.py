"""BiC: Bias Correction (Wu, Chen, Wang, Ye, Liu, Guo & Fu, "Large Scale Incremental
Learning", CVPR 2019), as run by the reference toolbox (PyCIL's ``models/bic.py``, which
AudioCIL copies byte for byte).

The network is a linear head followed by a bias correction layer with one pair
(alpha, beta) per task, ``z' = alpha * z + beta`` on that task's logits
(:class:`audiocil.heads.BiasCorrection`; each pair starts at (1, 0)). Each task after the
first has two stages:

* ``train``: backbone and head (every bias pair frozen) on the new clips plus a 2000-clip
  herding memory, minus a validation split, with ``lam * KD_T(old-class logits, previous
  network) + (1 - lam) * CE(all logits)``, ``lam = known / total``, ``T`` = 2
  (:func:`audiocil.losses.distillation.weighted_kd_ce`). The teacher is the previous
  network with its bias layer; the student's logits are bias-corrected by the earlier
  tasks' pairs, as in the reference.
* ``bias``: only the last task's (alpha, beta), with a softmax cross-entropy of the
  corrected logits on the validation split; the rest of the network is frozen (BatchNorm
  statistics included).

The validation split holds ``max(1, int(val_ratio * memory quota of the old classes))``
clips of every seen class (PyCIL: ``int(0.1 * memory_size / known)``, 20 falling to 2 with
a 2000-clip memory), drawn from the new classes' clips and the old classes' exemplars by
generators seeded from (seed, task, class); never from the test set. Exemplars are chosen
afterwards among all the new classes' clips. Classifiers: the corrected network ("cnn",
the method's), the head without correction ("cnn_raw") and the nearest mean of
exemplars ("nme"). Schedule (PyCIL's, every task and stage): SGD lr 0.1 momentum 0.9,
170 epochs, x0.1 at 60/100/140, weight decay 2e-4, batch 128.

Bugs of the reference fixed here:

* **Double softmax.** PyCIL's bias stage minimises ``cross_entropy(softmax(z'), y)``,
  whose gradient vanishes as the probabilities saturate; here ``cross_entropy(z', y)``.
* **Decayed scale.** PyCIL applies weight decay 2e-4 to alpha and beta, pulling alpha
  toward 0 (a shrinking scale, not a prior of no correction); the bias stage's optimizer
  has ``weight_decay: 0``.
* **The task-1 crash** (``_select`` without ``session``, global bug 2 of the fact sheet)
  does not exist here, and the bias stage runs with the frozen network in eval mode (PyCIL
  puts it in train mode, so its BatchNorm statistics drift on the validation clips).

Scenarios: standard only. Few-shot is refused: BiC corrects a bias toward new classes that
have far more clips than the old classes' exemplars, which few-shot sessions reverse (a
few shots against tens of exemplars), and its validation split would take most of the
shots. Multi-label is refused: the correction targets the softmax competition between old
and new classes; independent sigmoids have none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from audiocil.core import Stage, Task
from audiocil.heads import BiasCorrection
from audiocil.heads.functional import nme_logits
from audiocil.losses.distillation import weighted_kd_ce
from audiocil.methods.base import DistillingStrategy, Network, structural
from audiocil.schema import POS, Num

log = logging.getLogger(__name__)
EMPTY = np.zeros(0, dtype=np.int64)


class BiCNetwork(Network):
    """Front end + backbone + linear head + bias correction; ``forward`` returns the
    corrected logits (B, C) and the features (B, D)."""

    def __init__(self, frontend, backbone: nn.Module) -> None:
        super().__init__(frontend, backbone)
        self.bias = BiasCorrection()

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(batch)
        return self.bias(self.head(feats)), feats


class BiC(DistillingStrategy):
    """Args (beyond :class:`Strategy`'s):
        T: distillation temperature (PyCIL: 2).
        val_ratio: validation clips per class = max(1, int(val_ratio * old-class quota))
            (PyCIL: 0.1).
        bias_stage: the bias stage's ``epochs``, ``optimizer`` and ``scheduler``.
    """

    scenarios = ("standard",)
    config_ranges = {"T": POS, "val_ratio": Num(gt=0, lt=1)}
    needs_memory = True
    keeps_exemplar_means = True

    def __init__(self, backbone: nn.Module, frontend, *args, T: float, val_ratio: float,
                 bias_stage: Mapping, **kwargs) -> None:
        super().__init__(backbone, frontend, *args, **kwargs)
        if self.memory is None:
            raise ValueError("method=bic needs a memory: set method.memory.size or method.memory.per_class")
        if not 0 < val_ratio < 1:
            raise ValueError(f"method.val_ratio must be in (0, 1), got {val_ratio}")
        self.network = BiCNetwork(frontend, backbone)
        self.T, self.val_ratio, self.bias_stage = float(T), float(val_ratio), dict(bias_stage)
        self.register_buffer("class_means", torch.zeros(0, self.network.backbone.out_dim))
        self._split: tuple[int, np.ndarray, np.ndarray] | None = None

    # ---- structure ---------------------------------------------------------------------------
    @structural
    def grow_head(self, n_new: int) -> None:
        self.network.head.grow(n_new)
        self.network.bias.grow(n_new)

    def teacher_module(self) -> nn.Module:
        """The teacher holds the bias layer too: the previous network's corrected logits."""
        net = self.network
        return nn.Sequential(net.backbone, net.head, net.bias)

    # ---- the clips ---------------------------------------------------------------------------
    def split(self, task: Task, dm) -> tuple[np.ndarray, np.ndarray]:
        """(stage-1 clips, validation clips) of the task; the same whenever it is asked
        (it depends only on the task's clips, the memory at the task's start and the seed)."""
        if self._split is not None and self._split[0] == task.index:
            return self._split[1], self._split[2]
        every = self.train_indices(task, dm)  # own clips + exemplars
        if task.index == 0:
            return every, EMPTY
        assert self.memory is not None
        k = max(1, int(self.val_ratio * self.memory.quota(task.known)))
        pools = {c: self.memory.exemplars.get(c, EMPTY) for c in range(task.known)}
        pools.update(dm.by_class(range(task.known, task.total), within=dm.own_indices))
        picks = []
        for c, pool in sorted(pools.items()):
            rng = np.random.default_rng([self.seed, task.index, c])
            picks.append(np.asarray(pool, dtype=np.int64)[rng.permutation(len(pool))[:k]])
        val = np.concatenate(picks)
        train = every[~np.isin(every, val)]
        self._split = (task.index, train, val)
        log.info("task %d: %d clips for stage train, %d (%d per class) for stage bias",
                 task.index, len(train), len(val), k)
        return train, val

    # ---- stages ------------------------------------------------------------------------------
    def trunk_parameters(self) -> list[nn.Parameter]:
        """Everything but the bias pairs (and the frozen teacher)."""
        bias = {id(p) for p in self.network.bias.parameters()}
        return [p for p in self.default_parameters() if id(p) not in bias]

    def stages(self, task: Task, dm) -> list[Stage]:
        train = self.train_stage(task, params=self.trunk_parameters,
                                 indices=lambda dm: self.split(task, dm)[0])
        if task.index == 0:
            return [train]
        bias = Stage("bias", int(self.bias_stage["epochs"]), optim=self.bias_stage,
                     params=lambda: list(self.network.bias.task_parameters(-1)),
                     indices=lambda dm: self.split(task, dm)[1], loss=self.bias_loss,
                     end=self.log_bias)
        return [train, bias]

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net = self.network
        z = net.frontend(x)
        logits = net.bias(net.head(net.backbone(z)))
        if self.teacher is None:
            return self.objective.loss(logits, y), {}
        return weighted_kd_ce(logits, self.frozen(self.teacher, z), y, self.T), {}  # lam = known / total

    def bias_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """One softmax cross-entropy of the corrected logits (the reference: two softmaxes)."""
        with torch.no_grad():
            raw = self.network.head(self.network.embed(x))
        return self.objective.loss(self.network.bias(raw), y), {}

    def log_bias(self, dm) -> None:
        alpha, beta = self.network.bias.task_parameters(-1)
        log.info("task %d: bias correction alpha %.4f, beta %.4f", self.task.index if self.task else -1,
                 alpha.item(), beta.item())

    # ---- after the task, evaluation ----------------------------------------------------------
    def after_task(self, task: Task, dm) -> None:
        self._split = None
        super().after_task(task, dm)  # drops the teacher; exemplars (among all the new clips), means

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.network.embed(x)
        raw = self.network.head(feats)
        return {"cnn": self.network.bias(raw), "cnn_raw": raw,
                "nme": nme_logits(feats, self.class_means)}

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "cnn_raw", "nme")
