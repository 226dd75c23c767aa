import pytest
import torch

from audiocil.metrics.continual import (
    average_incremental_accuracy,
    backward_transfer,
    forgetting,
    forgetting_per_step,
    summarize,
)
from audiocil.metrics.task_accuracy import TaskAccuracy

# hand-computed example: three tasks
R = [[90.0], [70.0, 80.0], [50.0, 75.0, 60.0]]


def test_forgetting_hand_computed():
    # task 0: best earlier 90, now 50 -> 40; task 1: best earlier 80, now 75 -> 5
    assert forgetting(R) == pytest.approx((40 + 5) / 2)
    assert forgetting_per_step(R) == pytest.approx([0.0, 20.0, 22.5])


def test_forgetting_uses_best_not_first():
    R2 = [[50.0], [80.0, 60.0], [70.0, 60.0, 90.0]]  # task 0 improved, then dropped from 80
    assert forgetting(R2) == pytest.approx(((80 - 70) + (60 - 60)) / 2)


def test_bwt_hand_computed():
    assert backward_transfer(R) == pytest.approx(((50 - 90) + (75 - 80)) / 2)


def test_average_incremental_accuracy_includes_first_step():
    assert average_incremental_accuracy([90, 75, 60]) == pytest.approx(75.0)
    s = summarize(R, [90, 75, 60])
    assert s["last_accuracy"] == 60 and s["avg_incremental_accuracy"] == 75


def test_single_task_and_malformed_matrix():
    assert forgetting([[80.0]]) == 0.0 and backward_transfer([[80.0]]) == 0.0
    with pytest.raises(ValueError, match="row 1"):
        forgetting([[1.0], [1.0]])


def test_task_accuracy_counts_per_task():
    # classes 0,1 -> task 0; class 2 -> task 1
    m = TaskAccuracy(torch.tensor([0, 0, 1]), n_tasks=2, top_k=2)
    logits = torch.tensor([[5.0, 1, 0], [0, 5, 1], [5, 0, 1], [0, 1, 5]])
    target = torch.tensor([0, 1, 1, 2])
    m.update(logits, target)
    out = m.compute()
    # task 0: samples 0,1,2 -> top1 hits 0,1 (sample 2 wrong) = 2/3; top2: sample 2's top2 = {0,2} miss
    assert out["top1_per_task"].tolist() == pytest.approx([200 / 3, 100.0])
    assert out["topk_per_task"].tolist() == pytest.approx([200 / 3, 100.0])
    assert float(out["top1"]) == pytest.approx(75.0)
    assert out["count_per_task"].tolist() == [3, 1]
