"""kd_loss against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from audiocil.losses.distillation import kd_loss


def test_matches_hand_computed_soft_cross_entropy():
    # teacher softmax = (3/4, 1/4); student softmax = (1/2, 1/2): loss = -ln(1/2)
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    assert kd_loss(s, t, T=1.0).item() == pytest.approx(math.log(2.0))
    # teacher (1/2, 1/2), student (3/4, 1/4): -(ln(3/4) + ln(1/4)) / 2
    s2 = torch.tensor([[math.log(3.0), 0.0]])
    t2 = torch.tensor([[0.0, 0.0]])
    want = -(math.log(0.75) + math.log(0.25)) / 2
    assert kd_loss(s2, t2, T=1.0).item() == pytest.approx(want)
    # a batch is averaged over its rows
    both = kd_loss(torch.cat([s, s2]), torch.cat([t, t2]), T=1.0).item()
    assert both == pytest.approx((math.log(2.0) + want) / 2)


def test_temperature_and_t2_convention():
    # at T = 2 the logits are halved before the softmax
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    assert kd_loss(s, t, T=2.0).item() == pytest.approx(math.log(2.0))
    assert kd_loss(s, t, T=2.0, scale_t2=True).item() == pytest.approx(4 * math.log(2.0))


def test_equals_kl_plus_teacher_entropy_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 4, generator=g, requires_grad=True)
    t = torch.randn(5, 4, generator=g, requires_grad=True)
    T = 2.0
    loss = kd_loss(s, t, T)
    q = F.softmax(t / T, dim=1)
    kl = F.kl_div(F.log_softmax(s / T, dim=1), q, reduction="batchmean")
    entropy = -(q * q.log()).sum(1).mean()
    assert loss.item() == pytest.approx((kl + entropy).item(), rel=1e-5)
    loss.backward()
    assert t.grad is None and s.grad is not None
    # the gradient w.r.t. the student logits is (p_s - p_t) / (T * B)
    want = (F.softmax(s / T, dim=1) - q) / (T * 5)
    assert torch.allclose(s.grad, want.detach(), atol=1e-6)


def test_edge_cases():
    assert kd_loss(torch.zeros(3, 0), torch.zeros(3, 0)).item() == 0.0
    with pytest.raises(ValueError):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_weighted_kd_ce_mixes_kd_and_ce_by_the_old_class_share():
    from audiocil.losses.distillation import weighted_kd_ce

    g = torch.Generator().manual_seed(3)
    logits, teacher = torch.randn(4, 10, generator=g), torch.randn(4, 6, generator=g)
    y = torch.tensor([0, 7, 9, 2])
    kd = kd_loss(logits[:, :6], teacher, T=2.0)
    ce = F.cross_entropy(logits, y)
    assert weighted_kd_ce(logits, teacher, y).item() == pytest.approx((0.6 * kd + 0.4 * ce).item())
    assert weighted_kd_ce(logits, teacher, y, lam=0.0).item() == pytest.approx(ce.item())
    assert weighted_kd_ce(logits, teacher[:, :0], y).item() == pytest.approx(ce.item())
    with pytest.raises(ValueError):
        weighted_kd_ce(logits[:, :5], teacher, y)
