"""Embeddings of clips by a frozen encoder, computed once per encoder state.

Few-shot methods test every seen class after every session with an encoder that has not
changed since the base session; the analytic methods and FeTrIL freeze theirs after the
first task. :class:`EmbeddingCache` keeps the (N, D) embeddings of the clips it was asked
for, by split and dataset index, under a key that changes whenever the encoder changes:
:func:`fingerprint`, a hash of the encoder's parameters and buffers (names, dtypes, shapes
and bytes). A key is content, not identity, so the cache survives what rebuilds a strategy
from a checkpoint (few-shot trials restart from the base session's checkpoint; a resumed
run) and is simply refilled once after a change. Nothing of it is in a checkpoint.

Exactness: a row is what the encoder computes for that clip in eval mode, in a batch of
up to ``batch_size`` clips. Batches of two clips or more give the same bits as any other
batch size on the CPU kernels we use (``tests/data/test_embeddings.py`` checks the figures
of whole runs against re-embedding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def fingerprint(module: nn.Module, skip: tuple[str, ...] = ()) -> str:
    """A hash of every parameter and buffer of ``module`` (names, dtypes, shapes, bytes),
    except those whose name starts with one of the ``skip`` prefixes (e.g. ``"head."``).

    Two modules of the same class get the same fingerprint iff their states are equal
    (up to a blake2b collision), whatever their tensors' identity or device.
    """
    h = hashlib.blake2b(digest_size=16)
    for name, t in module.state_dict(keep_vars=False).items():
        if any(name.startswith(s) for s in skip) or not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


class EmbeddingCache:
    """Rows of embeddings by (split, dataset index), valid for one encoder key at a time.

    Args:
        batch_size: clips embedded per call of the embedding function.

    Attributes:
        computed: rows embedded so far (all keys); ``served``: rows returned.
    """

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = int(batch_size)
        self.key: str | None = None
        self.rows: dict[str, torch.Tensor] = {}   # split -> (N_split, D) float32, CPU
        self.have: dict[str, np.ndarray] = {}     # split -> (N_split,) bool
        self.computed = self.served = 0

    def clear(self) -> None:
        self.key, self.rows, self.have = None, {}, {}

    def get(self, key: str, split: str, indices: np.ndarray, n_rows: int,
            embed: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
        """(len(indices), D) float32 CPU embeddings of clips ``indices`` of ``split``.

        Args:
            key: the encoder's :func:`fingerprint`; another key than the last one empties
                the cache first.
            n_rows: clips in the split (the rows kept for it).
            embed: dataset indices (B,) -> (B, D) embeddings, called only for clips not
                already embedded under ``key``, ``batch_size`` at a time, in index order.
        """
        if key != self.key:
            self.clear()
            self.key = key
        idx = np.asarray(indices, dtype=np.int64)
        have = self.have.setdefault(split, np.zeros(int(n_rows), dtype=bool))
        todo = np.unique(idx[~have[idx]])
        for a in range(0, len(todo), self.batch_size):
            part = todo[a:a + self.batch_size]
            e = embed(part).detach().float().cpu()  # (B, D)
            if split not in self.rows:
                self.rows[split] = torch.zeros(len(have), e.shape[1])
            self.rows[split][torch.from_numpy(part)] = e
            have[part] = True
            self.computed += len(part)
        self.served += len(idx)
        if split not in self.rows:  # nothing asked for yet
            return torch.zeros(0, 0)
        return self.rows[split][torch.from_numpy(idx)]
