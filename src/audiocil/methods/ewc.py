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

The Fisher pass is a training stage of its own, ``fisher``: one epoch over the task's clips in
shuffled mini-batches of ``batch_size``, no optimizer step, so it has Lightning's logging,
DDP (each rank sums its shard; the sums are reduced at the end) and progress bar.

Deviation: PyCIL estimates the Fisher with the network in train mode and thereby also
moves the BatchNorm running statistics; here ``fisher_mode: train`` restores them
afterwards (``fisher_mode: eval`` uses the running statistics instead).
"""

from __future__ import annotations

import torch

from audiocil.core import Stage, Task
from audiocil.losses.ewc import ewc_penalty, fisher_from_sums, merge_fisher, squared_gradients
from audiocil.methods.base import Strategy


class EWC(Strategy):
    """Args (beyond :class:`Strategy`'s):
        lamda: weight of the penalty (PyCIL: 1000).
        fisher_max: upper clamp of each Fisher entry (PyCIL: 1e-4), or None.
        fisher_mode: ``train`` (PyCIL; BatchNorm statistics restored) or ``eval``.
        new_classes_only_ce: in tasks > 0, cross-entropy over the new classes' logits only
            (PyCIL), rather than over every seen class.
    """

    scenarios = ("standard",)

    def __init__(self, *args, lamda: float, fisher_max: float | None, fisher_mode: str,
                 new_classes_only_ce: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if fisher_mode not in ("train", "eval"):
            raise ValueError(f"method.fisher_mode must be train|eval, got {fisher_mode!r}")
        if new_classes_only_ce and self.memory is not None:
            raise ValueError("method=ewc: new_classes_only_ce needs memory: null "
                             "(exemplars of old classes would get negative targets)")
        self.lamda, self.fisher_max, self.fisher_mode = float(lamda), fisher_max, fisher_mode
        self.new_classes_only_ce = new_classes_only_ce
        # name -> accumulated Fisher / parameter at the end of the previous task. Plain dicts,
        # not buffers: DDP would broadcast two parameter-sized buffers at every step.
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._saved_buffers: dict[str, torch.Tensor] = {}

    def extra_state(self) -> dict:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_extra_state(self, state: dict) -> None:
        self.fisher, self.anchor = dict(state["fisher"]), dict(state["anchor"])

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
        ce = self.objective.loss(logits, y, lo=k if k > 0 and self.new_classes_only_ce else 0)
        pen = self.penalty()
        return ce + self.lamda * pen, {"ce": ce.detach(), "ewc": pen.detach()}

    # ---- the Fisher stage -------------------------------------------------------------------
    def stages(self, task: Task, dm) -> list[Stage]:
        fisher = Stage("fisher", epochs=1, optim=None, indices=lambda dm: dm.own_indices,
                       loss=self.fisher_step, begin=self.fisher_begin, end=self.fisher_end,
                       eval_modules=(lambda: [self.network]) if self.fisher_mode == "eval" else None,
                       validate=False)
        return [self.train_stage(task), fisher]

    def fisher_begin(self, dm) -> None:
        self._sums = {n: torch.zeros_like(p) for n, p in self.network.named_parameters()}
        self._sums["__batches__"] = torch.zeros(())
        self._saved_buffers = {n: b.detach().clone() for n, b in self.network.named_buffers()}

    def fisher_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[None, dict]:
        """Accumulate the squared gradient of one batch's mean cross-entropy; no step."""
        squares, loss = squared_gradients(self.network, x, y)
        for n, g2 in squares.items():
            self._sums[n] = self._sums[n].to(g2.device) + g2
        self._sums["__batches__"] = self._sums["__batches__"].to(loss.device) + 1
        return None, {"ce": loss}

    def fisher_end(self, dm) -> None:
        sums = self._sums
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for t in sums.values():
                torch.distributed.all_reduce(t)
        count = int(sums.pop("__batches__"))
        new = fisher_from_sums(sums, count, self.fisher_max)
        with torch.no_grad():  # undo the BatchNorm statistics the train-mode passes moved
            for n, b in self.network.named_buffers():
                b.copy_(self._saved_buffers[n].to(b.device))
        task = self.task
        assert task is not None
        self.fisher = merge_fisher(self.fisher, new, task.known / task.total) if self.fisher else new
        self.anchor = {n: p.detach().clone() for n, p in self.network.named_parameters()
                       if n in self.fisher}
        self._sums, self._saved_buffers = {}, {}
