"""Cached teacher outputs (issue 13, item 1): a frozen teacher's outputs on a training clip
are computed once per stage and read back, with the same figures as recomputing them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audiocil.methods.base import FrozenCopy
from audiocil.methods.memo import OutputMemo
from tests.conftest import run_smoke


class Maps(nn.Module):
    """A module with a nested output, as a backbone with ``return_maps=True``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x, return_maps: bool = False):
        h = self.lin(x)
        return (h, [2 * h, h.sum(1, keepdim=True)]) if return_maps else h


def test_the_memo_serves_each_clips_output_and_keeps_to_its_budget():
    torch.manual_seed(0)
    teacher, x = FrozenCopy(Maps()), torch.randn(6, 3)
    memo = OutputMemo(max_bytes=10**6)
    for batch in ([0, 1, 2], [3, 4, 5]):
        memo.batch = batch
        memo(teacher, x[batch], return_maps=True)
        memo(teacher, x[batch])
    assert memo.misses == 4 and memo.hits == 0
    memo.batch = [5, 0, 3]  # a new batch order: every clip is known
    h, maps = memo(teacher, x[[5, 0, 3]], return_maps=True)
    want_h, want_maps = teacher(x[[5, 0, 3]], return_maps=True)
    assert memo.hits == 1 and torch.equal(h, want_h)
    assert all(torch.equal(a, b) for a, b in zip(maps, want_maps, strict=True))
    assert torch.equal(memo(teacher, x[[5, 0, 3]]), teacher(x[[5, 0, 3]]))
    memo.batch = [1, 7]  # clip 7 is new: the batch is computed, and clip 7 kept
    memo(teacher, torch.stack([x[1], x[2]]))
    assert memo.misses == 5
    # rows that are not the batch's clips (another size) are never served from the memo
    assert memo(teacher, x[:1]).shape == (1, 2)
    small = OutputMemo(max_bytes=3 * 2 * 4)  # room for three rows of two float32
    small.batch = [0, 1, 2]
    small(teacher, x[:3])
    small.batch = [3, 4, 5]
    small(teacher, x[3:])
    assert small.nbytes == 24  # the second batch did not fit and was not kept


@pytest.mark.parametrize("method, extra", [
    ("lwf", ["method.later_tasks.epochs=3"]),
    ("podnet", ["method.later_tasks.epochs=3", "method.finetune.epochs=1", "method.proxies=2"]),
    ("foster", ["method.later_tasks.epochs=2", "method.compression.epochs=3"]),
])
def test_cached_teacher_outputs_give_the_figures_of_recomputing_them(
        method, extra, tmp_path, monkeypatch):
    served = []
    real = OutputMemo.__call__

    def spy(self, *a, **k):
        out = real(self, *a, **k)
        served.append(self.hits)
        return out

    monkeypatch.setattr(OutputMemo, "__call__", spy)
    root = tmp_path / "root"
    cached = run_smoke(method, root, tmp_path / "cached", "method.batch_size=16", *extra)
    assert served and max(served) > 0, "the teacher's outputs were never read back"
    served.clear()
    again = run_smoke(method, root, tmp_path / "recomputed", "method.batch_size=16", *extra,
                      "data.teacher_outputs=recompute")
    assert not served
    for key in ("accuracy_matrix", "classifiers"):
        assert cached[key] == again[key], key
    assert cached["accuracy_per_step"][0] > 25.0  # it learnt: better than chance over 4 classes
