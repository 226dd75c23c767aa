"""PODNet: POD-spatial, POD-flat, the adaptive factor and the NCA loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from audiocil.losses.pod import adaptive_factor, nca_loss, pod_flat, pod_spatial


def _maps(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 4, 5, 6, generator=g), torch.randn(3, 8, 2, 3, generator=g)]


def test_distillation_terms_are_exactly_zero_for_a_copy_of_the_teacher():
    maps = _maps(0)
    assert pod_spatial(maps, [m.clone() for m in maps]).item() == 0.0
    h = torch.randn(7, 16, generator=torch.Generator().manual_seed(1))
    assert pod_flat(h, h.clone()).item() == 0.0


def test_distillation_terms_are_positive_and_carry_gradient_to_the_student_only():
    student = [m.requires_grad_() for m in _maps(0)]
    teacher = [m.requires_grad_() for m in _maps(1)]
    loss = pod_spatial(student, teacher)
    assert loss.item() > 0
    loss.backward()
    assert all(m.grad is not None for m in student)
    assert all(m.grad is None for m in teacher)


def test_pod_spatial_matches_a_hand_computation_for_one_stage():
    a, b = _maps(0)[0], _maps(1)[0]

    def pooled(x):
        x = x**2
        v = torch.cat([x.sum(3).reshape(3, -1), x.sum(2).reshape(3, -1)], dim=1)
        return v / v.norm(dim=1, keepdim=True)

    want = (pooled(a) - pooled(b)).norm(dim=1).mean()
    assert pod_spatial([a], [b]).item() == pytest.approx(want.item(), rel=1e-6)
    # two stages: the mean of the per-stage terms
    a2, b2 = _maps(0)[1], _maps(1)[1]
    both = pod_spatial([a, a2], [b, b2]).item()
    assert both == pytest.approx((want.item() + pod_spatial([a2], [b2]).item()) / 2, rel=1e-6)


def test_pod_flat_is_the_mean_of_one_minus_cosine():
    g = torch.Generator().manual_seed(2)
    h, h_old = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    want = (1 - F.cosine_similarity(h, h_old, dim=1)).mean()
    assert pod_flat(h, h_old).item() == pytest.approx(want.item(), rel=1e-6)


def test_adaptive_factor():
    assert adaptive_factor(20, 10) == pytest.approx(math.sqrt(2))  # second of equal tasks
    assert adaptive_factor(100, 10) == pytest.approx(math.sqrt(10))
    with pytest.raises(ValueError):
        adaptive_factor(10, 0)


def test_nca_margin_changes_the_loss_and_matches_the_paper_formula():
    s = torch.tensor([[0.9, 0.1, -0.2], [0.3, 0.5, 0.0]])
    y = torch.tensor([0, 1])
    no_margin = nca_loss(s, y, scale=1.0, margin=0.0, hinge=False)
    with_margin = nca_loss(s, y, scale=1.0, margin=0.6, hinge=False)
    assert with_margin.item() > no_margin.item()  # the margin does not cancel
    # -log(exp(eta*(s_y - delta)) / sum_{j != y} exp(eta*s_j)), eta = 2, delta = 0.6
    rows = [(0.9, [0.1, -0.2]), (0.5, [0.3, 0.0])]
    want = sum(-(2 * (p - 0.6)) + math.log(sum(math.exp(2 * n) for n in ns)) for p, ns in rows) / 2
    assert nca_loss(s, y, scale=2.0, margin=0.6, hinge=False).item() == pytest.approx(want, rel=1e-6)


def test_nca_hinge_and_the_cross_entropy_form():
    s = torch.tensor([[1.0, -1.0, -1.0]])
    y = torch.tensor([0])
    assert nca_loss(s, y, scale=4.0, margin=0.1, hinge=False).item() < 0
    assert nca_loss(s, y, scale=4.0, margin=0.1, hinge=True).item() == 0.0
    # without exclusion: cross-entropy of logits with the margin on the true class only
    ce = F.cross_entropy(torch.tensor([[4.0 * 0.9, -4.0, -4.0]]), y)
    assert nca_loss(s, y, scale=4.0, margin=0.1, exclude_positive=False).item() == pytest.approx(ce.item())
