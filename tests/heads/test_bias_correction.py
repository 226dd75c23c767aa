"""BiasCorrection: BiC's per-task (alpha, beta) on the logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiocil.heads import BiasCorrection


def layer(sizes=(4, 3, 2)) -> BiasCorrection:
    bias = BiasCorrection()
    for n in sizes:
        bias.grow(n)
    return bias


def test_a_fresh_layer_is_the_identity():
    z = torch.randn(5, 9)
    bias = layer()
    assert torch.equal(bias(z), z)
    assert BiasCorrection(4).sizes == [4] and torch.equal(BiasCorrection(4)(z[:, :4]), z[:, :4])
    assert torch.equal(BiasCorrection()(z[:, :0]), z[:, :0])
    assert [(a.item(), b.item()) for a, b in map(bias.task_parameters, range(3))] == [(1, 0)] * 3


def test_only_the_selected_tasks_columns_change():
    bias, z = layer(), torch.randn(5, 9)
    alpha, beta = bias.task_parameters(1)
    with torch.no_grad():
        alpha.fill_(2.0)
        beta.fill_(-0.5)
    out = bias(z)
    assert bias.task_range(1) == (4, 7) and bias.task_range(-1) == (7, 9)
    assert torch.equal(out[:, :4], z[:, :4]) and torch.equal(out[:, 7:], z[:, 7:])
    assert torch.allclose(out[:, 4:7], 2 * z[:, 4:7] - 0.5)


def test_training_the_last_pair_leaves_the_others():
    bias = layer()
    opt = torch.optim.SGD(bias.task_parameters(-1), lr=1.0)
    z = torch.randn(16, 9, requires_grad=True)
    F.cross_entropy(bias(z), torch.randint(0, 9, (16,))).backward()
    assert z.grad is not None
    opt.step()
    assert [(a.item(), b.item()) for a, b in map(bias.task_parameters, (0, 1))] == [(1, 0)] * 2
    alpha, beta = bias.task_parameters(2)
    assert (alpha.item(), beta.item()) != (1.0, 0.0)


def test_wrong_widths_fail():
    with pytest.raises(ValueError, match="covers 9 classes"):
        layer()(torch.randn(2, 8))
    with pytest.raises(ValueError, match="n_new"):
        BiasCorrection().grow(0)


def test_a_grown_layer_loads_into_a_fresh_one(tmp_path):
    bias = layer()
    with torch.no_grad():
        bias.task_parameters(2)[0].fill_(0.7)
        bias.task_parameters(2)[1].fill_(0.2)
    torch.save(bias.state_dict(), tmp_path / "bias.pt")
    fresh = BiasCorrection()
    fresh.load_state_dict(torch.load(tmp_path / "bias.pt", weights_only=True))
    z = torch.randn(3, 9)
    assert fresh.sizes == [4, 3, 2] and torch.equal(fresh(z), bias(z))
    with pytest.raises(ValueError, match="do not extend"):
        BiasCorrection(5).load_state_dict(bias.state_dict())


def test_new_pairs_follow_dtype_and_device():
    bias = BiasCorrection().double()
    bias.grow(3)
    bias.grow(2)
    assert all(p.dtype == torch.float64 for p in bias.parameters())
    assert "_anchor" not in bias.state_dict()
    if torch.cuda.is_available():
        bias = BiasCorrection().cuda()
        bias.grow(2)
        assert bias.task_parameters(0)[0].is_cuda
