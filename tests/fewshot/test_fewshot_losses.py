"""The few-shot methods' pure pieces."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiocil.losses.fewshot import (
    SelfAttention,
    calibrate_covariance,
    class_covariances,
    class_means,
    compression_penalty,
    cosface_loss,
    cosine_logits,
    gate,
    gaussian_factors,
    sample_gaussian,
    soft_distillation,
    stochastic_weights,
)
from audiocil.methods.pan import pqa_logits


def test_cosine_logits_and_cosface():
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    cos = cosine_logits(x, w)
    assert torch.allclose(cos, F.cosine_similarity(x[:, None], w[None], dim=-1), atol=1e-6)
    assert torch.allclose(cosine_logits(x, w.expand(4, 3, 8)), cos, atol=1e-6)
    y = torch.tensor([0, 1, 2, 0])
    assert torch.isclose(cosface_loss(cos, y, 10.0, 0.0), F.cross_entropy(10 * cos, y))
    # a positive margin makes the loss larger, a negative one smaller
    assert cosface_loss(cos, y, 10.0, 0.3) > cosface_loss(cos, y, 10.0, 0.0) > cosface_loss(cos, y, 10.0, -0.3)
    by_hand = -torch.log_softmax(10 * (cos - 0.3 * F.one_hot(y, 3)), 1)[range(4), y].mean()
    assert torch.isclose(cosface_loss(cos, y, 10.0, 0.3), by_hand)


def test_stochastic_weights():
    mu, sigma = torch.randn(3, 5), torch.zeros(3, 5)
    assert torch.equal(stochastic_weights(mu, sigma, 4.0, stochastic=False), mu)
    torch.manual_seed(0)
    w = torch.stack([stochastic_weights(mu, sigma, 4.0, True) for _ in range(4000)])
    assert torch.allclose(w.mean(0), mu, atol=3e-3)
    assert torch.allclose(w.std(0), F.softplus(torch.tensor(-4.0)).expand(3, 5), rtol=0.1)


def test_soft_distillation_is_smallest_when_the_student_agrees():
    t = torch.randn(5, 3)
    same = soft_distillation(torch.cat([t, torch.randn(5, 2)], 1), t, T=0.5)
    other = soft_distillation(torch.cat([-t, torch.randn(5, 2)], 1), t, T=0.5)
    entropy = -(F.softmax(t / 0.5, 1) * F.log_softmax(t / 0.5, 1)).sum(1).mean()
    assert torch.isclose(same, entropy) and other > same


def test_gate_and_compression():
    a = torch.tensor([[1.0, -1.0], [3.0, -3.0]])
    assert torch.allclose(gate(a, 1.0), torch.sigmoid(torch.tensor([2.0, -2.0])))
    assert gate(a, 50.0)[0] > 0.999 and gate(a, 50.0)[1] < 1e-3  # sharper with beta
    assert compression_penalty(torch.tensor([1.0, 0.0, 0.0, 0.0]), 0.1) == 0.15
    assert compression_penalty(torch.tensor([0.1, 0.0, 0.0, 0.0]), 0.1) == 0.0


def test_class_statistics_and_gaussian_replay():
    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    L = torch.linalg.cholesky(cov)
    feats = torch.cat([torch.randn(20000, 2, generator=g) @ L.t() + torch.tensor([1.0, -1.0]),
                       torch.randn(10, 2, generator=g)])
    labels = torch.cat([torch.zeros(20000), torch.ones(10)]).long()
    means, covs = class_means(feats, labels, [0, 1]), class_covariances(feats, labels, [0, 1])
    assert torch.allclose(means[0], torch.tensor([1.0, -1.0]), atol=0.05)
    assert torch.allclose(covs[0], cov, atol=0.08)
    x, rows = sample_gaussian(means, gaussian_factors(covs), 20000, g)
    assert x.shape == (40000, 2) and rows.tolist()[:1] == [0] and rows.tolist()[-1] == 1
    assert torch.allclose(torch.cov(x[rows == 0].t()), cov, atol=0.1)
    single = class_covariances(torch.randn(1, 3), torch.zeros(1).long(), [0])
    assert torch.equal(single, torch.zeros(1, 3, 3))
    mixed = calibrate_covariance(torch.eye(2), torch.stack([2 * torch.eye(2), 4 * torch.eye(2)]),
                                 torch.tensor([0.25, 0.25, 0.5]))
    assert torch.allclose(mixed, 2.0 * torch.eye(2))


def test_self_attention_and_prototype_query_attention():
    att = SelfAttention(8, dropout=0.5).eval()
    x = torch.randn(2, 5, 8)
    assert att(x).shape == (2, 5, 8)
    protos, query = torch.randn(4, 8), torch.randn(3, 8)
    logits = pqa_logits(att, query, protos, 16.0)
    assert logits.shape == (3, 4) and logits.abs().max() <= 16.0 + 1e-4
    perm = torch.tensor([2, 0, 3, 1])  # permuting the prototypes permutes the logits
    assert torch.allclose(pqa_logits(att, query, protos[perm], 16.0), logits[:, perm], atol=1e-5)
    # each query is treated on its own
    assert torch.allclose(pqa_logits(att, query[:1], protos, 16.0), logits[:1], atol=1e-5)
