"""DS-AL on ACIL's tiny stream: with C = 0 the classifier is the ridge regression on every
task's relu(buffer) features, whatever the IL batch size; the main stream does not depend
on C; the compensation stream is fitted and weighted by C; the backbone is bit-identical
after the base task; it learns, without exemplars, also in few-shot CIL."""

from __future__ import annotations

import pytest
import torch

from audiocil.methods.ds_al import DSAL
from audiocil.run import check_support
from tests.methods.test_acil import (
    CLASSES,
    FEWSHOT,
    after,
    backbone_state,
    buffered,
    joint_ridge,
    rel_err,
    run_recorded,
    seen_clips,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_root):
    out = {(0.0, b): run_recorded("ds_al", shared_root, tmp_path_factory.mktemp(f"c0b{b}"),
                                  "method.compensation_ratio=0.0", f"method.il_batch_size={b}")
           for b in (4096, 7)}
    out[(0.6, 7)] = run_recorded("ds_al", shared_root, tmp_path_factory.mktemp("c06"),
                                 "method.il_batch_size=7")
    return out


def test_with_c_zero_the_classifier_is_the_joint_ridge_whatever_the_batching(runs):
    for b in (4096, 7):
        rec = runs[(0.0, b)]
        for t in range(3):
            s = after(rec, t)
            idx, y = seen_clips(rec, t)
            X = torch.relu(buffered(s, rec["dm"], idx))
            want = joint_ridge(X, y, 4 * (t + 1), 0.1)
            assert rel_err(s.ridge.main.W, want) < 1e-8, (b, t)
        test_idx = rec["dm"].indices_of(range(CLASSES), "test")[:50]
        got = s.eval_logits(rec["dm"].data["test"][test_idx])["cnn"].double()
        assert torch.allclose(got, torch.relu(buffered(s, rec["dm"], test_idx, "test")) @ want,
                              atol=1e-4)
    W = [after(runs[(0.0, b)], 2).ridge.main.W for b in (4096, 7)]
    assert rel_err(W[1], W[0]) < 1e-8


def test_the_compensation_stream_is_weighted_by_c(runs):
    rec, ref = runs[(0.6, 7)], runs[(0.0, 7)]
    s, s0 = after(rec, 2), after(ref, 2)
    assert rel_err(s.ridge.main.W, s0.ridge.main.W) < 1e-10  # the main stream ignores C
    assert s.ridge.comp.W.abs().max() > 0 and s.ridge.comp.W.dtype == torch.float64
    test_idx = rec["dm"].indices_of(range(CLASSES), "test")[:50]
    Xb = buffered(s, rec["dm"], test_idx, "test")  # the buffer has no activation
    want = torch.relu(Xb) @ s.ridge.main.W + 0.6 * torch.tanh(Xb) @ s.ridge.comp.W
    got = s.eval_logits(rec["dm"].data["test"][test_idx])["cnn"].double()
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, torch.relu(Xb) @ s.ridge.main.W, atol=1e-3)


def test_backbone_is_bit_identical_after_the_base_task(runs):
    for rec in runs.values():
        trained = rec["backbone"][0]
        for t in range(3):
            state = backbone_state(after(rec, t))
            assert all(torch.equal(state[k], trained[k]) for k in trained)
    a, b = runs[(0.0, 4096)]["backbone"][0], runs[(0.6, 7)]["backbone"][0]
    assert all(torch.equal(a[k], b[k]) for k in a)  # one base training, whatever C


def test_learns_better_than_chance_without_exemplars(runs):
    for rec in runs.values():
        res = rec["results"]
        assert res["accuracy_per_step"][0] > 50, res["accuracy_per_step"]
        assert res["last_accuracy"] > 3 * 100 / CLASSES, res["accuracy_per_step"]
        assert res["memory_samples"] == [0, 0, 0]
    with pytest.raises(ValueError, match="does not support scenario=multilabel"):
        check_support(DSAL, "multilabel")


def test_fewshot(shared_root, tmp_path):
    rec = run_recorded("ds_al", shared_root, tmp_path, "method.il_batch_size=5", stream=FEWSHOT)
    res = rec["results"]
    assert res["accuracy_per_session"][0] > 50
    assert res["last_accuracy"] > 3 * 100 / CLASSES
    assert res["novel_accuracy_per_session"][-1] > 2 * 100 / CLASSES
