"""Exemplar memory shared by every rehearsal method: indices into the training set.

Selection follows iCaRL (Rebuffi et al., CVPR 2017): herding picks, one at a time, the
sample that brings the mean of the chosen set closest to the class mean; the stored order
is the herding order, so shrinking a class's share keeps its best exemplars.

Herding runs on the device of the features it is given, for all the classes of a task at
once (:func:`herding_select_classes`: one greedy step picks one exemplar of every class);
:class:`FeatureBank` holds the embeddings of one task's end (candidates and exemplars), each
clip embedded once, so the class means reuse the rows that herding saw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: float64 elements of a (classes, clips, D) block herded at once on the CPU (2 MB: the
#: block's candidate arrays stay in cache; on an accelerator every class goes at once)
CPU_BLOCK_ELEMENTS = 2**18


def herding_select_classes(features: torch.Tensor, counts: Sequence[int], m: int,
                           block: int | None = None) -> torch.Tensor:
    """Herding orders of several classes at once, computed on ``features``' device.

    The same picks as running :func:`herding_select` on each class (the same float64
    arithmetic, element by element; ties go to the first row): each step of the greedy loop
    picks one exemplar of every class of a block that still has candidates.

    Args:
        features: (N, D) embeddings, the rows of class 0 first, then those of class 1, ...;
            L2-normalised here (in float64; float32 on a device without float64, MPS).
        counts: (C,) rows of each class (their sum is N; a class may have none).
        m: exemplars to pick per class (at most its count).
        block: classes herded together (default: all of them on an accelerator; on the CPU
            as many as :data:`CPU_BLOCK_ELEMENTS` allows, at least one).

    Returns:
        (C, M) int64 on ``features``' device, M = min(m, max(counts)): row c holds the
        positions (within class c's rows) of its ``min(m, counts[c])`` exemplars in herding
        order, then -1.
    """
    counts = [int(n) for n in counts]
    if sum(counts) != len(features):
        raise ValueError(f"herding: counts sum to {sum(counts)}, but there are {len(features)} rows")
    dev = features.device
    n_cls, steps = len(counts), min(int(m), max(counts, default=0))
    chosen = torch.full((n_cls, max(steps, 0)), -1, dtype=torch.long, device=dev)
    if steps <= 0:
        return chosen
    dtype = torch.float32 if dev.type == "mps" else torch.float64
    feats = F.normalize(features.to(dtype), dim=1)  # (N, D)
    if block is None:
        per_class = max(counts) * feats.shape[1]
        block = n_cls if dev.type != "cpu" else max(1, CPU_BLOCK_ELEMENTS // per_class)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for c in range(0, n_cls, block):
        part = counts[c:c + block]
        got = _herd(feats[starts[c]:starts[c + len(part)]], part, steps)
        chosen[c:c + len(part), :got.shape[1]] = got
    return chosen


def _herd(feats: torch.Tensor, counts: list[int], m: int) -> torch.Tensor:
    """:func:`herding_select_classes` of one block: normalised (N, D) rows of ``counts``
    classes -> (C, min(m, max(counts))) positions, -1 past a class's count."""
    dev, n_cls, n_max = feats.device, len(counts), max(counts)
    steps = min(m, n_max)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # each class's mean, as herding_select takes it (a padded sum would round differently)
    zero = feats.new_zeros(feats.shape[1])
    mu = torch.stack([feats[a:a + n].mean(dim=0) if n else zero
                      for a, n in zip(starts.tolist(), counts, strict=True)])  # (C, D)
    cls = np.repeat(np.arange(n_cls), counts)
    pos = np.arange(len(feats)) - np.repeat(starts, counts)
    cls_t, pos_t = torch.from_numpy(cls).to(dev), torch.from_numpy(pos).to(dev)
    padded = feats.new_zeros(n_cls, n_max, feats.shape[1])  # (C, N_max, D)
    padded[cls_t, pos_t] = feats
    available = torch.zeros(n_cls, n_max, dtype=torch.bool, device=dev)
    available[cls_t, pos_t] = True
    count_t = torch.tensor(counts, device=dev)
    rows = torch.arange(n_cls, device=dev)
    running = torch.zeros_like(mu)  # (C, D) sum of the chosen rows
    buf = torch.empty_like(padded)
    chosen = torch.full((n_cls, steps), -1, dtype=torch.long, device=dev)
    for k in range(1, steps + 1):
        # squared distance of the class mean to each candidate mean (running + f) / k,
        # computed as herding_select does: ((mu - (running + f) / k) ** 2).sum(-1)
        torch.add(running[:, None], padded, out=buf)
        buf.div_(k)
        torch.sub(mu[:, None], buf, out=buf)
        dist = buf.pow_(2).sum(dim=2)  # (C, N_max)
        dist.masked_fill_(~available, float("inf"))
        i = dist.argmin(dim=1)  # (C,): the first of equal minima
        active = count_t >= k  # classes with a k-th exemplar
        chosen[:, k - 1] = torch.where(active, i, -1)
        available[rows, i] &= ~active
        running += padded[rows, i] * active[:, None]
    return chosen


def herding_select(features: torch.Tensor, m: int) -> list[int]:
    """Indices (into ``features``) of ``m`` exemplars in herding order.

    Args:
        features: (N, D) embeddings of one class; they are L2-normalised here.
        m: how many to pick (at most N).
    """
    return herding_select_classes(features, [len(features)], m)[0].tolist()


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
            embed: maps dataset indices to (N, D) features; herding calls it once, with the
                clips of every new class (class by class), and runs where they are.
            n_classes: number of classes known after this task.
        """
        m = self.quota(n_classes)
        for c in list(self.exemplars):
            self.exemplars[c] = self.exemplars[c][:m]
        pools = {c: np.asarray(v, dtype=np.int64) for c, v in sorted(new_classes.items())}
        if self.selection == "random":
            for c, idx in pools.items():
                rng = np.random.default_rng([self.seed, c])
                self.exemplars[c] = idx[rng.permutation(len(idx))[:m]]
            return
        if not pools:
            return
        counts = [len(v) for v in pools.values()]
        picks = herding_select_classes(embed(np.concatenate(list(pools.values()))), counts, m)
        picks = picks.cpu().numpy()  # (C, M): the one copy to the host
        for row, (c, idx) in enumerate(pools.items()):
            self.exemplars[c] = idx[picks[row, :min(m, len(idx))]]

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


class FeatureBank:
    """Embeddings of training clips by one network state, each clip embedded once.

    Herding and the class means at the end of a task read the same rows: a clip asked for
    again is served from the bank; the clips not embedded yet are embedded in one call.

    Args:
        embed: dataset indices (N,) -> (N, D) embeddings (kept where they are computed, e.g.
            on the strategy's device).
    """

    def __init__(self, embed: Callable[[np.ndarray], torch.Tensor]) -> None:
        self._embed = embed
        self._index = np.zeros(0, dtype=np.int64)  # dataset index of each row, sorted
        self._rows: torch.Tensor | None = None     # (len(_index), D)
        self.computed = 0  # rows embedded so far

    def __call__(self, indices: np.ndarray) -> torch.Tensor:
        """(len(indices), D) embeddings of clips ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        new = np.setdiff1d(idx, self._index)  # sorted, unique
        if len(new):
            rows = self._embed(new)
            self.computed += len(new)
            if self._rows is None:
                self._index, self._rows = new, rows
            else:
                index = np.concatenate([self._index, new])
                order = np.argsort(index, kind="stable")
                self._index = index[order]
                self._rows = torch.cat([self._rows, rows])[torch.from_numpy(order).to(rows.device)]
        if self._rows is None:  # nothing asked for yet
            return torch.zeros(0, 0)
        at = torch.from_numpy(np.searchsorted(self._index, idx)).to(self._rows.device)
        return self._rows[at]

    def class_means(self, groups: Mapping[int, np.ndarray], n: int, dim: int) -> torch.Tensor:
        """(n, dim) float32 unit-norm means of each group's unit-norm embeddings (iCaRL's
        class prototypes: :func:`audiocil.heads.functional.class_mean`, the same figures),
        on the bank's device. ``groups`` maps a class position (< n) to its clips; every
        clip not in the bank yet is embedded in one call; a class without clips gets a zero
        row (at distance 1 from every normalised embedding)."""
        parts = {int(c): np.asarray(v, dtype=np.int64) for c, v in groups.items() if len(v)}
        if not parts:
            return torch.zeros(n, dim)
        order = sorted(parts)
        feats = F.normalize(self(np.concatenate([parts[c] for c in order])).float(), dim=1)
        means = feats.new_zeros(n, dim)
        a = 0
        for c in order:  # a mean over each class's own rows, as class_mean's (not a padded sum)
            means[c] = feats[a:a + len(parts[c])].mean(dim=0)
            a += len(parts[c])
        return F.normalize(means, dim=1)
