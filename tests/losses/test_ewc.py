"""EWC penalty, Fisher estimate and Fisher merging against hand-computed values."""

import pytest
import torch
from torch import nn

from audiocil.losses.ewc import ewc_penalty, fisher_diagonal, merge_fisher


def test_penalty_hand_computed_and_gradient():
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    old = torch.tensor([0.0, 0.0])
    fisher = torch.tensor([0.5, 2.0])
    pen = ewc_penalty({"w": p}, {"w": old}, {"w": fisher})
    assert pen.item() == pytest.approx(0.5 * (0.5 * 1 + 2.0 * 4))  # 4.25
    pen.backward()
    assert torch.allclose(p.grad, fisher * (p.detach() - old))  # d/dp = F (p - p*)


def test_penalty_on_old_rows_of_a_grown_head_only():
    w = torch.tensor([[1.0, 1.0], [2.0, 0.0], [100.0, 100.0]])  # the third row is new
    old = torch.zeros(2, 2)
    fisher = torch.ones(2, 2)
    assert ewc_penalty({"w": w}, {"w": old}, {"w": fisher}).item() == pytest.approx(0.5 * 6)
    # parameters without a Fisher are free; no Fisher at all gives zero
    params = {"w": w, "other": torch.ones(3)}
    assert ewc_penalty(params, {"w": old}, {"w": fisher}).item() == pytest.approx(3.0)
    assert ewc_penalty(params, {}, {}).item() == 0.0
    with pytest.raises(ValueError):
        ewc_penalty({"w": torch.zeros(1, 2)}, {"w": old}, {"w": fisher})  # shrank


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0]))

    def forward(self, x):
        return x * self.w, x  # (logits, features), like Network


def test_fisher_is_mean_of_squared_batch_gradients():
    model = _Scale()
    mse = lambda out, y: ((out - y) ** 2).mean()  # noqa: E731
    batches = [
        (torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])),  # grad mean(2*1*1, 2*2*2) = 5
        (torch.tensor([1.0]), torch.tensor([1.0])),            # grad 0
    ]
    f = fisher_diagonal(model, batches, loss_fn=mse)
    assert f["w"].item() == pytest.approx((25.0 + 0.0) / 2)
    assert model.w.grad is None  # .grad untouched
    f = fisher_diagonal(model, batches, loss_fn=mse, clamp_max=10.0)
    assert f["w"].item() == pytest.approx(10.0)


def test_fisher_with_cross_entropy_skips_frozen():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0])
    f = fisher_diagonal(model, [(x, y)])
    assert set(f) == {"0.bias", "2.weight", "2.bias"}
    loss = nn.functional.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, model[2].weight)[0]
    assert torch.allclose(f["2.weight"], g**2)


def test_merge_fisher_weighted_by_class_counts():
    old = {"head": torch.tensor([[1.0, 1.0]]), "scalar": torch.tensor(2.0)}
    new = {"head": torch.tensor([[3.0, 3.0], [5.0, 5.0]]), "scalar": torch.tensor(6.0),
           "fresh": torch.tensor([7.0])}
    m = merge_fisher(old, new, alpha=0.25)  # e.g. 1 class known before, 4 after
    assert torch.allclose(m["head"], torch.tensor([[2.5, 2.5], [5.0, 5.0]]))
    assert m["scalar"].item() == pytest.approx(0.25 * 2 + 0.75 * 6)
    assert m["fresh"].item() == 7.0
    assert new["head"][0, 0].item() == 3.0  # inputs untouched
