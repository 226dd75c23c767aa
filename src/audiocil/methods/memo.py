"""Outputs of frozen modules kept per training clip for one stage (issue 13, item 1).

A method that distils from a frozen teacher (LwF, iCaRL, WA, BiC, PODNet, COIL, FOSTER, the
multi-label distillers) runs the teacher on every batch of every epoch, although, when the
inputs of a clip do not change from one epoch to the next (log-mels from the feature cache,
no SpecAugment), neither do the teacher's outputs. :class:`OutputMemo` keeps them, keyed by
the clip's index in the stage's dataset: the first epoch computes them batch by batch as
before, the later ones read them back. A batch with a clip not seen yet is computed whole.

The memo lives for one stage (the teacher and the stage's dataset are fixed inside it) and
only while a training batch is being processed (``Strategy.training_step`` sets the batch's
clip indices); anything else (evaluation, herding, a stage's own datasets) calls the module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _rows(out, k: int):
    """Row ``k`` of every tensor of a (nested tuple/list of) tensor output, as copies."""
    if isinstance(out, torch.Tensor):
        return out[k].clone()
    return type(out)(_rows(o, k) for o in out)


def _stack(rows: Sequence):
    """The inverse of :func:`_rows` over a batch of rows."""
    first = rows[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(rows))
    return type(first)(_stack([r[i] for r in rows]) for i in range(len(first)))


def _nbytes(out) -> int:
    if isinstance(out, torch.Tensor):
        return out.numel() * out.element_size()
    return sum(_nbytes(o) for o in out)


class OutputMemo:
    """Per-clip outputs of frozen modules within one stage, up to ``max_bytes`` in all.

    Args:
        max_bytes: once the kept outputs would pass this, new batches are computed and not
            kept (a teacher whose outputs are large, e.g. PODNet's stage maps, then costs what
            it cost before, never more memory than this).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = self.misses = 0
        self.batch: list[int] | None = None
        self._tables: dict[tuple, dict[int, object]] = {}

    def __call__(self, module: nn.Module, x: torch.Tensor, **kwargs):
        """``module(x, **kwargs)`` for the current training batch, from the memo when every
        clip of the batch is in it."""
        if self.batch is None or x.shape[0] != len(self.batch):
            return module(x, **kwargs)
        table = self._tables.setdefault((id(module), tuple(sorted(kwargs.items()))), {})
        if all(i in table for i in self.batch):
            self.hits += 1
            return _stack([table[i] for i in self.batch])
        self.misses += 1
        out = module(x, **kwargs)
        row = _nbytes(out) // max(len(self.batch), 1)
        new = [k for k, i in enumerate(self.batch) if i not in table]
        if self.nbytes + row * len(new) <= self.max_bytes:
            for k in new:
                table[self.batch[k]] = _rows(out, k)
            self.nbytes += row * len(new)
        return out
