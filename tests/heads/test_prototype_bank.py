"""PrototypeBank: nearest class mean by cosine or (iCaRL's) Euclidean distance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audiocil.heads import PrototypeBank
from audiocil.heads.functional import class_mean, nme_logits


def bank_of(n: int = 5, d: int = 8, **kw) -> PrototypeBank:
    torch.manual_seed(0)
    bank = PrototypeBank(d, **kw)
    bank.add(torch.randn(3, d))
    bank.add(torch.randn(n - 3, d))
    return bank


def test_add_grow_replace():
    bank = bank_of()
    assert bank.num_classes == 5 and bank.prototypes.shape == (5, 8)
    first = bank.prototypes[:3].clone()
    bank.grow(2)
    assert bank.num_classes == 7 and torch.equal(bank.prototypes[:3], first)
    assert torch.equal(bank.prototypes[5:], torch.zeros(2, 8))
    means = torch.randn(4, 8)
    bank.replace(means)
    means += 1  # the bank holds a copy
    assert torch.equal(bank.prototypes + 1, means)
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        bank.add(torch.randn(2, 7))
    with pytest.raises(ValueError, match="metric"):
        PrototypeBank(8, metric="dot")
    with pytest.raises(ValueError, match="metric"):
        bank.logits(torch.randn(2, 8), metric="l1")


def test_cosine_logits_against_brute_force():
    bank, x = bank_of(scale=10.0), torch.randn(4, 8)
    want = torch.stack([F.cosine_similarity(x, p[None].expand(4, -1)) for p in bank.prototypes], 1)
    assert torch.allclose(bank(x), 10.0 * want, atol=1e-5)
    assert torch.allclose(bank.logits(x, scale=1.0), want, atol=1e-6)
    assert bank(x).shape == (4, 5)


def test_euclidean_logits_against_brute_force():
    bank, x = bank_of(metric="euclidean"), torch.randn(4, 8)
    bank.replace(F.normalize(bank.prototypes, dim=1))
    want = -torch.cdist(F.normalize(x, dim=1).double(), bank.prototypes.double()) ** 2
    assert torch.allclose(bank(x).double(), want, atol=1e-5)
    assert torch.allclose(bank.logits(x, scale=2.0), 2 * bank(x))
    assert torch.equal(bank(x), nme_logits(x, bank.prototypes))  # iCaRL's rule, reused
    # the rule is the nearest mean: a clip at a class's mean goes to that class
    assert torch.equal(bank(bank.prototypes * 3).argmax(1), torch.arange(5))


def test_a_zero_prototype_scores_cosine_0_and_distance_1():
    bank = PrototypeBank(8)
    bank.grow(1)
    x = torch.randn(3, 8)
    assert torch.equal(bank(x), torch.zeros(3, 1))
    assert torch.allclose(bank.logits(x, metric="euclidean"), -torch.ones(3, 1))


def test_class_means_from_features_classify_them():
    torch.manual_seed(1)
    centres = torch.randn(3, 8) * 4
    feats = centres.repeat_interleave(20, 0) + 0.3 * torch.randn(60, 8)
    labels = torch.arange(3).repeat_interleave(20)
    bank = PrototypeBank(8, metric="euclidean")
    bank.add(torch.stack([class_mean(feats[labels == c]) for c in range(3)]))
    assert (bank(feats).argmax(1) == labels).float().mean() > 0.95


def test_gradient_reaches_the_features_not_the_bank():
    bank = bank_of()
    x = torch.randn(4, 8, requires_grad=True)
    bank(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert list(bank.parameters()) == [] and not bank.prototypes.requires_grad


def test_a_grown_bank_survives_a_state_dict_round_trip(tmp_path):
    class Holder(nn.Module):  # nested, as in a strategy: the key has a prefix
        def __init__(self) -> None:
            super().__init__()
            self.bank = PrototypeBank(8)

    saved = Holder()
    saved.bank.add(torch.randn(3, 8))
    saved.bank.grow(2)
    torch.save(saved.state_dict(), tmp_path / "bank.pt")
    fresh = Holder()
    assert fresh.bank.num_classes == 0
    fresh.load_state_dict(torch.load(tmp_path / "bank.pt", weights_only=True))
    assert torch.equal(fresh.bank.prototypes, saved.bank.prototypes)
    shrunk = PrototypeBank(8)
    shrunk.add(torch.randn(9, 8))
    shrunk.load_state_dict(saved.bank.state_dict())  # a bank takes the saved size either way
    assert shrunk.num_classes == 5
    with pytest.raises(RuntimeError, match="size mismatch"):
        PrototypeBank(4).load_state_dict(saved.bank.state_dict())


def test_dtype_follows_the_bank():
    bank = bank_of().double()
    bank.add(torch.randn(1, 8))  # float32 means are stored in the bank's dtype
    assert bank.prototypes.dtype == torch.float64 and bank.num_classes == 6
    assert bank(torch.randn(2, 8, dtype=torch.float64)).dtype == torch.float64
