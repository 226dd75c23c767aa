"""GEM: Gradient Episodic Memory (Lopez-Paz & Ranzato, "Gradient Episodic Memory for
Continual Learning", NeurIPS 2017), in the class-incremental form of the reference toolbox
(PyCIL's ``models/gem.py``, which AudioCIL copies byte for byte).

Task 0 trains with plain cross-entropy. In every later task the network trains on the new
task's clips only (the memory is not replayed), with the loss over the new classes' logits
(the old classes' logits masked out, as the reference fills them with -1e11). At every
optimizer step, for each earlier task k, the gradient g_k of the loss of *all* of task k's
exemplars over task k's logits only is computed; if the current gradient g has a negative
inner product with any g_k, it is replaced by the closest vector z with ``g_k . z >= 0`` for
every k (the paper's Eq. 10-11: a quadratic programme in the dual, solved exactly by
:func:`audiocil.solvers.gem.project_gradient`), and the optimizer (SGD with momentum and
weight decay, which it adds itself) steps along it. Exemplars: a 2000-clip herding memory
shared by all classes. PyCIL's schedule: task 0 200 epochs (x0.1 at 60/120/170, weight
decay 5e-4); later tasks 100 epochs (30/60/80, weight decay 2e-4); SGD lr 0.1, batch 128.

The projection runs in Lightning's ``on_before_optimizer_step``, on the gradients that the
backward pass left in ``.grad`` (already averaged across ranks under DDP, unscaled under
mixed precision); the memory gradients come from ``torch.autograd.grad`` so ``.grad`` is
not touched until the projected gradient is written back. Every rank holds the same
memory, so every rank solves the same projection.

Differences from the reference, and why:

* **Task ranges.** PyCIL groups old exemplars into tasks of the *current* task's size
  (``k * increment``), which is wrong when the first task's size differs; the real ranges
  of the earlier tasks are kept here (``extra_state``).
* **Solver.** PyCIL calls quadprog, which fails on a singular Gram matrix (identical or
  opposite old gradients, more old tasks than parameters, an all-zero gradient) and whose
  ImportError is swallowed until the first violation. The NNLS dual here is exact and needs
  no positive definite matrix (no eps*I either, which perturbs the authors' solution).
* **Margin** (``margin``): a lower bound gamma on the dual variables once a constraint is
  violated (the authors' ``memory_strength``; 0.5 in the paper's runs). The default is 0,
  the reference toolbox's setting, i.e. the exact projection of the paper's Eq. 10-11;
  with gamma > 0 the step is the projection of ``g + gamma * sum_k g_k``.
* **BatchNorm.** The memory's forward passes run in train mode (batch statistics, like
  the current batch's), but their BatchNorm running statistics are restored afterwards: in
  PyCIL every step moves them once per old task (K times for one current batch).
* **No NME.** GEM classifies with its network ("cnn"), as in the paper; a nearest-mean
  classifier is single-label and would keep GEM out of the multi-label scenario.

Scenarios: the constraint is loss-agnostic, so the multi-label form is the paper's
algorithm with the objective's binary cross-entropy over each phase's columns (an exemplar
keeps the labels of the phase it was stored in: those columns); few-shot sessions train on
their shots constrained by the base session's exemplars.
"""

from __future__ import annotations

import numpy as np
import torch

from audiocil.core import Stage, Task
from audiocil.methods.base import Strategy
from audiocil.schema import NONNEG
from audiocil.solvers.gem import project_gradient


class GEM(Strategy):
    """Args (beyond :class:`Strategy`'s):
        margin: gamma >= 0 of the projection (PyCIL 0, the paper's runs 0.5).
    """

    scenarios = ("standard", "fewshot", "multilabel")
    config_ranges = {"margin": NONNEG}
    needs_memory = True

    def __init__(self, *args, margin: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.memory is None:
            raise ValueError("method=gem needs a memory: set method.memory.size or method.memory.per_class")
        if margin < 0:
            raise ValueError(f"method.margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.spans: list[list[int]] = []  # [known, total] of every task so far
        # (inputs, targets, lo, hi) of each earlier task's exemplars, set when a stage begins
        self._old: list[tuple[torch.Tensor, torch.Tensor, int, int]] = []

    def extra_state(self) -> dict:
        return {"spans": self.spans}

    def load_extra_state(self, state: dict) -> None:
        self.spans = [[int(a), int(b)] for a, b in state.get("spans", [])]

    def before_task(self, task: Task, dm) -> None:
        super().before_task(task, dm)
        # the earlier tasks (a few-shot trial restarts from the base session's spans)
        self.spans = [s for s in self.spans if s[1] <= task.known] + [[task.known, task.total]]

    def train_indices(self, task: Task, dm) -> np.ndarray:
        return dm.own_indices  # the memory only constrains the steps

    def stages(self, task: Task, dm) -> list[Stage]:
        return [self.train_stage(task, begin=self.load_memory)]

    def load_memory(self, dm) -> None:
        """Gather each earlier task's exemplars (inputs and targets) for the constraints."""
        assert self.memory is not None
        self._old = []
        for lo, hi in self.spans[:-1]:
            parts = [self.memory.exemplars.get(c, np.zeros(0, dtype=np.int64)) for c in range(lo, hi)]
            idx = np.concatenate(parts).astype(np.int64)
            if len(idx):
                self._old.append((dm.data["train"][idx], dm.targets["train"][idx], lo, hi))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logits, _ = self.network(x)
        return self.objective.loss(logits, y, lo=self.known), {}  # the new classes' logits

    # ---- the projection ---------------------------------------------------------------------
    def old_task_gradients(self, params: list[torch.nn.Parameter]) -> torch.Tensor:
        """(K, P) flattened gradient of each earlier task's exemplar loss over its own logits,
        with the network in its current mode; BatchNorm running statistics are restored."""
        self._old = [(x.to(self.device), y.to(self.device), lo, hi) for x, y, lo, hi in self._old]
        saved = {n: b.detach().clone() for n, b in self.network.named_buffers()}
        rows = []
        try:
            with torch.enable_grad():
                for x, y, lo, hi in self._old:
                    logits, _ = self.network(x)
                    loss = self.objective.loss(logits, y, lo, hi)
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
                    rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                           for p, g in zip(params, grads, strict=True)]))
        finally:
            with torch.no_grad():
                for n, b in self.network.named_buffers():
                    b.copy_(saved[n])
        return torch.stack(rows)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self._old or self.stage is None or self.stage.name != "train":
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        g = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params])
        G = self.old_task_gradients(params)
        g_tilde, _ = project_gradient(g, G.to(g.dtype), self.margin)
        projected = g_tilde is not g
        self.log("train/gem_projected", float(projected), batch_size=1)
        if not projected:
            return  # nothing violated: the raw gradient, untouched
        offset = 0
        for p in params:
            chunk = g_tilde[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is None:
                p.grad = chunk.clone()
            else:
                p.grad.copy_(chunk)
