"""IncrementalLinear: the package move keeps its init, keys and growth exactly."""

from __future__ import annotations

import torch
from torch import nn

from audiocil.heads import IncrementalLinear


def test_init_and_growth_draw_the_same_numbers_as_nn_linear():
    torch.manual_seed(0)
    head = IncrementalLinear(8, 3)
    head.grow(2)
    after = torch.rand(3)  # the generator is left where nn.Linear leaves it
    torch.manual_seed(0)
    a, b = nn.Linear(8, 3), nn.Linear(8, 2)
    assert torch.equal(head.weight, torch.cat([a.weight, b.weight]))
    assert torch.equal(head.bias, torch.cat([a.bias, b.bias]))
    assert torch.equal(after, torch.rand(3))
    assert list(head.state_dict()) == ["weight", "bias"] and head.num_classes == 5


def test_growth_keeps_old_logits_and_follows_dtype():
    head = IncrementalLinear(8, 3).double()
    x = torch.randn(4, 8, dtype=torch.float64)
    before = head(x)
    head.grow(2)
    out = head(x)
    assert out.shape == (4, 5) and out.dtype == torch.float64
    assert torch.allclose(out[:, :3], before, atol=1e-12)
