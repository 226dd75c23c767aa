"""A bank of class prototypes: nearest-mean classification by cosine or Euclidean distance.

iCaRL's nearest mean of exemplars (Rebuffi et al., CVPR 2017) is ``metric="euclidean"`` on
unit-norm means (:func:`~audiocil.heads.functional.class_mean`); the cosine nearest class
mean of few-shot CIL (e.g. Zhang et al., CEC, CVPR 2021) is ``metric="cosine"``.
"""

from __future__ import annotations

import torch
from torch import nn

from audiocil.heads.functional import cosine_logits, nme_logits

METRICS = ("cosine", "euclidean")


class PrototypeBank(nn.Module):
    """Class prototypes in a buffer ``prototypes`` (C, D), one row per class in order.

    Logits: ``cosine`` gives ``scale * cos(f, p_c)``; ``euclidean`` gives
    ``-scale * |f / |f| - p_c|^2`` (the feature is L2-normalised, the prototype used as
    stored). A zero prototype (a class with no data) has cosine 0 and distance 1.

    Args:
        dim: prototype size D.
        metric: the default metric of :meth:`forward` / :meth:`logits`.
        scale: the default scale (a temperature's inverse; 1 keeps the raw scores).

    Shapes: features (B, D) -> logits (B, C).

    Checkpoints: the buffer's size changes as the bank grows, so :meth:`_load_from_state_dict`
    resizes it to the saved (C, D) before loading: a grown bank loads into a fresh one.
    """

    def __init__(self, dim: int, metric: str = "cosine", scale: float = 1.0) -> None:
        super().__init__()
        self._check_metric(metric)
        self.dim, self.metric, self.scale = int(dim), metric, float(scale)
        self.prototypes: torch.Tensor
        self.register_buffer("prototypes", torch.zeros(0, self.dim))

    @staticmethod
    def _check_metric(metric: str) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {'|'.join(METRICS)}, got {metric!r}")

    @property
    def num_classes(self) -> int:
        return self.prototypes.shape[0]

    def _rows(self, means: torch.Tensor) -> torch.Tensor:
        if means.dim() != 2 or means.shape[1] != self.dim:
            raise ValueError(f"prototypes must be (n, {self.dim}), got {tuple(means.shape)}")
        return means.detach().to(self.prototypes)

    def add(self, means: torch.Tensor) -> None:
        """Append the prototypes (n, D) of n new classes (copied, on the bank's device/dtype)."""
        self.prototypes = torch.cat([self.prototypes, self._rows(means)])

    def grow(self, n_new: int) -> None:
        """Append ``n_new`` zero prototypes, to be set later (:meth:`replace`)."""
        self.add(self.prototypes.new_zeros(n_new, self.dim))

    def replace(self, means: torch.Tensor) -> None:
        """Set the whole bank to ``means`` (C, D), e.g. iCaRL's means recomputed each task."""
        self.prototypes = self._rows(means).clone()

    def logits(self, features: torch.Tensor, metric: str | None = None,
               scale: float | None = None) -> torch.Tensor:
        """(B, C) scores of features (B, D); ``metric`` and ``scale`` default to the bank's."""
        metric = self.metric if metric is None else metric
        scale = self.scale if scale is None else float(scale)
        self._check_metric(metric)
        if metric == "cosine":
            return scale * cosine_logits(features, self.prototypes.to(features.dtype))
        return scale * nme_logits(features, self.prototypes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "prototypes")
        if saved is not None and saved.dim() == 2 and saved.shape[1] == self.dim:
            self.prototypes = self.prototypes.new_empty(saved.shape)  # then copied into
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, classes={self.num_classes}, metric={self.metric}, scale={self.scale}"
