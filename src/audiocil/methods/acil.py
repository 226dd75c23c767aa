"""ACIL: Analytic Class-Incremental Learning (Zhuang et al., "ACIL: Analytic
Class-Incremental Learning with Absolute Memorization and Privacy Protection", NeurIPS 2022;
reference code: PyCIL's ``models/acil.py`` / ``utils/inc_net.py:ACILNet``, as in the audio
CIL toolbox, and the official ZHUANGHP/Analytic-continual-learning).

Base task: the backbone and a linear head are trained with cross-entropy (stage ``train``:
the reference's SGD lr 0.1, momentum 0.9, 160 epochs, x0.1 at 120/140, weight decay 5e-4,
batch 128). Then the backbone is frozen for good (a :class:`FrozenCopy`: no gradient, always
in eval mode, so its BatchNorm statistics never move), a fixed random buffer expands its
embedding (``relu(f @ W_B^T)``, :class:`~audiocil.solvers.ridge.RandomBuffer`) and a ridge
classifier (``gamma`` 0.1) is fitted in closed form, in float64, by the recursive update of
:class:`~audiocil.solvers.ridge.RecursiveRidge` over the task's clips in batches of
``il_batch_size`` (4096). The base task's clips are fitted too (the reference's "re-align"),
then every later task's (stage ``analytic``, zero epochs: a closed-form fit). Prediction is
``buffer(f) @ W``, reported as ``cnn`` (the network's classifier, once the base task is
done). After every batch W is the joint ridge solution on every clip seen so far, whatever
the batching ("absolute memorization"); no exemplar is kept (``memory: null``).

The ridge state (R, W) and the buffer's weights are float64 buffers: they are in every
checkpoint. They are built when the base task's fit starts (a structural change), so no
DDP training step ever broadcasts R.

Deviations from the reference:
* ``buffer_size`` defaults to 2048 (R is 32 MB) instead of 8192 (R is 512 MB, a 4096-clip
  update costs ~0.3 TFLOP): CPU-sized; ``method.buffer_size=8192`` is the reference setting.
* The base head has a bias (our growing linear head); the reference's has none. It is only
  used in the base training (and its validation figure), never reported afterwards.
* Nothing is written outside the run directory (the reference saves the base backbone
  under ``logs/``), and the base model is the last epoch's (no test-set selection).

Scenarios: ``standard`` and ``fewshot`` (the frozen backbone after the base session is what
few-shot CIL needs: the sessions' shots are simply more rows of the same regression).
Multi-label is refused: the ridge regresses one-hot targets by least squares, so its outputs
are not log-odds to threshold; and the multi-label protocol zeroes the labels of old
classes on new clips, which an exact ("absolutely memorising") regression would learn as
negatives. The paper defines no multi-label form.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from audiocil.core import Stage, Task
from audiocil.methods.base import FrozenCopy, Strategy, structural
from audiocil.schema import POS, Int
from audiocil.solvers.ridge import RandomBuffer, RecursiveRidge


class ACIL(Strategy):
    """Args (beyond :class:`Strategy`'s):
        buffer_size: width of the random expansion (reference 8192; default here 2048).
        gamma: ridge regularisation (0.1).
        il_batch_size: clips per recursive update (4096); the result does not depend on it.
    """

    scenarios = ("standard", "fewshot")
    config_ranges = {"buffer_size": Int(1), "gamma": POS, "il_batch_size": Int(1)}
    closed_form_stages = ('later_tasks',)
    evaluates_embeddings = True  # the frozen backbone's clips are embedded once for the run
    #: the buffer's activation (DS-AL's streams apply their own)
    buffer_activation: str | None = "relu"

    def __init__(self, *args, buffer_size: int, gamma: float, il_batch_size: int,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.memory is not None:
            raise ValueError(f"method={type(self).__name__.lower()} is exemplar-free: "
                             "set method.memory: null")
        if min(buffer_size, il_batch_size) < 1 or gamma <= 0:
            raise ValueError("method: buffer_size and il_batch_size must be >= 1, gamma > 0")
        self.buffer_size, self.gamma = int(buffer_size), float(gamma)
        self.il_batch_size = int(il_batch_size)
        self.feature_dim = int(self.network.backbone.out_dim)
        self.buffer: RandomBuffer | None = None
        self.ridge: torch.nn.Module | None = None

    # ---- the analytic classifier (DS-AL overrides these three) ---------------------------
    def make_ridge(self) -> torch.nn.Module:
        return RecursiveRidge(self.buffer_size, self.gamma)

    def update_ridge(self, Xb: torch.Tensor, Y: torch.Tensor) -> None:
        """One recursive update: Xb (N, buffer_size) buffer outputs, Y (N, C) one-hot."""
        self.ridge.update(Xb, Y)

    def ridge_logits(self, Xb: torch.Tensor) -> torch.Tensor:
        """(N, buffer_size) -> (N, C) float64."""
        return self.ridge.predict(Xb)

    # ---- structure -------------------------------------------------------------------------
    @structural
    def start_analytic(self) -> None:
        """Freeze the backbone for good and build the buffer and the ridge state."""
        self.network.backbone = FrozenCopy(self.network.backbone)
        self.buffer = RandomBuffer(self.feature_dim, self.buffer_size, self.buffer_activation,
                                   seed=self.seed).to(self.device)
        self.ridge = self.make_ridge().to(self.device)

    # ---- hooks -----------------------------------------------------------------------------
    def before_task(self, task: Task, dm) -> None:
        if self.ridge is None:  # the base task trains a linear head
            super().before_task(task, dm)
        else:
            self.task = task
            self.objective.note_task(task)

    def stages(self, task: Task, dm) -> list[Stage]:
        fit = Stage("analytic", 0, end=self.fit_analytic, validate=False)
        return [self.train_stage(task), fit] if self.ridge is None else [fit]

    @torch.no_grad()
    def fit_analytic(self, dm) -> None:
        """Add the task's own clips to the ridge regression, ``il_batch_size`` at a time."""
        if self.ridge is None:
            self.start_analytic()
        idx = np.asarray(dm.own_indices)
        for a in range(0, len(idx), self.il_batch_size):
            part = idx[a:a + self.il_batch_size]
            Xb = self.buffer(self.embed_indices(dm, part).to(self.device))
            Y = F.one_hot(dm.targets["train"][part].long(), self.total)
            self.update_ridge(Xb, Y.to(self.device))

    def embedding_logits(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.ridge is None:  # during the base training: the linear head
            return super().embedding_logits(h)
        return {"cnn": self.ridge_logits(self.buffer(h)).float()}  # (B, seen)
