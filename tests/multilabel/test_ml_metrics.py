"""Multi-label scores and the run record against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from audiocil.core import Task
from audiocil.metrics.multilabel import (
    MultilabelScores,
    average_forgetting,
    average_precision,
    base_forgetting,
    multilabel_scores,
)
from audiocil.results.multilabel import MultilabelRecord

# 4 clips x 3 classes; class 2 has no positive
SCORES = torch.tensor([[0.9, 0.2, 0.1],
                       [0.6, 0.7, 0.6],
                       [0.3, 0.8, 0.2],
                       [0.1, 0.4, 0.3]], dtype=torch.float64)
TARGETS = torch.tensor([[1, 0, 0],
                        [0, 1, 0],
                        [1, 1, 0],
                        [0, 0, 0]])


def test_f1_by_hand():
    r = multilabel_scores(SCORES, TARGETS, torch.tensor([0, 0, 1]))
    # predictions at 0.5: class0 {0,1} vs truth {0,2}: tp1 fp1 fn1 -> F1 1/2
    #                     class1 {1,2} vs truth {1,2}: F1 1;  class2 {1} vs none: tp0 fp1 -> 0
    assert r["f1_per_class"] == pytest.approx([0.5, 1.0, 0.0])
    assert r["macro_f1"] == pytest.approx(0.5)
    assert r["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # tp 3, fp 2, fn 1
    assert r["f1_per_block"] == pytest.approx([0.75, 0.0])
    assert r["positives_per_class"] == [2, 2, 0] and r["n_clips"] == 4


def test_average_precision_by_hand():
    ap = average_precision(SCORES, TARGETS)
    # class 0 ranks 0.9(+) 0.6(-) 0.3(+) 0.1(-): (1/2)*1 + (1/2)*(2/3)
    assert float(ap[0]) == pytest.approx(0.5 + 1 / 3)
    # class 1 ranks 0.8(+) 0.7(+): AP 1
    assert float(ap[1]) == pytest.approx(1.0)
    assert math.isnan(float(ap[2]))  # no positive: left out of the mean
    r = multilabel_scores(SCORES, TARGETS, torch.tensor([0, 0, 1]))
    assert r["map"] == pytest.approx((0.5 + 1 / 3 + 1.0) / 2)
    assert r["map_per_block"][1] is None


def test_ties_enter_together():
    # scores tie on a positive and a negative: one threshold, precision 1/2 there
    ap = average_precision(torch.tensor([[0.5], [0.5], [0.1]]), torch.tensor([[1], [0], [1]]))
    assert float(ap[0]) == pytest.approx(0.5 * 0.5 + 0.5 * (2 / 3))


def test_thresholded_ap_is_the_reference_codes_variant():
    r = multilabel_scores(SCORES, TARGETS, torch.tensor([0, 0, 1]))
    # class 0: predictions {0,1}: precision 1/2, recall 1/2, prevalence 1/2
    ap0 = 0.5 * 0.5 + 0.5 * (1 - 0.5)
    assert r["map_thresholded"] == pytest.approx((ap0 + 1.0) / 2)


def test_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(60, 5, generator=g) < 0.3).long()
    s = (torch.rand(60, 5, generator=g) * 0.6 + 0.4 * y).round(decimals=1).double()  # with ties
    r = multilabel_scores(s, y, torch.zeros(5, dtype=torch.long))
    pred = (s >= 0.5).numpy()
    assert r["macro_f1"] == pytest.approx(metrics.f1_score(y.numpy(), pred, average="macro", zero_division=0))
    assert r["micro_f1"] == pytest.approx(metrics.f1_score(y.numpy(), pred, average="micro", zero_division=0))
    assert r["map"] == pytest.approx(metrics.average_precision_score(y.numpy(), s.numpy(), average="macro"))
    assert r["map_thresholded"] == pytest.approx(
        metrics.average_precision_score(y.numpy(), pred.astype(float), average="macro"))


def test_metric_batches_and_shards_count_each_clip_once():
    logits = torch.logit(SCORES.float().clamp(1e-4, 1 - 1e-4))
    targets = torch.cat([TARGETS, torch.ones(4, 1, dtype=torch.long)], 1)  # an unseen class column
    whole = MultilabelScores(torch.tensor([0, 0, 1]))
    whole.update(logits[:3], targets[:3])
    whole.update(logits[3:], targets[3:])
    want = multilabel_scores(SCORES, TARGETS, torch.tensor([0, 0, 1]))
    got = whole.compute()
    assert got["n_clips"] == 4
    assert got["macro_f1"] == pytest.approx(want["macro_f1"]) and got["map"] == pytest.approx(want["map"])
    # two "ranks", each with its shard, merged as the DDP sync does ("cat" states)
    a, b = MultilabelScores(torch.tensor([0, 0, 1])), MultilabelScores(torch.tensor([0, 0, 1]))
    a.update(logits[0::2], targets[0::2])
    b.update(logits[1::2], targets[1::2])
    a.merge_state(b)
    merged = a.compute()
    assert merged["n_clips"] == 4
    assert merged["map"] == pytest.approx(want["map"]) and merged["micro_f1"] == pytest.approx(want["micro_f1"])


def test_forgetting_and_averages():
    assert base_forgetting([80.0, 60.0, 50.0]) == [0.0, 20.0, 30.0]
    assert average_forgetting([0.0, 20.0, 30.0]) == 25.0
    assert average_forgetting([0.0]) == 0.0


def _scores(f1_blocks: list[float], macro: float, mp: float) -> dict:
    n = len(f1_blocks)
    return {"macro_f1": macro, "micro_f1": macro, "map": mp, "map_thresholded": mp / 2,
            "f1_per_block": f1_blocks, "map_per_block": [mp] * n, "map_thresholded_per_block": [mp / 2] * n,
            "f1_per_class": [macro] * n, "ap_per_class": [mp] * n, "positives_per_class": [1] * n,
            "n_clips": 10}


def test_record_figures_and_state_round_trip():
    rec = MultilabelRecord({"method": "x", "dataset": "d", "scenario": "multilabel", "seed": 1,
                            "class_order": [1, 0, 2], "tasks": [[1], [0], [2]]})
    info = {"time_s": 1.0, "params": 10, "memory_samples": 0, "memory_bytes": None}
    rec.add_step(Task(0, (1,), 0, 1), {"cnn": _scores([0.8], 0.8, 0.9)}, info)
    rec.add_step(Task(1, (0,), 1, 2), {"cnn": _scores([0.6, 0.7], 0.65, 0.8)}, info)
    rec.add_step(Task(2, (2,), 2, 3), {"cnn": _scores([0.4, 0.5, 0.9], 0.6, 0.7)}, info)
    out = rec.to_json()
    for key in ("method", "dataset", "scenario", "seed", "class_order", "tasks", "time_s_per_task",
                "params_per_task", "memory_samples", "f1_matrix", "map_matrix", "forgetting_per_phase",
                "avg_forgetting", "avg_macro_f1", "avg_map", "avg_map_thresholded",
                "macro_f1_per_phase", "map_per_phase"):
        assert key in out, key
    assert [len(r) for r in out["f1_matrix"]] == [1, 2, 3]
    assert sum(out["f1_matrix"], []) == pytest.approx([80.0, 60.0, 70.0, 40.0, 50.0, 90.0])
    assert out["forgetting_per_phase"] == pytest.approx([0.0, 20.0, 40.0])
    assert out["avg_forgetting"] == pytest.approx(30.0)
    assert out["avg_macro_f1"] == pytest.approx((80 + 65 + 60) / 3)
    assert out["avg_map"] == pytest.approx(80.0)
    assert "avg forgetting 30.0" in rec.table()
    assert len(rec.csv_text().strip().splitlines()) == 4
    again = MultilabelRecord.from_state(rec.state_dict())
    assert again.to_json() == out
