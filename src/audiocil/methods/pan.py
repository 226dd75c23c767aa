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
   statistics frozen as in the code) are trained with Nesterov SGD, weight decay 5e-4: the
   base session's second training stage, ``episodes`` (``meta.stage`` in the yaml).
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

import torch
import torch.nn.functional as F

from audiocil.core import Stage, Task
from audiocil.losses.fewshot import SelfAttention, class_means, cosine_logits
from audiocil.methods.prototype import FewShotStrategy


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
        meta: the pseudo-incremental episodes: ``episodes`` per epoch, ``low_way``,
            ``way``, ``shot``, ``query``, ``pseudo_base_fraction``, ``lr_encoder`` and the
            stage's settings ``stage`` (epochs, optimizer: the attention's rate, scheduler).
    """

    scenarios = ("fewshot",)

    def __init__(self, *args, scale: float, attn_dropout: float, meta: Mapping, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        dim = self.network.backbone.out_dim
        self.scale = float(scale)
        self.attention = SelfAttention(dim, attn_dropout)
        self.meta = dict(meta)
        self.register_buffer("prototypes", torch.zeros(0, dim))

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        if len(self.prototypes) < self.total:  # the base session, while training
            return self.network.head(h)
        return pqa_logits(self.attention, h, self.prototypes[:self.total], self.scale)

    def stages(self, task: Task, dm) -> list[Stage]:
        stages = super().stages(task, dm)
        m = self.meta
        if task.known == 0 and int(m["stage"]["epochs"]) * int(m["episodes"]) > 0:
            stages.append(self.episode_stage(task))
        return stages

    def episode_stage(self, task: Task) -> Stage:
        """Episodes over pseudo-base / pseudo-novel splits of the base classes."""
        m = self.meta
        n_pb = max(1, min(task.total - 1, int(round(m["pseudo_base_fraction"] * task.total))))
        groups = [[list(range(n_pb)), int(m["low_way"])],
                  [list(range(n_pb, task.total)), int(m["way"])]]

        def params():
            out = [{"params": list(self.attention.parameters())}]
            if m["lr_encoder"] > 0:
                out.append({"params": list(self.network.backbone.parameters()),
                            "lr": m["lr_encoder"]})
            return out

        return Stage("episodes", int(m["stage"]["epochs"]), optim=dict(m["stage"]),
                     params=params, indices=lambda dm: dm.own_indices, loss=self.episode_loss,
                     eval_modules=lambda: [self.network], validate=False,
                     sampler={"n_way": 0, "n_per": int(m["shot"]) + int(m["query"]),
                              "n_batches": int(m["episodes"]), "groups": groups})

    def episode_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """One episode (a batch laid out as (shot + query, ways), see the sampler)."""
        n_sup, n_per = int(self.meta["shot"]), int(self.meta["shot"]) + int(self.meta["query"])
        ways = len(y) // n_per
        feats = self.network.embed(x).view(n_per, ways, -1)
        protos = feats[:n_sup].mean(0)  # (ways, D)
        query = feats[n_sup:].reshape(-1, feats.shape[-1])
        target = torch.arange(ways, device=x.device).repeat(n_per - n_sup)
        return F.cross_entropy(pqa_logits(self.attention, query, protos, self.scale), target), {}

    def after_task(self, task: Task, dm) -> None:
        feats, labels = self.labelled_features(dm, dm.own_indices)
        means = class_means(feats, labels, range(task.known, task.total))
        self.prototypes = torch.cat([self.prototypes[:task.known], means.to(self.prototypes)])
