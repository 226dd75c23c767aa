"""PAN: few-shot class-incremental audio classification using a dynamically expanded
classifier with self-attention modified prototypes (Y. Li, W. Cao, W. Xie, J. Li,
E. Benetos, IEEE Transactions on Multimedia, 2023, doi:10.1109/TMM.2023.3280011; official
code ``vinceasvp/FCAC``, ``models/stdu``).

1. Base session: the encoder and a linear head are trained with cross-entropy on the
   base classes (the code's "standard train"); the epoch with the best accuracy on the
   base classes' validation clips is kept.
2. Pseudo-incremental episodic training (the code's "incremental train"): the base
   classes are split into pseudo-base (the first 35/60) and pseudo-novel classes. Each
   episode draws ``low_way`` pseudo-base and ``way`` pseudo-novel classes with ``shot``
   support and ``query`` query clips each; the prototypes are the support means, and a
   one-head self-attention block over the set {prototypes, query} (the code's
   prototype-query attention, PQA) adapts the prototypes to each query; the logits are
   ``scale * cos(query', prototype')`` (scale 16) and the loss is cross-entropy over the
   episode's classes. The attention (lr 2e-4) and the encoder (lr 2e-4, batch-norm
   statistics frozen as in the code) are trained with Nesterov SGD, weight decay 5e-4.
3. The classifier is a bank of prototypes, one per class, expanded at every session:
   base prototypes are the mean embeddings of all base training clips; in incremental
   sessions everything is frozen and each new class's prototype is the mean of its
   support embeddings. At test time the attention block modifies the prototypes of every
   seen class for each test clip, exactly as in the episodes.

Differences from the code: the code pre-trains the encoder on the pseudo-base classes
only, runs the episodes, then re-trains the encoder on all base classes with
cross-entropy; here the encoder is pre-trained once on all base classes before the
episodes (one base training, as for the other methods), so the pseudo-novel classes are
not unseen by the encoder. The code's second attention module over support embeddings
(``transatt_proto``, not used at test time by the published configuration) and its
10-step fine-tuning of the new prototypes are left out: the new prototypes are the
support means, as the paper describes the expanded classifier.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from audiocil.losses.fewshot import SelfAttention, class_means, cosine_logits
from audiocil.methods.prototype import FewShotStrategy
from audiocil.scenarios.fewshot import episode
from audiocil.scenarios.standard import Task

META_DEFAULTS = {"epochs": 1, "episodes": 50, "low_way": 5, "way": 5, "shot": 5, "query": 15,
                 "pseudo_base_fraction": 35 / 60, "lr_encoder": 2e-4, "lr_attention": 2e-4,
                 "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}


def pqa_logits(attention: torch.nn.Module, query: torch.Tensor, protos: torch.Tensor,
               scale: float) -> torch.Tensor:
    """Prototype-query attention: (B, D) queries, (C, D) prototypes -> (B, C) logits.

    For each query the set {prototypes, query} goes through the self-attention block;
    the adapted query is compared with the adapted prototypes by scaled cosine.
    """
    B, C = len(query), len(protos)
    tokens = torch.cat([protos.unsqueeze(0).expand(B, C, -1), query.unsqueeze(1)], dim=1)
    out = attention(tokens)
    return scale * cosine_logits(out[:, C], out[:, :C])


class PAN(FewShotStrategy):
    """Args (beyond :class:`Strategy`'s; every value in ``conf/method/pan.yaml``):
        scale: the cosine logits' scale (code: temperature 16).
        attn_dropout: dropout of the attention block (code: 0.5).
        meta: the pseudo-incremental episodic training (:data:`META_DEFAULTS`).
    """

    scenarios = ("fewshot",)

    def __init__(self, *args, scale: float = 16.0, attn_dropout: float = 0.5,
                 meta: Mapping | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        dim = self.network.backbone.out_dim
        self.scale = float(scale)
        self.attention = SelfAttention(dim, attn_dropout)
        self.meta = {**META_DEFAULTS, **dict(meta or {})}
        self.register_buffer("prototypes", torch.zeros(0, dim))

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        if len(self.prototypes) < self.total:  # the base session, while training
            return self.network.head(h)
        return pqa_logits(self.attention, h, self.prototypes[:self.total], self.scale)

    def after_task(self, task: Task, dm) -> None:
        if task.known == 0:
            self.pseudo_incremental_training(task, dm)
        feats, labels = self.labelled_features(dm, dm.own_indices)
        means = class_means(feats, labels, range(task.known, task.total))
        self.prototypes = torch.cat([self.prototypes[:task.known], means.to(self.prototypes)])

    def pseudo_incremental_training(self, task: Task, dm) -> None:
        """Episodes over pseudo-base / pseudo-novel splits of the base classes."""
        m = self.meta
        n_steps = int(m["epochs"]) * int(m["episodes"])
        if n_steps == 0:
            return
        clips = dm.own_indices
        labels = dm.targets["train"][clips].numpy()
        n_pb = max(1, min(task.total - 1, int(round(m["pseudo_base_fraction"] * task.total))))
        pseudo_base, pseudo_novel = np.arange(n_pb), np.arange(n_pb, task.total)
        groups = [{"params": self.attention.parameters(), "lr": m["lr_attention"]}]
        if m["lr_encoder"] > 0:
            groups.append({"params": self.network.backbone.parameters(), "lr": m["lr_encoder"]})
        opt = torch.optim.SGD(groups, momentum=m["momentum"], weight_decay=m["weight_decay"],
                              nesterov=bool(m["nesterov"]))
        rng = np.random.default_rng([self.seed, task.index, 7])
        torch.manual_seed(self.session_seed(task))
        self.eval()  # batch-norm statistics frozen (the code trains the episodes in eval mode)
        self.attention.train()
        n_sup = int(m["shot"])
        losses = []
        with torch.enable_grad():
            for _ in range(n_steps):
                pos_b, _ = episode(labels, pseudo_base, m["low_way"], n_sup + m["query"], rng)
                pos_n, _ = episode(labels, pseudo_novel, m["way"], n_sup + m["query"], rng)
                pos = np.concatenate([pos_b, pos_n], axis=1)  # (shot + query, ways)
                x = dm.data["train"][clips[pos.reshape(-1)]].to(self.device)
                feats = self.network.embed(x).view(*pos.shape, -1)
                protos = feats[:n_sup].mean(0)  # (ways, D)
                query = feats[n_sup:].reshape(-1, feats.shape[-1])
                target = torch.arange(pos.shape[1], device=self.device).repeat(len(feats) - n_sup)
                loss = F.cross_entropy(pqa_logits(self.attention, query, protos, self.scale), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        self.eval()
        self.meta_loss = float(np.mean(losses[-10:]))
