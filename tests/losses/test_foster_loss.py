"""FOSTER: effective-number class weights, logit-adjusted CE and balanced KD."""

import math

import pytest
import torch
import torch.nn.functional as F

from audiocil.losses.distillation import kd_loss
from audiocil.losses.foster import bkd_loss, class_balanced_weights, logit_adjusted_ce


def test_weights_sum_to_the_number_of_classes_and_favour_rare_classes():
    counts = [20, 20, 20, 500, 500]  # 3 old classes (exemplars), 2 new ones
    w = class_balanced_weights(counts, beta=0.96)
    assert w.shape == (5,) and w.sum().item() == pytest.approx(5.0, rel=1e-6)
    assert w[0] > w[3] and torch.allclose(w[:3], w[0].expand(3))
    raw = [(1 - 0.96) / (1 - 0.96**n) for n in counts]  # the formula before normalising
    assert w.tolist() == pytest.approx([r / sum(raw) * 5 for r in raw], rel=1e-6)


def test_uniform_counts_or_beta_zero_give_ones():
    assert torch.allclose(class_balanced_weights([37] * 6, beta=0.97), torch.ones(6))
    assert torch.allclose(class_balanced_weights([1, 10, 100], beta=0.0), torch.ones(3))


def test_bad_counts_and_beta():
    with pytest.raises(ValueError):
        class_balanced_weights([3, 0], beta=0.9)
    with pytest.raises(ValueError):
        class_balanced_weights([3, 4], beta=1.0)


def test_bkd_with_unit_weights_is_kd():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    for T in (1.0, 2.0):
        assert bkd_loss(s, t, torch.ones(5), T).item() == pytest.approx(kd_loss(s, t, T).item(), rel=1e-6)


def test_bkd_reweights_the_teacher_distribution():
    s = torch.zeros(1, 2)  # student uniform: loss = log 2 whatever the target
    t = torch.zeros(1, 2)
    assert bkd_loss(s, t, torch.tensor([1.5, 0.5]), T=1.0).item() == pytest.approx(math.log(2))
    s2 = torch.tensor([[math.log(3.0), 0.0]])  # student (3/4, 1/4)
    # teacher (1/2, 1/2) reweighted by (1.5, 0.5) -> (3/4, 1/4)
    want = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert bkd_loss(s2, t, torch.tensor([1.5, 0.5]), T=1.0).item() == pytest.approx(want, rel=1e-6)
    s2.requires_grad_()
    t.requires_grad_()
    bkd_loss(s2, t, torch.tensor([1.5, 0.5])).backward()
    assert s2.grad is not None and t.grad is None


def test_logit_adjusted_ce_divides_the_logits_by_the_weights():
    z = torch.tensor([[2.0, 1.0, 0.5]])
    y = torch.tensor([0])
    w = torch.tensor([2.0, 0.5, 0.5])
    assert logit_adjusted_ce(z, y, w).item() == pytest.approx(F.cross_entropy(z / w, y).item())
    assert logit_adjusted_ce(z, y, torch.ones(3)).item() == pytest.approx(F.cross_entropy(z, y).item())
    # the old class (weight 2) is handicapped during training: a higher loss
    assert logit_adjusted_ce(z, y, w).item() > F.cross_entropy(z, y).item()
