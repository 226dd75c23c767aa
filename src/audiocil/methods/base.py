"""The strategy base class every CIL method builds on.

A strategy is a LightningModule with a growing classifier and four hooks that the
task sequencer (:mod:`audiocil.callbacks.sequencer`) calls around a stock
``Trainer.fit``:

* :meth:`before_task` grows the network for the task's classes;
* :meth:`train_indices` says which training clips to serve (the task's, plus exemplars);
* :meth:`training_loss` is the method's loss on one batch;
* :meth:`after_task` does the end-of-task work (exemplars, teacher, Fisher, class means).

Evaluation asks :meth:`eval_logits` for one or more classifiers' logits ("cnn", and
"nme" where the method has a nearest-mean classifier).

On a multi-label dataset (``scenario=multilabel``) :meth:`before_task` sets
``self.multilabel`` from the datamodule, and the shared pieces switch to sigmoids: the
loss is binary cross-entropy over every seen class (targets arrive already masked to the
labels the scenario gives), exemplars are chosen at random among the phase's clips and
replayed with the labels they were stored with (see :meth:`Strategy.after_task`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiocil.data.frontend import Frontend
from audiocil.data.memory import ExemplarMemory
from audiocil.heads import IncrementalLinear
from audiocil.losses.multilabel import bce_loss
from audiocil.metrics.task_accuracy import TaskAccuracy
from audiocil.scenarios.standard import Task

log = logging.getLogger(__name__)


class FrozenCopy(nn.Module):
    """A frozen copy of a module, kept in eval mode even when its parent is set to train."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(module)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.module.eval()

    def train(self, mode: bool = True) -> FrozenCopy:
        super().train(False)
        return self

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)


class Network(nn.Module):
    """Front end + backbone + growing linear head. ``forward`` returns (logits, features)."""

    def __init__(self, frontend: Frontend, backbone: nn.Module) -> None:
        super().__init__()
        self.frontend, self.backbone = frontend, backbone
        self.head = IncrementalLinear(backbone.out_dim)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.frontend(batch))  # (B, D)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(batch)
        return self.head(feats), feats  # (B, C), (B, D)


class Strategy(L.LightningModule):
    """Shared machinery: network, per-task optimisation, exemplar memory, evaluation.

    Args:
        backbone: the feature extractor (reports ``out_dim``).
        frontend: the input front end (log-mel / normalisation / SpecAugment).
        first_task: optimisation of task 0: ``epochs, lr, momentum, weight_decay,
            scheduler (multistep|cosine|constant), milestones, lr_decay``.
        later_tasks: the same for tasks 1..T-1.
        batch_size: training batch size.
        memory: ``{size, per_class, selection}`` for rehearsal methods, or None.
        seed: seeds exemplar selection.
    """

    #: the scenarios whose protocol the method handles; others are refused at start-up
    scenarios: tuple[str, ...] = ("standard", "fewshot")
    #: multi-hot targets, sigmoid outputs and BCE; set from the datamodule in before_task
    multilabel: bool = False

    def __init__(self, backbone: nn.Module, frontend: Frontend, first_task: Mapping,
                 later_tasks: Mapping, batch_size: int = 64, memory: Mapping | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.network = Network(frontend, backbone)
        self.first_task, self.later_tasks = dict(first_task), dict(later_tasks)
        self.batch_size = int(batch_size)
        self.memory = ExemplarMemory(**dict(memory), seed=seed) if memory else None
        self.task: Task | None = None
        self.eval_metrics = nn.ModuleDict()
        self.phase_span: dict[int, tuple[int, int]] = {}  # class position -> (known, total)

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def known(self) -> int:
        """Classes learnt before the current task."""
        return self.task.known if self.task else 0

    @property
    def total(self) -> int:
        """Classes known once the current task is learnt."""
        return self.task.total if self.task else 0

    def optim_cfg(self, task: Task | None = None) -> dict:
        task = task or self.task
        return self.first_task if task is None or task.index == 0 else self.later_tasks

    def epochs(self, task: Task) -> int:
        return int(self.optim_cfg(task)["epochs"])

    # ---- hooks -----------------------------------------------------------------------------
    def before_task(self, task: Task, dm) -> None:
        """Grow the classifier for the task's new classes."""
        self.task = task
        self.multilabel = bool(getattr(dm, "multilabel", False))
        if self.multilabel:  # the phase each class came in (replayed labels, see after_task)
            self.phase_span.update({c: (task.known, task.total) for c in range(task.known, task.total)})
        self.network.head.grow(task.new)

    def train_indices(self, task: Task, dm) -> np.ndarray:
        """The task's own training clips (as the scenario chose them), plus exemplars."""
        own = dm.own_indices
        if self.memory is None or len(self.memory) == 0:
            return own
        if self.multilabel:  # exemplars keep the labels of the phase they were stored in
            extra = {int(i): list(range(*self.phase_span[c]))
                     for c, idx in self.memory.exemplars.items() for i in idx}
            dm.set_target_mask(dm.target_positions, extra)
            return np.unique(np.concatenate([own, self.memory.indices()]))
        return np.concatenate([own, self.memory.indices()])

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Cross-entropy (multi-label: BCE) over every seen class. Returns (loss, extra
        values to log)."""
        logits, _ = self.network(x)
        if self.multilabel:
            return bce_loss(logits, y[:, :logits.shape[1]]), {}
        return F.cross_entropy(logits, y), {}

    def after_task(self, task: Task, dm) -> None:
        """Update the exemplar memory, if the method keeps one.

        Multi-label: herding by class is ill-defined when a clip carries several classes,
        so exemplars are drawn at random among the phase's own clips: for each new class in
        turn, ``quota`` clips carrying it that no other class of the phase took yet.
        """
        if self.memory is None:
            return
        if self.multilabel:
            self.update_memory_multilabel(task, dm)
            return
        self.memory.update(dm.by_class(range(task.known, task.total), within=dm.own_indices),
                           lambda idx: self.embed_indices(dm, idx), task.total)

    def update_memory_multilabel(self, task: Task, dm) -> None:
        """Random exemplars of the phase's clips (see :meth:`after_task`)."""
        assert self.memory is not None
        if self.memory.selection != "random":
            log.info("multi-label replay: exemplars are chosen at random (memory.selection=%s "
                     "is for single-label data)", self.memory.selection)
        m = self.memory.quota(task.total)
        for c in list(self.memory.exemplars):
            self.memory.exemplars[c] = self.memory.exemplars[c][:m]
        taken: set[int] = set()
        for c, idx in sorted(dm.by_class(range(task.known, task.total), within=dm.own_indices).items()):
            rng = np.random.default_rng([self.memory.seed, c])
            free = np.asarray([i for i in idx if int(i) not in taken], dtype=np.int64)
            pick = free[rng.permutation(len(free))[:m]]
            taken.update(int(i) for i in pick)
            self.memory.exemplars[c] = pick

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of each classifier the method reports, over the seen classes."""
        return {"cnn": self.network(x)[0]}

    # ---- helpers shared by methods ---------------------------------------------------------
    @torch.no_grad()
    def embed_indices(self, dm, indices: np.ndarray, split: str = "train",
                      net: nn.Module | None = None) -> torch.Tensor:
        """(N, D) embeddings of training clips, computed in eval mode on this device."""
        net = net or self.network
        was_training = net.training
        net.eval()
        out = []
        data = dm.data[split]
        for a in range(0, len(indices), 256):
            x = data[indices[a:a + 256]].to(self.device)
            out.append(net.embed(x).float().cpu())
        net.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, 0)

    # ---- Lightning ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[0]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        loss, extra = self.training_loss(x, y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        for k, v in extra.items():
            self.log(f"train/{k}", v, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self.eval_logits(x)["cnn"]
        if self.multilabel:  # micro-F1 at 0.5 of the batch, for the progress bar only
            pred, t = logits > 0, y[:, :logits.shape[1]] > 0
            f1 = 200 * (pred & t).sum() / (pred.sum() + t.sum()).clamp(min=1)
            self.log("val/micro_f1", f1.float(), prog_bar=True, batch_size=len(y), sync_dist=True)
            return
        acc = (logits.argmax(1) == y).float().mean() * 100
        self.log("val/acc", acc, prog_bar=True, batch_size=len(y), sync_dist=True)

    def setup_eval(self, task_of_class: torch.Tensor, n_tasks: int) -> None:
        """Fresh per-task accuracy metrics before a test pass."""
        names = list(self.eval_logits_names())
        self.eval_metrics = nn.ModuleDict(
            {n: TaskAccuracy(task_of_class, n_tasks).to(self.device) for n in names})

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn",)

    def test_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        for name, logits in self.eval_logits(x).items():
            self.eval_metrics[name].update(logits.float(), y)

    def configure_optimizers(self):
        cfg = self.optim_cfg()
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg.get("momentum", 0.9),
                              weight_decay=cfg.get("weight_decay", 0.0))
        kind = cfg.get("scheduler", "multistep")
        if kind == "multistep":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg["milestones"]),
                                                         gamma=cfg.get("lr_decay", 0.1))
        elif kind == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(cfg["epochs"]), 1),
                                                               eta_min=cfg.get("lr_min", 0.0))
        elif kind == "constant":
            return opt
        else:
            raise ValueError(f"scheduler must be multistep|cosine|constant, got {kind!r}")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
