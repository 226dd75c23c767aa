"""EWC: Elastic Weight Consolidation (Kirkpatrick et al., "Overcoming catastrophic
forgetting in neural networks", PNAS 2017), in its class-incremental form as run by the
reference toolbox (PyCIL's ``models/ewc.py``).

After each task the diagonal empirical Fisher of the network is estimated on the task's
training clips and merged into a running average weighted by class counts; the weights
are anchored. While a later task is learnt, the loss is cross-entropy on the new classes'
logits plus ``lamda * 1/2 * sum F (theta - theta*)^2`` over the shared parameters: the
backbone and the classifier rows that existed before the task (the new rows are free).
PyCIL's settings: ``lamda`` = 1000, Fisher clamped at ``fishermax`` = 1e-4, no exemplars,
task 0 with plain cross-entropy. The formulas live in :mod:`audiocil.losses.ewc`.

Deviation: PyCIL estimates the Fisher with the network in train mode and thereby also
moves the BatchNorm running statistics; here ``fisher_mode: train`` restores them
afterwards (``fisher_mode: eval`` uses the running statistics instead).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from audiocil.losses.ewc import ewc_penalty, fisher_diagonal, merge_fisher
from audiocil.methods.base import Strategy
from audiocil.scenarios.standard import Task


class EWC(Strategy):
    """Args (beyond :class:`Strategy`'s):
        lamda: weight of the penalty (PyCIL: 1000).
        fisher_max: upper clamp of each Fisher entry (PyCIL: 1e-4), or None.
        fisher_mode: ``train`` (PyCIL; BatchNorm statistics restored) or ``eval``.
        new_classes_only_ce: in tasks > 0, cross-entropy over the new classes' logits only
            (PyCIL), rather than over every seen class.
    """

    def __init__(self, *args, lamda: float = 1000.0, fisher_max: float | None = 1e-4,
                 fisher_mode: str = "train", new_classes_only_ce: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if fisher_mode not in ("train", "eval"):
            raise ValueError(f"method.fisher_mode must be train|eval, got {fisher_mode!r}")
        if new_classes_only_ce and self.memory is not None:
            raise ValueError("method=ewc: new_classes_only_ce needs memory: null "
                             "(exemplars of old classes would get negative targets)")
        self.lamda, self.fisher_max, self.fisher_mode = float(lamda), fisher_max, fisher_mode
        self.new_classes_only_ce = new_classes_only_ce
        self.seed = int(kwargs.get("seed", 0))
        # name -> accumulated Fisher / parameter at the end of the previous task. Plain dicts,
        # not buffers: DDP would broadcast two parameter-sized buffers at every step.
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.fisher = {n: f.to(self.device) for n, f in self.fisher.items()}
        self.anchor = {n: a.to(self.device) for n, a in self.anchor.items()}

    def penalty(self) -> torch.Tensor:
        """The EWC penalty of the current network (0 before the first Fisher exists)."""
        if not self.fisher:
            return torch.zeros((), device=self.device)
        return ewc_penalty(dict(self.network.named_parameters()), self.anchor, self.fisher)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logits, _ = self.network(x)
        k = self.known
        if k > 0 and self.new_classes_only_ce:
            ce = F.cross_entropy(logits[:, k:], y - k)
        else:
            ce = F.cross_entropy(logits, y)
        pen = self.penalty()
        return ce + self.lamda * pen, {"ce": ce.detach(), "ewc": pen.detach()}

    def _batches(self, task: Task, dm) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The task's training clips in shuffled mini-batches (fixed by seed and task)."""
        idx = dm.own_indices
        g = torch.Generator().manual_seed(self.seed * 7919 + task.index)
        idx = idx[torch.randperm(len(idx), generator=g).numpy()]
        for a in range(0, len(idx), self.batch_size):
            b = np.sort(idx[a:a + self.batch_size])
            yield dm.data["train"][b].to(self.device), dm.targets["train"][b].to(self.device)

    def after_task(self, task: Task, dm) -> None:
        super().after_task(task, dm)
        net = self.network
        was_training = net.training
        saved = {n: b.clone() for n, b in net.named_buffers()}
        net.train(self.fisher_mode == "train")
        with torch.enable_grad():
            new = fisher_diagonal(net, self._batches(task, dm), clamp_max=self.fisher_max)
        with torch.no_grad():  # undo the BatchNorm statistics the train-mode passes moved
            for n, b in net.named_buffers():
                b.copy_(saved[n])
        net.train(was_training)
        self.fisher = merge_fisher(self.fisher, new, task.known / task.total) if self.fisher else new
        self.anchor = {n: p.detach().clone() for n, p in net.named_parameters() if n in self.fisher}
