"""Exemplar memory shared by every rehearsal method: indices into the training set.

Selection follows iCaRL (Rebuffi et al., CVPR 2017): herding picks, one at a time, the
sample that brings the mean of the chosen set closest to the class mean; the stored order
is the herding order, so shrinking a class's share keeps its best exemplars.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def herding_select(features: torch.Tensor, m: int) -> list[int]:
    """Indices (into ``features``) of ``m`` exemplars in herding order.

    Args:
        features: (N, D) embeddings of one class; they are L2-normalised here.
        m: how many to pick (at most N).
    """
    feats = F.normalize(features.double(), dim=1)
    mu = feats.mean(dim=0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(feats), dtype=torch.bool)
    for k in range(1, min(m, len(feats)) + 1):
        # candidate mean if each sample were added: (running + f) / k
        dist = ((mu[None] - (running[None] + feats) / k) ** 2).sum(dim=1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running += feats[i]
    return chosen


class ExemplarMemory:
    """Per-class exemplar indices with a total budget or a fixed quota per class.

    Args:
        size: total number of exemplars shared by all seen classes (PyCIL's
            ``memory_size``, 2000 in the reference toolbox), or None.
        per_class: a fixed number per class (PyCIL's ``fixed_memory``), or None.
        selection: ``"herding"`` or ``"random"``.
        seed: seed of the random selection.
    """

    def __init__(self, size: int | None = 2000, per_class: int | None = None,
                 selection: str = "herding", seed: int = 0) -> None:
        if (size is None) == (per_class is None):
            raise ValueError("memory: set exactly one of memory.size and memory.per_class")
        if selection not in ("herding", "random"):
            raise ValueError(f"memory.selection must be herding|random, got {selection!r}")
        self.size, self.per_class, self.selection, self.seed = size, per_class, selection, seed
        self.exemplars: dict[int, np.ndarray] = {}  # class position -> dataset indices, best first

    def quota(self, n_classes: int) -> int:
        """Exemplars allowed per class once ``n_classes`` are known."""
        if self.per_class is not None:
            return int(self.per_class)
        return int(self.size) // max(n_classes, 1)

    def update(self, new_classes: dict[int, np.ndarray],
               embed: Callable[[np.ndarray], torch.Tensor], n_classes: int) -> None:
        """Shrink old classes to the new quota and select exemplars of the new classes.

        Args:
            new_classes: class position -> indices of all its training samples.
            embed: maps dataset indices to (N, D) features (used by herding).
            n_classes: number of classes known after this task.
        """
        m = self.quota(n_classes)
        for c in list(self.exemplars):
            self.exemplars[c] = self.exemplars[c][:m]
        for c, idx in sorted(new_classes.items()):
            idx = np.asarray(idx)
            if self.selection == "random":
                rng = np.random.default_rng([self.seed, c])
                pick = rng.permutation(len(idx))[:m]
            else:
                pick = np.asarray(herding_select(embed(idx), m), dtype=np.int64)
            self.exemplars[c] = idx[pick]

    def indices(self) -> np.ndarray:
        """All stored dataset indices, class by class."""
        if not self.exemplars:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.exemplars[c] for c in sorted(self.exemplars)]).astype(np.int64)

    def __len__(self) -> int:
        return int(sum(len(v) for v in self.exemplars.values()))

    def nbytes(self, sample_nbytes: int) -> dict[str, int]:
        """Footprint: the stored indices, and the data they point at."""
        return {"index_bytes": len(self) * 8, "data_bytes": len(self) * int(sample_nbytes)}

    def state_dict(self) -> dict:
        return {"exemplars": {int(c): v.tolist() for c, v in self.exemplars.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.exemplars = {int(c): np.asarray(v, dtype=np.int64) for c, v in state["exemplars"].items()}
