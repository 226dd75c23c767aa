"""Few-shot episodes: ``n_way`` classes x ``n_per`` items per batch (CEC's and META-SC's
``CategoriesSampler``), as a pure draw and as a batch sampler."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def episode(labels: np.ndarray, classes: np.ndarray, n_way: int, n_per: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One episode: ``n_way`` of ``classes`` at random, ``n_per`` items of each.

    Args:
        labels: (N,) class of each item.
        classes: the classes to choose from.
        rng: the generator to draw with.

    Returns:
        (n_per, n_way) item positions (column j holds class ``chosen[j]``), and ``chosen``.
        A class with fewer than ``n_per`` items is drawn with replacement.
    """
    chosen = rng.choice(np.asarray(classes), size=min(n_way, len(classes)), replace=False)
    cols = []
    for c in chosen:
        pool = np.flatnonzero(labels == c)
        cols.append(rng.choice(pool, size=n_per, replace=len(pool) < n_per))
    return np.stack(cols, axis=1), chosen


class EpisodeBatchSampler(Sampler[list[int]]):
    """Batches of ``n_way`` classes x ``n_per`` items, ``n_batches`` per epoch (CEC's and
    META-SC's ``CategoriesSampler``), redrawn each epoch from ``(seed, epoch)``.

    A batch lists its items row by row of the (n_per, ways) episode: the first ``ways`` items
    are one of each chosen class, and so on (``view(n_per, ways, ...)`` recovers the episode).

    Args:
        labels: (N,) class of each item of the dataset the batches index.
        groups: draw from several class groups side by side, ``[[classes, n_way], ...]``
            (PAN's pseudo-base and pseudo-novel classes); ``n_way`` is then unused.
    """

    def __init__(self, labels: np.ndarray, n_way: int, n_per: int, n_batches: int,
                 seed: int, groups: list | None = None) -> None:
        self.labels = np.asarray(labels)
        self.groups = [(np.asarray(c), int(w)) for c, w in groups] if groups else \
            [(np.unique(self.labels), int(n_way))]
        self.n_per, self.n_batches, self.seed, self.epoch = n_per, n_batches, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.n_batches):
            parts = [episode(self.labels, c, w, self.n_per, rng)[0] for c, w in self.groups]
            yield np.concatenate(parts, axis=1).reshape(-1).tolist()

    def __len__(self) -> int:
        return self.n_batches
