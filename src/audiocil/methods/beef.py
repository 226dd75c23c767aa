"""BEEF: Bi-Compatible Class-Incremental Learning via Energy-Based Expansion and Fusion
(Wang, Zhou, Ye & Zhan, ICLR 2023), as run by the reference toolbox (PyCIL's
``models/beef_iso.py`` and ``BEEFISONet``; the audio CIL code adds only checkpoint I/O).

Each task adds a backbone, initialised from the first task's, with heads on its features:
``new_fc`` (new classes), one *backward prototype* per old task, *forward prototypes* (one
per seen class) and, per old task, a bias ``(alpha + 1) x + beta`` on its backward
prototype. Earlier backbones and the merged classifier of earlier tasks are frozen
(parameters and BatchNorm statistics: :class:`FrozenCopy`, in eval mode).

* ``expansion`` (task 0: ``train``): on the task's clips plus exemplars, CE of the new
  backbone's ``[backward prototypes; new_fc]`` logits with task-level pseudo-labels (old
  columns / ``logits_alignment`` 1.7), plus ``energy_weight`` (0.01) x the energy CE of
  negatives (log-mels rotated by 180 degrees, moved by 3 gradient steps of lr 1e-2 with
  noise 1e-3 towards the forward prototypes, then asked to be their class's forward
  prototype; :mod:`audiocil.losses.beef`). Task 0: CE over its classes + the energy term.
* ``fusion`` (tasks > 0): only the biases train, CE over all classes on a balanced set of
  ``fusion_per_class`` clips per class: each old class's first exemplars and, per new class,
  clips held out of the expansion data (seeded by (seed, task, class)); never the test set.

After the task everything is merged into one linear classifier over the concatenated
features (:meth:`BeefNetwork.fuse`); its logits equal the unfused model's. As in the
reference there is no compression (``is_compress: false``): the model grows by one full
backbone per task. Reported: ``cnn`` and ``nme`` (exemplar means, concatenated features).

Reference settings (PyCIL's exps/beef.json): 20 herding exemplars per class (fixed); SGD
momentum 0.9, batch 128, cosine schedules: 200 base epochs, 170 expansion epochs (lr 0.1,
weight decay 5e-4), 60 fusion epochs (lr 0.05, weight decay 5e-4).

Fixed relative to the reference: (1) its ``forward()`` drops the old classifier's bias
(``fc_bias=+new_fc_bias``) while its merge adds it; here both include it. (2) It puts only
``convnets[0]`` in eval mode, so the other frozen backbones' BatchNorm statistics drift (and
the new backbone's during fusion); here no frozen backbone's do. (3) No epoch or checkpoint
is chosen on the test set. (4) The new classes' fusion clips are held out of the expansion
data (the reference fuses on clips it has just trained on). (5) The negatives' objective and
suppressed columns are per sample (:mod:`audiocil.losses.beef`); the sampler runs the live
new backbone in eval mode rather than a deep copy of the network (the same values).
Single-label only (task pseudo-labels, one energy target per clip): ``scenario=multilabel``
is refused. So is ``scenario=fewshot``: a K-shot session cannot spare held-out clips for the
fusion set without leaving the new backbone nothing to learn from.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from audiocil.core import Stage, Task
from audiocil.data.frontend import Frontend
from audiocil.heads.functional import nme_logits
from audiocil.losses.beef import energy_ce, expansion_ce, sample_negatives, task_pseudo_targets
from audiocil.methods.base import FrozenCopy, Strategy, structural
from audiocil.schema import NONNEG, POS, Int


class TaskBias(nn.Module):
    """BEEF's per-old-task bias on the backward-prototype logits: ``(alpha + 1) x + beta``
    (alpha = beta = 0 at start: the identity). Shapes: (B, n_tasks) -> (B, n_tasks)."""

    def __init__(self, n_tasks: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(n_tasks))
        self.beta = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.alpha + 1) * z + self.beta


class BeefNetwork(nn.Module):
    """Front end + one backbone per task (all but the one being learnt frozen) + heads.

    ``forward`` returns (logits over every seen class, concatenated features (B, T * D)).
    """

    def __init__(self, frontend: Frontend, backbone: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.backbones = nn.ModuleList([backbone])
        self.out_dim = int(backbone.out_dim)
        self.task_sizes: list[int] = []
        self.old_head: FrozenCopy | None = None     # merged classifier of the learnt tasks
        self.new_fc: nn.Linear | None = None        # the current task's classes
        self.backward: nn.Linear | None = None      # one prototype per old task
        self.forward_protos: nn.Linear | None = None  # one per seen class (energy term)
        self.biases: TaskBias | None = None

    def _linear(self, n_in: int, n_out: int) -> nn.Linear:
        return nn.Linear(n_in, n_out).to(self.frontend.mean.device)

    def start(self, n_new: int) -> None:
        """Heads of a task: new classes, backward prototypes of the old tasks, forward
        prototypes; from task 1 on, a new backbone copied from the first one."""
        if self.task_sizes:
            first = self.backbones[0]
            new = copy.deepcopy(first.module if isinstance(first, FrozenCopy) else first).train()
            for p in new.parameters():
                p.requires_grad_(True)
            self.backbones.append(new)
            self.backward = self._linear(self.out_dim, len(self.task_sizes))
            self.biases = TaskBias(len(self.task_sizes)).to(self.frontend.mean.device)
        self.task_sizes.append(int(n_new))
        self.new_fc = self._linear(self.out_dim, n_new)
        self.forward_protos = self._linear(self.out_dim, sum(self.task_sizes))

    def old_task_of_class(self) -> torch.Tensor:
        """(known,) the old task of each old class position."""
        sizes = torch.as_tensor(self.task_sizes[:-1], device=self.frontend.mean.device)
        return torch.repeat_interleave(torch.arange(len(sizes), device=sizes.device), sizes)

    def new_outputs(self, f_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(train logits (B, n_old_tasks + n_new), energy logits (B, total)) of the new
        backbone's features (B, D)."""
        assert self.new_fc is not None and self.forward_protos is not None
        parts = [self.backward(f_new)] if self.backward is not None else []
        return torch.cat([*parts, self.new_fc(f_new)], 1), self.forward_protos(f_new)

    def scores(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.cat([b(z) for b in self.backbones], 1)  # (B, T * D)
        if self.new_fc is None:  # fused
            assert self.old_head is not None
            return self.old_head(feats), feats
        f_new = feats[:, -self.out_dim:]
        new = self.new_fc(f_new)
        if self.old_head is None:  # task 0, not fused yet
            return new, feats
        assert self.biases is not None and self.backward is not None
        proto = self.biases(self.backward(f_new))[:, self.old_task_of_class()]  # (B, known)
        return torch.cat([self.old_head(feats[:, :-self.out_dim]) + proto, new], 1), feats

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.scores(self.frontend(batch))[1]

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scores(self.frontend(batch))

    @torch.no_grad()
    def fuse(self) -> None:
        """Merge the old classifier, the biased backward prototypes and ``new_fc`` into one
        linear layer over every backbone's features; freeze the new backbone."""
        assert self.new_fc is not None
        D, n_new, known = self.out_dim, self.task_sizes[-1], sum(self.task_sizes[:-1])
        head = self._linear(D * len(self.backbones), known + n_new)
        head.weight.zero_()
        head.weight[known:, -D:] = self.new_fc.weight
        head.bias[known:] = self.new_fc.bias
        if self.old_head is not None:
            assert self.biases is not None and self.backward is not None
            old, idx = self.old_head.module, self.old_task_of_class()
            scale = self.biases.alpha[idx] + 1  # (known,)
            head.weight[:known, :-D] = old.weight
            head.weight[:known, -D:] = scale[:, None] * self.backward.weight[idx]
            head.bias[:known] = old.bias + scale * self.backward.bias[idx] + self.biases.beta[idx]
        self.old_head = FrozenCopy(head)
        self.backbones[-1] = FrozenCopy(self.backbones[-1])
        self.new_fc = self.backward = self.forward_protos = self.biases = None


class BEEF(Strategy):
    """Args (beyond :class:`Strategy`'s):
        logits_alignment: divisor of the old-task columns in the expansion CE (1.7).
        energy_weight: weight of the energy CE (0.01).
        energy_steps, energy_lr, energy_noise: the negatives' sampler (3, 1e-2, 1e-3).
        fusion: the fusion stage's ``epochs``, ``optimizer``, ``scheduler``.
        fusion_per_class: clips per class of the balanced fusion set (20).
    """

    scenarios = ("standard",)
    config_ranges = {"logits_alignment": POS, "energy_weight": NONNEG, "energy_steps": Int(0),
                     "energy_lr": NONNEG, "energy_noise": NONNEG, "fusion_per_class": Int(1)}
    needs_memory = True
    keeps_exemplar_means = True  # of the concatenated features

    def __init__(self, backbone: nn.Module, frontend: Frontend, *args, logits_alignment: float,
                 energy_weight: float, energy_steps: int, energy_lr: float, energy_noise: float,
                 fusion: Mapping, fusion_per_class: int, **kwargs) -> None:
        super().__init__(backbone, frontend, *args, **kwargs)
        if self.memory is None:
            raise ValueError("method=beef needs a memory: set method.memory.per_class (20)")
        self.network = BeefNetwork(frontend, backbone)
        self.logits_alignment, self.energy_weight = float(logits_alignment), float(energy_weight)
        self.energy_steps, self.energy_lr = int(energy_steps), float(energy_lr)
        self.energy_noise, self.fusion = float(energy_noise), dict(fusion)
        self.fusion_per_class = int(fusion_per_class)
        self.register_buffer("class_means", torch.zeros(0, self.network.out_dim))

    @structural
    def start_task(self, n_new: int) -> None:
        self.network.start(n_new)

    @structural
    def fuse(self) -> None:
        self.network.fuse()

    def before_task(self, task: Task, dm) -> None:
        self.task = task
        self.objective.note_task(task)
        self.start_task(task.new)

    # ---- data -------------------------------------------------------------------------------
    def held_out(self, task: Task, dm) -> np.ndarray:
        """``fusion_per_class`` clips of each new class, kept out of the expansion stage."""
        out = []
        for c, idx in sorted(dm.by_class(range(task.known, task.total), within=dm.own_indices).items()):
            if len(idx) <= self.fusion_per_class:
                raise ValueError(f"method=beef: class position {c} has {len(idx)} training clips; "
                                 f"the fusion set holds out method.fusion_per_class={self.fusion_per_class}")
            rng = np.random.default_rng([self.seed, task.index, c])
            out.append(np.sort(idx)[rng.choice(len(idx), self.fusion_per_class, replace=False)])
        return np.concatenate(out)

    def train_indices(self, task: Task, dm) -> np.ndarray:
        idx = super().train_indices(task, dm)  # own clips + exemplars
        return idx if task.index == 0 else idx[~np.isin(idx, self.held_out(task, dm))]

    def fusion_indices(self, dm) -> np.ndarray:
        task, m = self.task, self.fusion_per_class
        assert task is not None and self.memory is not None
        old = [self.memory.exemplars[c][:m] for c in range(task.known)]
        return np.concatenate([*old, self.held_out(task, dm)])

    # ---- stages --------------------------------------------------------------------------------
    def stages(self, task: Task, dm) -> list[Stage]:
        net = self.network

        def trained() -> list[nn.Parameter]:
            mods = [net.backbones[-1], net.new_fc, net.backward, net.forward_protos]
            return [p for m in mods if m is not None for p in m.parameters()]

        expansion = self.train_stage(task, "train" if task.index == 0 else "expansion",
                                     params=trained, loss=self.expansion_loss)
        if task.index == 0:
            return [expansion]
        fusion = self.train_stage(task, "fusion", optim=self.fusion, indices=self.fusion_indices,
                                  params=lambda: list(net.biases.parameters()), loss=self.fusion_loss)
        return [expansion, fusion]

    def expansion_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net = self.network
        z = net.frontend(x)
        train, _ = net.new_outputs(net.backbones[-1](z))
        if self.known == 0:
            pseudo, ce = y, self.objective.loss(train, y)
        else:
            pseudo = task_pseudo_targets(y, net.task_sizes)
            ce = expansion_ce(train, pseudo, len(net.task_sizes) - 1, self.logits_alignment)
        energy = self.energy_loss(z, y, pseudo)
        return ce + self.energy_weight * energy, {"ce": ce.detach(), "energy": energy.detach()}

    def energy_loss(self, z: torch.Tensor, y: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
        """Energy CE of the negatives made from ``z``; the sampler sees the new backbone in
        eval mode (no BatchNorm update), the loss in the stage's mode, as the reference."""
        net, backbone = self.network, self.network.backbones[-1]
        was = backbone.training
        backbone.eval()
        neg = sample_negatives(lambda v: net.new_outputs(backbone(v)), z, self.energy_steps,
                               self.energy_lr, self.energy_noise)
        backbone.train(was)
        train, energy = net.new_outputs(backbone(neg))
        return energy_ce(train, energy, y, suppress=pseudo)

    def fusion_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self.objective.loss(self.network(x)[0], y), {}

    # ---- end of task and evaluation ---------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self.network.out_dim * len(self.network.backbones)

    def after_task(self, task: Task, dm) -> None:
        self.fuse()
        super().after_task(task, dm)  # herding and class means on the concatenated features

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats = self.network(x)
        return {"cnn": logits, "nme": nme_logits(feats, self.class_means)}

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "nme")

    def validation_step(self, batch, batch_idx: int) -> None:
        """The per-epoch figure of the unfused network being trained."""
        x, y, _ = batch
        name, value = self.objective.val_score(self.network(x)[0], y)
        self.log(f"val/{name}", value, prog_bar=True, batch_size=len(y), sync_dist=True)
