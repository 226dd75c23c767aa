"""META-SC: few-shot class-incremental audio classification with a stochastic classifier
(Y. Li, W. Cao, J. Li, W. Xie, Q. He, Interspeech 2023; official code
``vinceasvp/meta-sc``, ``models/meta_sc``).

Network: the encoder, then a one-head self-attention block on the embedding (one token:
a residual block with layer norm), then a stochastic cosine classifier whose weights are
sampled as ``w = mu + softplus(sigma - 4) * eps`` while training and are ``mu`` at
evaluation; logits are ``scale * cos(x, w)`` (scale 16).

Base session: cross-entropy over the base classes; SGD with Nesterov momentum, lr 0.01
(the code: 0.1, from a pretrained encoder; from scratch, the cosine classifier's small initial
weights take steps far larger than their norm at 0.1: 46.7 % base validation accuracy on
gm100 against 60.6 % at 0.01, see the yaml) halved every 40 epochs, 200 epochs, weight decay
5e-4, shuffled batches of 128 (the config's ``batch_size_base``). The code keeps the epoch
with the best *test* accuracy; here the best epoch on the base classes' validation clips.

The code's base loader draws episodes instead (50 batches per epoch of 5 classes x 20
clips, its ``CategoriesSampler``; ``episodes`` here), with 200 epochs (10,000 steps) from an
ImageNet-pretrained ResNet-18. From scratch on a budget of a few epochs that does not
train: each step sees 5 of the base classes, so the batch-norm statistics (and the
softmax over all base classes) change with the episode's classes, and the training loss
stays above that of a uniform guess (base accuracy near chance on gm100 with the budget of
``benchmarks/fewshot_table.py``). Episodes are therefore off by default.

After the base session each base class's prototype (the mean attended embedding of its
training clips) goes into a prototype bank.

Incremental session (a training stage, ``session``, on the supports' embeddings computed
once by the frozen encoder): encoder and attention are frozen; only the classifier's ``mu``
and ``sigma`` (of every seen class) are trained, for 100 full-batch steps (SGD lr 0.1,
momentum 0.9, dampening 0.9, no weight decay) on
``lamda_proto * CE(stored old-class prototypes) + (1 - lamda_proto) * CE(new support
features)`` (lamda_proto 0.6), both through the sampled weights. As in the code, the
support features pass the frozen attention block in training mode (its dropout acts as a
light augmentation) and the new classes' ``mu`` start from small random values. Then the
new classes' mean support features join the prototype bank.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from audiocil.core import Stage, Task
from audiocil.data.datamodule import TensorItems
from audiocil.losses.fewshot import SelfAttention, class_means, cosine_logits, stochastic_weights
from audiocil.methods.base import structural
from audiocil.methods.prototype import FewShotStrategy


class StochasticClassifier(nn.Module):
    """Cosine classifier with Gaussian weights; grows as classes arrive. (B, D) -> (B, C)."""

    def __init__(self, dim: int, scale: float = 16.0, sigma_offset: float = 4.0) -> None:
        super().__init__()
        self.scale, self.offset = scale, sigma_offset
        self.mu = nn.Parameter(torch.zeros(0, dim))
        self.sigma = nn.Parameter(torch.zeros(0, dim))

    def grow(self, n: int) -> None:
        mu = 0.01 * torch.randn(n, self.mu.shape[1]).to(self.mu)
        self.mu = nn.Parameter(torch.cat([self.mu.data, mu]))
        self.sigma = nn.Parameter(torch.cat([self.sigma.data, torch.zeros_like(mu)]))

    def forward(self, x: torch.Tensor, stochastic: bool) -> torch.Tensor:
        w = stochastic_weights(self.mu, self.sigma, self.offset, stochastic)
        return self.scale * cosine_logits(x, w)


class MetaSC(FewShotStrategy):
    """Args (beyond :class:`Strategy`'s; every value in ``conf/method/meta_sc.yaml``):
        scale: the cosine logits' scale (code: temperature 16).
        sigma_offset: ``softplus(sigma - offset)`` (code: 4).
        attn_dropout: dropout of the attention block (code: 0.5).
        lamda_proto: weight of the prototype term in incremental sessions (code: 0.6).
        episodes: base-session batches ``{n_way, n_per, n_batches}`` (the code's episodes),
            or None (default) for shuffled batches of ``batch_size``.
        later_tasks: incremental sessions' ``epochs`` (full-batch steps), ``lr``,
            ``momentum``, ``dampening``.
    """

    scenarios = ("fewshot",)

    def __init__(self, *args, scale: float, sigma_offset: float, attn_dropout: float,
                 lamda_proto: float, episodes: Mapping | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        dim = self.network.backbone.out_dim
        self.attention = SelfAttention(dim, attn_dropout)
        self.classifier = StochasticClassifier(dim, scale, sigma_offset)
        self.lamda_proto = float(lamda_proto)
        self.episodes = dict(episodes) if episodes else None
        self.register_buffer("bank", torch.zeros(0, dim))  # one prototype per seen class
        self._supports: TensorItems | None = None  # a session's support embeddings

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Attended embedding (B, D)."""
        return self.attend(self.network.embed(x))

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        return self.attention(h.unsqueeze(1)).squeeze(1)

    def before_task(self, task: Task, dm) -> None:
        self.task = task
        self.grow_classifier(task.new)

    @structural
    def grow_classifier(self, n_new: int) -> None:
        self.classifier.grow(n_new)

    def stages(self, task: Task, dm) -> list[Stage]:
        if task.known == 0:
            return [self.train_stage(task, sampler=self.episodes or "shuffle")]
        return [self.train_stage(task, name="session", params=lambda: [self.classifier.mu,
                                                                      self.classifier.sigma],
                                 begin=self.session_begin, dataset=lambda epoch: self._supports,
                                 loss=self.session_loss, batch_size=len(dm.own_indices),
                                 validate=False)]

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logits = self.classifier(self.embed(x), stochastic=True)[:, :self.total]
        return F.cross_entropy(logits, y), {}

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.attend(h), stochastic=False)[:, :self.total]

    def after_task(self, task: Task, dm) -> None:
        feats, labels = self.labelled_features(dm, dm.own_indices, self.embed)
        means = class_means(feats, labels, range(task.known, task.total))
        self.bank = torch.cat([self.bank[:task.known], means.to(self.bank)])

    # ---- incremental session: a stage of full-batch steps on mu and sigma ------------------
    def session_begin(self, dm) -> None:
        """The support clips' embeddings by the frozen encoder, once (eval mode)."""
        feats, labels = self.labelled_features(dm, dm.own_indices)
        self._supports = TensorItems(feats.cpu(), labels.cpu())

    def session_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``lamda_proto`` CE of the stored prototypes + the rest CE of the attended supports,
        both through the sampled classifier weights. As in the code, the supports pass the
        frozen attention block in training mode (its dropout as a light augmentation)."""
        self.attention.train()
        with torch.no_grad():
            support = self.attend(x)
        self.attention.eval()
        old = torch.arange(self.known, device=x.device)
        logits_p = self.classifier(self.bank, stochastic=True)[:, :self.total]
        logits_s = self.classifier(support, stochastic=True)[:, :self.total]
        loss = (self.lamda_proto * F.cross_entropy(logits_p, old)
                + (1 - self.lamda_proto) * F.cross_entropy(logits_s, y))
        return loss, {}
