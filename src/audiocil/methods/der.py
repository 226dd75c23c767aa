"""DER: Dynamically Expandable Representation (Yan, Xie & He, CVPR 2021), as run by the
reference toolbox (PyCIL's ``models/der.py``).

Each task adds a feature extractor; those of earlier tasks are frozen (parameters and
BatchNorm statistics: they stay in eval mode). The features of all extractors are
concatenated and fed to a new, larger linear head whose old rows keep the previous head's
weights on the old feature columns (the rest is freshly initialised). An auxiliary head on
the new extractor's features alone separates the new classes from "any old class" (|new|+1
outputs, old classes merged into output 0). Loss: cross-entropy of the head over all seen
classes + cross-entropy of the auxiliary head, on new clips plus a 2000-clip herding memory.

As in PyCIL: the new extractor starts from the previous one's weights (``init: previous``;
``init: fresh`` re-initialises it), the head's new rows are rescaled after each task by the
ratio of mean old/new row norms (weight aligning, Zhao et al. CVPR 2020, in place of the
paper's balanced classifier re-training), and there is no channel masking or pruning (the
paper's sparsity loss and pruned "DER w/ P" are not implemented in PyCIL either), so the
model grows by one full backbone per task. PyCIL's schedule: SGD lr 0.1, 200 epochs
(60/120/170, weight decay 5e-4), then 170 epochs (80/120/150, weight decay 2e-4), batch 128.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from audiocil.core import Task
from audiocil.data.frontend import Frontend
from audiocil.heads import IncrementalLinear
from audiocil.losses.weight_align import weight_align
from audiocil.methods.base import FrozenCopy, Strategy, structural


def aux_targets(y: torch.Tensor, known: int) -> torch.Tensor:
    """Targets of the auxiliary head: 0 for any old class, ``y - known + 1`` for a new one."""
    return torch.where(y >= known, y - known + 1, torch.zeros_like(y))


class DERNetwork(nn.Module):
    """Front end + a list of backbones (all but the last frozen) + head over their features.

    ``forward`` returns (logits, features) like :class:`~audiocil.methods.base.Network`;
    ``features`` is the concatenation (B, n_backbones * out_dim).
    """

    def __init__(self, frontend: Frontend, backbone: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.backbones = nn.ModuleList([backbone])
        self.out_dim = int(backbone.out_dim)
        self.head = IncrementalLinear(self.out_dim)
        self.aux_head: nn.Linear | None = None

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(z) for b in self.backbones], dim=1)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.features(self.frontend(batch))

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(batch)
        return self.head(feats), feats

    def expand(self, n_new: int, fresh: bool = False) -> None:
        """Add a trainable backbone (a copy of the last), freeze the last, widen the head."""
        last = self.backbones[-1]
        new = copy.deepcopy(last)
        if fresh:
            for m in new.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        self.backbones[-1] = FrozenCopy(last)
        self.backbones.append(new)
        old = self.head
        head = IncrementalLinear(self.out_dim * len(self.backbones), old.num_classes + n_new)
        head = head.to(old.weight.device)
        with torch.no_grad():
            head.weight[: old.num_classes, : old.in_dim] = old.weight
            head.bias[: old.num_classes] = old.bias
        self.head = head
        self.aux_head = nn.Linear(self.out_dim, n_new + 1).to(old.weight.device)


class DER(Strategy):
    """Args (beyond :class:`Strategy`'s):
        aux_weight: weight of the auxiliary loss (PyCIL and the paper: 1).
        weight_align: rescale the new head rows after each task (PyCIL: true).
        init: ``previous`` (PyCIL: the new backbone starts as a copy of the last) or ``fresh``.
    """

    scenarios = ("standard",)

    def __init__(self, backbone: nn.Module, frontend: Frontend, *args, aux_weight: float,
                 weight_align: bool, init: str, **kwargs) -> None:
        super().__init__(backbone, frontend, *args, **kwargs)
        if init not in ("previous", "fresh"):
            raise ValueError(f"method.init must be previous|fresh, got {init!r}")
        if self.memory is None:
            raise ValueError("method=der needs a memory: set method.memory.size or method.memory.per_class")
        self.network = DERNetwork(frontend, backbone)
        self.aux_weight, self.weight_align, self.init = float(aux_weight), weight_align, init

    def before_task(self, task: Task, dm) -> None:
        if task.index == 0:
            super().before_task(task, dm)
            return
        self.task = task
        self.expand(task.new)

    @structural
    def expand(self, n_new: int) -> None:
        """A new trainable backbone, the last one frozen, a wider head (see the module doc)."""
        self.network.expand(n_new, fresh=self.init == "fresh")

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net = self.network
        logits, feats = net(x)
        ce = F.cross_entropy(logits, y)
        if net.aux_head is None or self.known == 0:
            return ce, {}
        aux = F.cross_entropy(net.aux_head(feats[:, -net.out_dim:]), aux_targets(y, self.known))
        return ce + self.aux_weight * aux, {"ce": ce.detach(), "aux": aux.detach()}

    def after_task(self, task: Task, dm) -> None:
        if self.weight_align and task.index > 0:
            weight_align(self.network.head.weight.data, task.new)
        super().after_task(task, dm)  # herding on the concatenated features
