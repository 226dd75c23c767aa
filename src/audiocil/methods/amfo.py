"""AMFO: few-shot class-incremental audio classification with adaptive mitigation of
forgetting and overfitting (Y. Li, J. Li, Y. Si, J. Tan, Q. He, IEEE/ACM TASLP 32,
2297-2311, 2024, doi:10.1109/TASLP.2024.3385287; official code ``Jialongdustin/AMFO``,
``models/AMFO.py``, ``train.py``, ``Inc_train.py``, ``exemplar.py``).

Model on the encoder's embedding h:

- a task-general layer ``g = G h`` shared by all sessions (the code's ``fc1``), trained in
  the base session and frozen afterwards;
- per incremental session s, a task-specific layer ``a_s = cos(h, A_s)`` (``fc_aux``;
  initialised from G) with a learnt gate ``alpha_s = sigmoid(beta * mean_batch(a_s))``
  whose sharpness beta = 1 + epoch grows during the session and which is frozen at its end,
  kept sparse by ``relu(|alpha_s|_1 / D - r)``; the session's classes see
  ``z_s = l2norm(gamma * g + alpha_s * a_s)`` (the base classes see g);
- two cosine heads per session on z_s: one trained with a positive margin (CosFace,
  m = 0.1, scale 32) for discrimination, one with a negative margin (m = -0.5) for
  transferable features;
- a fusion module (a 2C-64-2 network on the two heads' softmaxes, re-made every session)
  that weighs the two heads' logits; its output is the prediction, trained by
  cross-entropy on 16x the fused logits, plus a binary "is it a novel class" loss.

Base session (stage ``train``): encoder, G, base heads and fusion, loss weights margin 1,
fusion 2.5, binary 40 (the code's ``train.py`` for LS-100); the best base-class validation
epoch is kept (the code selects on test data); each base class's mean and covariance are
stored. lr 0.003, not the code's 0.1: at logit scale 32 + 2.5 x 16 on unit-norm features
the first steps at 0.1 inflate the norms and the session stays near chance (the grid is in
the yaml).

Incremental session (stage ``session``, ``Inc_train.py``): encoder, G and earlier sessions
frozen; the new A_s, heads and a fresh fusion trained (SGD momentum 0.9, dampening 0.5, lr
0.003 for the same reason) for 130 epochs of batches of 256 on the supports' embeddings plus
Gaussian pseudo-features (5 per new class, 10 per old class, redrawn every 2 epochs), with
the code's weights (margin 2, fusion 10, binary 0.4, compression 0.1, r 0.1, gamma 0.2) and a
distillation (T 0.5) of the previous positive-head logits. New classes' K-shot covariances
are calibrated with the base classes' by softmax similarity (``Distribution.statistic_cov``).

Differences from the code: the code's negative-margin head reads a shallow-layer
embedding in the base session; here both heads read the same embedding (the backbone is
a black box). With the old sessions' parameters frozen (the code's ``--optimizer part``)
the old-class logits do not change, so the distillation term stays at its minimum.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from audiocil.core import Stage, Task
from audiocil.data.datamodule import TensorItems
from audiocil.losses.fewshot import (
    calibrate_covariance,
    class_covariances,
    class_means,
    compression_penalty,
    cosface_loss,
    cosine_logits,
    gate,
    gaussian_factors,
    sample_gaussian,
    soft_distillation,
)
from audiocil.methods.base import structural
from audiocil.methods.prototype import FewShotStrategy


def fusion_net(n_classes: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2 * n_classes, hidden), nn.ReLU(), nn.Linear(hidden, 2))


class AMFO(FewShotStrategy):
    """Args (beyond :class:`Strategy`'s; every value in ``conf/method/amfo.yaml``):
        margin_scale, m_pos, m_neg: CosFace scale and the two heads' margins.
        fused_scale: the scale of the fused logits in the cross-entropy (16).
        gamma: weight of the task-general part in ``z_s``.
        hidden: hidden units of the fusion module.
        base_loss: weights ``margin``, ``fusion``, ``binary`` of the base session's loss.
        session_loss: the same in the sessions, plus ``distill``, ``kd_T``,
            ``compression``, ``r``.
        replay: Gaussian pseudo-features ``new_per_class``, ``old_per_class``, redrawn
            every ``resample_every`` epochs; ``calibrate``, ``calibration_scale``.
        session_batch_size: the incremental sessions' batch size.
        later_tasks: the incremental sessions' ``epochs`` and ``optimizer``.
    """

    scenarios = ("fewshot",)

    def __init__(self, *args, margin_scale: float, m_pos: float, m_neg: float,
                 fused_scale: float, gamma: float, hidden: int, base_loss: Mapping,
                 session_loss: Mapping, replay: Mapping, session_batch_size: int,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        D = self.network.backbone.out_dim
        self.s_m, self.m_pos, self.m_neg, self.s_f = margin_scale, m_pos, m_neg, fused_scale
        self.gamma, self.hidden = gamma, hidden
        self.base_loss, self.session_loss = dict(base_loss), dict(session_loss)
        self.replay, self.session_batch_size = dict(replay), int(session_batch_size)
        self.general = nn.Linear(D, D, bias=False)
        self.specific = nn.ParameterList()  # A_s of sessions 1..S
        self.pos, self.neg = nn.ParameterList(), nn.ParameterList()  # heads of sessions 0..S
        self.fusion = fusion_net(1, hidden)  # made for the seen classes in before_task
        self.register_buffer("gates", torch.zeros(0, D))
        self.register_buffer("means", torch.zeros(0, D))
        self.register_buffer("covs", torch.zeros(0, D, D))
        self.register_buffer("session_alpha", torch.zeros(0))  # the trained session's gate
        self._session: dict = {}  # the current session's supports, statistics, replay draw

    # ---- the model on embeddings ---------------------------------------------------------------
    def heads(self, h: torch.Tensor, alpha: torch.Tensor | None = None, sessions: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive- and negative-margin cosines (B, C) of the first ``sessions`` + 1 sessions.
        ``alpha`` replaces the stored gate of the session being trained."""
        n = len(self.pos) if sessions is None else sessions + 1
        g = self.general(h)
        zs = [g]
        for s in range(1, n):
            a = cosine_logits(h, self.specific[s - 1])
            gs = alpha if alpha is not None and s == len(self.specific) else self.gates[s - 1]
            zs.append(self.session_embedding(g, a, gs))
        P = torch.cat([cosine_logits(z, self.pos[s]) for s, z in enumerate(zs)], 1)
        N = torch.cat([cosine_logits(z, self.neg[s]) for s, z in enumerate(zs)], 1)
        return P, N

    def session_embedding(self, g: torch.Tensor, a: torch.Tensor, gate: torch.Tensor
                          ) -> torch.Tensor:
        """z_s = l2norm(gamma * g + alpha_s * a_s): what session s's heads read."""
        return F.normalize(self.gamma * g + gate * a, dim=1)

    def fuse(self, P: torch.Tensor, N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.fusion(torch.cat([P.softmax(1), N.softmax(1)], 1))
        w = scores.softmax(1)
        return w[:, :1] * P + w[:, 1:] * N, scores

    def loss(self, P, N, y, weights: Mapping, base: int) -> torch.Tensor:
        fused, scores = self.fuse(P, N)
        margin = cosface_loss(P, y, self.s_m, self.m_pos) + cosface_loss(N, y, self.s_m, self.m_neg)
        return (weights["margin"] * margin + weights["fusion"] * F.cross_entropy(self.s_f * fused, y)
                + weights["binary"] * F.cross_entropy(self.s_f * scores, (y >= base).long()))

    # ---- base session (Lightning) -------------------------------------------------------------
    def before_task(self, task: Task, dm) -> None:
        self.task = task
        if task.known == 0:
            self.add_base_heads(task.total)
            return
        # a session: the supports' embeddings and statistics, then the session's new parts
        feats, labels = self.labelled_features(dm, dm.own_indices)
        classes = range(task.known, task.total)
        means, covs = class_means(feats, labels, classes), class_covariances(feats, labels, classes)
        old_sessions = len(self.pos) - 1  # the previous model: the current one before growing
        self.grow(task, means)
        self._session = {"feats": feats, "labels": labels, "means": means, "old": old_sessions,
                         "covs": self.calibrated(task, feats, labels, covs), "draw": None}

    def stages(self, task: Task, dm) -> list[Stage]:
        if task.known == 0:
            return [self.train_stage(task)]
        return [self.train_stage(
            task, name="session", params=lambda: [self.specific[-1], self.pos[-1], self.neg[-1],
                                                  *self.fusion.parameters()],
            begin=self.session_begin, end=self.session_end, dataset=self.session_items,
            loss=self.session_step, batch_size=self.session_batch_size, validate=False)]

    @structural
    def add_base_heads(self, n_classes: int) -> None:
        D = self.general.in_features
        for heads in (self.pos, self.neg):  # nn.Linear's initialisation, as the code's heads
            heads.append(nn.Parameter(nn.Linear(D, n_classes, bias=False).weight.data.clone()))
        self.fusion = fusion_net(n_classes, self.hidden).to(self.device)

    @structural
    def add_session(self, n_classes: int, n_new: int) -> None:
        """A session's task-specific layer, heads (set by :meth:`grow`) and a new fusion."""
        D = self.general.in_features
        self.specific.append(nn.Parameter(torch.zeros(D, D).to(self.general.weight)))
        self.pos.append(nn.Parameter(torch.zeros(n_new, D).to(self.general.weight)))
        self.neg.append(nn.Parameter(torch.zeros(n_new, D).to(self.general.weight)))
        self.fusion = fusion_net(n_classes, self.hidden).to(self.device)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        P, N = self.heads(self.network.embed(x))
        return self.loss(P, N, y, self.base_loss, self.total), {}

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.fuse(*self.heads(h))[0]

    # ---- end of a session ---------------------------------------------------------------------
    def after_task(self, task: Task, dm) -> None:
        if task.known == 0:
            feats, labels = self.labelled_features(dm, dm.own_indices)
            classes = range(task.known, task.total)
            means, covs = class_means(feats, labels, classes), class_covariances(feats, labels, classes)
        else:
            means, covs = self._session["means"], self._session["covs"]
            self._session = {}
        self.means = torch.cat([self.means[:task.known], means.to(self.means)])
        self.covs = torch.cat([self.covs[:task.known], covs.to(self.covs)])

    def grow(self, task: Task, means: torch.Tensor) -> None:
        G = self.general.weight.detach()
        self.add_session(task.total, task.new)
        init = F.normalize(self.general(means).detach(), dim=1)
        with torch.no_grad():
            self.specific[-1].copy_(G)
            self.pos[-1].copy_(init)
            self.neg[-1].copy_(init)
        self.gates = torch.cat([self.gates, torch.ones(1, G.shape[1]).to(self.gates)])

    def calibrated(self, task: Task, feats, labels, covs: torch.Tensor) -> torch.Tensor:
        """New classes' covariances mixed with the base classes' (see the module doc)."""
        if not self.replay["calibrate"]:
            return covs
        B = len(self.pos[0])
        with torch.no_grad():
            P, _ = self.heads(feats)
        out = []
        for i, c in enumerate(range(task.known, task.total)):
            sim = torch.cat([P[labels == c, :B], P[labels == c, c:c + 1]], 1)
            w = (self.replay["calibration_scale"] * sim).softmax(1).mean(0)
            out.append(calibrate_covariance(covs[i].to(w), self.covs[:B].to(w), w))
        return torch.stack(out)

    # ---- an incremental session: a training stage on features ------------------------------
    def session_begin(self, dm) -> None:
        self.session_alpha = self.gates[-1].clone()  # restored from an epoch checkpoint, if any

    def session_end(self, dm) -> None:
        self.gates[-1] = self.session_alpha.detach().to(self.gates)

    def session_items(self, epoch: int) -> TensorItems:
        """Supports + Gaussian pseudo-features of new and old classes, redrawn every
        ``resample_every`` epochs from a generator seeded by (seed, task, draw). The earlier
        sessions' parts are frozen, so their cosines (and the previous model's logits, the
        distillation target) are computed once per draw, and served with the features."""
        ses, rp, task = self._session, self.replay, self.task
        draw = epoch // int(rp["resample_every"])
        if ses["draw"] != draw:
            gen = torch.Generator().manual_seed(hash((self.session_seed(task), draw)) % (2**62))
            old_f = gaussian_factors(self.covs[:task.known]).to(self.device)
            xo, yo = sample_gaussian(self.means[:task.known], old_f, rp["old_per_class"], gen)
            xn, yn = sample_gaussian(ses["means"].to(self.device),
                                     gaussian_factors(ses["covs"]).to(self.device), rp["new_per_class"], gen)
            X = torch.cat([ses["feats"], xn, xo])
            Y = torch.cat([ses["labels"], yn.to(self.device) + task.known, yo.to(self.device)])
            with torch.no_grad():
                P_old, N_old = self.heads(X, sessions=ses["old"])
                items = (X, self.general(X), P_old, N_old)
            ses["items"] = TensorItems(tuple(t.cpu() for t in items), Y.cpu())
            ses["draw"] = draw
        return ses["items"]

    def session_step(self, x: tuple, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The session's loss on a batch of features: the gate follows the batch's new-class
        clips (its sharpness grows with the epoch) and is kept for batches without any."""
        X, G, P_old, N_old = x
        lw, base = self.session_loss, len(self.pos[0])
        new = y >= self.known
        s = cosine_logits(X, self.specific[-1])
        alpha = gate(s[new], 1.0 + self.current_epoch) if new.any() else self.session_alpha
        z = self.session_embedding(G, s, alpha)
        P = torch.cat([P_old, cosine_logits(z, self.pos[-1])], 1)
        N = torch.cat([N_old, cosine_logits(z, self.neg[-1])], 1)
        loss = self.loss(P, N, y, lw, base) + lw["distill"] * soft_distillation(
            self.s_f * P, self.s_f * P_old, lw["kd_T"])
        if new.any():
            loss = loss + lw["compression"] * compression_penalty(alpha, lw["r"])
        self.session_alpha = alpha.detach()
        return loss, {}
