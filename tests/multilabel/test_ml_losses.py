"""The multi-label CIL losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from audiocil.losses.multilabel import (
    adaptive_weight,
    bce_loss,
    feature_distillation,
    independent_bce,
    output_distillation,
    positive_weight,
    sigmoid_distillation,
)


def _bce(z: float, y: float, pw: float = 1.0) -> float:
    s = 1 / (1 + math.exp(-z))
    return -(pw * y * math.log(s) + (1 - y) * math.log(1 - s))


def test_bce_by_hand_and_pos_weight():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    want = sum(_bce(z, t) for z, t in zip(logits.flatten().tolist(), y.flatten().tolist(), strict=True)) / 4
    assert float(bce_loss(logits, y)) == pytest.approx(want, rel=1e-6)
    want_pw = sum(_bce(z, t, 3.0) for z, t in zip(logits.flatten().tolist(), y.flatten().tolist(),
                                                   strict=True)) / 4
    assert float(bce_loss(logits, y, pos_weight=3.0)) == pytest.approx(want_pw, rel=1e-6)
    assert positive_weight(y) == 1.0
    assert positive_weight(torch.tensor([[1.0, 0, 0, 0]])) == 3.0
    with pytest.raises(ValueError, match="differ in shape"):
        bce_loss(logits, y[:, :1])


def test_independent_bce_ignores_old_logits_and_future_targets():
    logits = torch.tensor([[5.0, -5.0, 0.0, 1.0]], requires_grad=True)  # 2 old + 2 new classes
    y = torch.tensor([[0.0, 0.0, 1.0, 0.0, 1.0]])  # a fifth (future) column is ignored
    loss = independent_bce(logits, y, known=2)
    assert float(loss.detach()) == pytest.approx((_bce(0.0, 1.0) + _bce(1.0, 0.0)) / 2, rel=1e-6)
    loss.backward()
    assert logits.grad[0, :2].abs().sum() == 0  # old classes get no gradient
    assert logits.grad[0, 2:].abs().sum() > 0


def test_output_distillation_is_t2_scaled_kl():
    s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    T = 2.0
    want = 0.0
    for i in range(2):
        p = torch.softmax(t[i] / T, 0)
        q = torch.softmax(s[i] / T, 0)
        want += float((p * (p / q).log()).sum())
    want = want / 2 * T * T
    assert float(output_distillation(s, t, T)) == pytest.approx(want, rel=1e-5)
    assert float(output_distillation(s, t, T, reduction="mean")) == pytest.approx(want / 3, rel=1e-5)
    assert float(output_distillation(t, t, T)) == pytest.approx(0.0, abs=1e-6)
    assert float(output_distillation(s[:, :0], t[:, :0])) == 0.0


def test_sigmoid_distillation_is_minimal_at_the_teacher():
    t = torch.tensor([[1.0, -2.0]])
    at_teacher = float(sigmoid_distillation(t.clone(), t, 2.0))
    q = torch.sigmoid(t / 2)
    entropy = float(-(q * q.log() + (1 - q) * (1 - q).log()).mean())
    assert at_teacher == pytest.approx(entropy, rel=1e-5)
    assert float(sigmoid_distillation(t + 1.0, t, 2.0)) > at_teacher


def test_feature_distillation_per_sample_and_per_batch():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [2.0, 0.0]])  # cos 1 and cos 0
    assert float(feature_distillation(a, b)) == pytest.approx(0.5)
    # flattened: (1,0,0,2).(3,0,2,0) = 3; |a| = sqrt5, |b| = sqrt13
    assert float(feature_distillation(a, b, scope="batch")) == pytest.approx(1 - 3 / math.sqrt(65))
    assert float(feature_distillation(a, 5 * a)) == pytest.approx(0.0, abs=1e-6)  # scale-free


def test_adaptive_weight_lucir_and_authors_code():
    assert adaptive_weight(2.0, 30, 5) == pytest.approx(2.0 * math.sqrt(6))
    assert adaptive_weight(5.0, 30, 5, exponent=0.66, ratio="total") == pytest.approx(5 * 7 ** 0.66)
    assert adaptive_weight(1.0, 45, 5) > adaptive_weight(1.0, 30, 5)  # grows with the classes
    with pytest.raises(ValueError):
        adaptive_weight(1.0, 3, 0)
