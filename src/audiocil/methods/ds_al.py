"""DS-AL: Dual-Stream Analytic Learning (Zhuang et al., "DS-AL: A Dual-Stream Analytic
Learning for Exemplar-Free Class-Incremental Learning", AAAI 2024; reference code: PyCIL's
``models/dsal.py`` / ``DSALNet``, which matches the official ZHUANGHP/Analytic-continual-
learning ``analytic/DSAL.py``).

Everything is :class:`~audiocil.methods.acil.ACIL`'s (base training, frozen backbone,
random buffer, closed-form fit in float64 over the task's clips in batches of
``il_batch_size``, base clips included, no exemplars), except the classifier:
:class:`~audiocil.solvers.ridge.DualStreamRidge`. The buffer has no activation; a main
ridge stream (``gamma`` 0.1) is fitted on ``relu(buffer)``; per batch, the main stream's
residual on that batch (after its update), with the old classes' columns zeroed ("previous
label cleansing"), is the target of a compensation ridge stream (``gamma_comp`` 0.1) on
``tanh(buffer)``. Logits: ``main + compensation_ratio * compensation`` (C = 0.6, PyCIL's
CIFAR setting; 1.5 on ImageNet). With C = 0 it is ACIL on ``relu(buffer)``: the joint ridge
regression on every clip seen, whatever the batching; the compensation stream itself
depends on the batching (its targets are residuals of a moving main stream), as in the
reference.

Deviations: as ACIL's (``buffer_size`` 2048 rather than 8192 on a CPU; base head with a
bias; no file written outside the run directory). Scenarios as ACIL's, for its reasons.
"""

from __future__ import annotations

import torch

from audiocil.methods.acil import ACIL
from audiocil.schema import NONNEG, POS
from audiocil.solvers.ridge import DualStreamRidge


class DSAL(ACIL):
    """Args (beyond :class:`ACIL`'s; its ``gamma`` is the main stream's):
        gamma_comp: the compensation stream's ridge regularisation (0.1).
        compensation_ratio: C, the compensation stream's weight in the logits (0.6).
    """

    scenarios = ("standard", "fewshot")
    config_ranges = {"gamma": POS, "gamma_comp": POS, "compensation_ratio": NONNEG}
    closed_form_stages = ('later_tasks',)
    buffer_activation = None

    def __init__(self, *args, gamma_comp: float, compensation_ratio: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gamma_comp, self.compensation_ratio = float(gamma_comp), float(compensation_ratio)

    def make_ridge(self) -> torch.nn.Module:
        return DualStreamRidge(self.buffer_size, self.gamma, self.gamma_comp,
                               self.compensation_ratio)

    def update_ridge(self, Xb: torch.Tensor, Y: torch.Tensor) -> None:
        self.ridge.update(Xb, Y, self.known)  # the old classes' residual columns are cleansed

    def ridge_logits(self, Xb: torch.Tensor) -> torch.Tensor:
        return self.ridge(Xb)
