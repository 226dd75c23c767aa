"""BEEF's expansion pieces: task pseudo-labels, aligned CE, forward mass, energy CE and the
negative sampler."""

import math

import pytest
import torch
import torch.nn.functional as F

from audiocil.losses.beef import (
    energy_ce,
    expansion_ce,
    forward_log_mass,
    sample_negatives,
    task_pseudo_targets,
)


def test_task_pseudo_targets():
    y = torch.tensor([0, 3, 4, 6, 7, 9])
    # tasks of 4, 3 and (current) 3 classes: old classes -> task 0 or 1, new -> 2, 3, 4
    assert task_pseudo_targets(y, [4, 3, 3]).tolist() == [0, 0, 1, 1, 2, 4]
    assert task_pseudo_targets(y, [10]).tolist() == y.tolist()  # first task: the class itself


def test_expansion_ce_divides_the_old_task_columns():
    z = torch.tensor([[1.7, 3.4, 0.5, 0.0]])
    t = torch.tensor([2])
    want = F.cross_entropy(torch.tensor([[1.0, 2.0, 0.5, 0.0]]), t)
    assert expansion_ce(z, t, n_old_tasks=2, logits_alignment=1.7).item() == pytest.approx(want.item())


def test_forward_log_mass():
    train, energy = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0]])
    assert forward_log_mass(train, energy).item() == pytest.approx(math.log(3 / 5))
    g = torch.Generator().manual_seed(0)
    train, energy = torch.randn(4, 3, generator=g), torch.randn(4, 5, generator=g)
    p = torch.softmax(torch.cat([train, energy], 1), 1)[:, 3:].sum(1)
    assert torch.allclose(forward_log_mass(train, energy), p.log(), atol=1e-6)


def test_energy_ce_targets_the_forward_prototype_and_masks_the_own_column():
    g = torch.Generator().manual_seed(1)
    train, energy = torch.randn(3, 4, generator=g), torch.randn(3, 6, generator=g)
    y = torch.tensor([0, 5, 2])
    want = F.cross_entropy(torch.cat([train, energy], 1), y + 4)
    assert energy_ce(train, energy, y).item() == pytest.approx(want.item())
    suppress = torch.tensor([1, 3, 0])
    base = energy_ce(train, energy, y, suppress)
    bumped = train.clone()
    bumped[torch.arange(3), suppress] += 10.0  # a masked logit does not count
    assert energy_ce(bumped, energy, y, suppress).item() == pytest.approx(base.item())
    assert base.item() < energy_ce(train, energy, y).item()


def test_sample_negatives_rotates_and_lowers_the_forward_mass_without_touching_weights():
    torch.manual_seed(0)
    train_head, energy_head = torch.nn.Linear(12, 3), torch.nn.Linear(12, 5)

    def logits_fn(z):
        f = z.flatten(1)
        return train_head(f), energy_head(f)

    x = torch.randn(4, 1, 3, 4)
    rotated = sample_negatives(logits_fn, x, n_steps=0)
    assert torch.equal(rotated, x.flip(-1).flip(-2))
    z = sample_negatives(logits_fn, x, n_steps=5, lr=0.5, noise=0.0)
    assert z.shape == x.shape and not z.requires_grad
    before = forward_log_mass(*logits_fn(rotated)).sum()
    after = forward_log_mass(*logits_fn(z)).sum()
    assert after.item() < before.item()
    assert train_head.weight.grad is None and energy_head.weight.grad is None
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sample_negatives(logits_fn, x, generator=g1),
                       sample_negatives(logits_fn, x, generator=g2))
