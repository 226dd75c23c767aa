"""CosineHead: UCIR / COIL cosine classifier and PODNet's LSC with k proxies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiocil.heads import CosineHead


def grown(k: int = 3, sizes=(4, 2, 3), **kw) -> CosineHead:
    torch.manual_seed(0)
    head = CosineHead(16, proxies=k, **kw)
    for n in sizes:
        head.grow(n)
    return head


def test_shapes_and_chunks():
    head = grown(k=3)
    x = torch.randn(5, 16)
    assert head(x).shape == head.cosines(x).shape == (5, 9)
    assert head.proxy_cosines(x).shape == (5, 9, 3)
    assert head.num_classes == 9 and head.chunk_sizes == [4, 2, 3]
    assert [tuple(w.shape) for w in head.weights] == [(12, 16), (6, 16), (9, 16)]
    assert CosineHead(16, num_classes=4).chunk_sizes == [4]
    assert CosineHead(16)(x).shape == (5, 0)


def test_proxy_cosines_and_lsc_against_brute_force():
    head = grown(k=3, sizes=(2, 1))
    x = torch.randn(4, 16)
    w = torch.cat(list(head.weights)).view(3, 3, 16)  # (C, k, D)
    want_s = torch.stack([torch.stack([F.cosine_similarity(x, w[c, j][None].expand(4, -1))
                                       for j in range(3)], -1) for c in range(3)], 1)
    s = head.proxy_cosines(x)
    assert torch.allclose(s, want_s, atol=1e-6)
    lsc = (torch.exp(want_s) / torch.exp(want_s).sum(-1, keepdim=True) * want_s).sum(-1)
    assert torch.allclose(head.cosines(x), lsc, atol=1e-6)


@pytest.mark.parametrize("merge", ["softmax", "max", "mean"])
def test_merge_lies_between_the_proxy_cosines(merge):
    head = grown(k=4, merge=merge)
    x = torch.randn(32, 16)
    s, m = head.proxy_cosines(x), head.cosines(x)
    assert (m >= s.amin(-1) - 1e-6).all() and (m <= s.amax(-1) + 1e-6).all()
    if merge == "softmax":  # a softmax weighting leans to the larger cosines: above the mean
        assert (m >= s.mean(-1) - 1e-6).all()
        assert not torch.allclose(m, s.amax(-1))


def test_one_proxy_is_the_plain_cosine_and_identical_proxies_merge_to_it():
    x = torch.randn(6, 16)
    one = grown(k=1)
    w = torch.cat(list(one.weights))
    want = F.normalize(x, dim=1) @ F.normalize(w, dim=1).t()
    assert torch.allclose(one.cosines(x), want, atol=1e-6)
    many = CosineHead(16, proxies=5, num_classes=w.shape[0])
    many.init_rows(w[:, None].expand(-1, 5, -1))
    assert torch.allclose(many.cosines(x), one.cosines(x), atol=1e-6)


def test_logits_are_bounded_by_the_scale_and_reach_it():
    head = grown(k=2, scale_init=16.0)
    x = torch.randn(64, 16) * 10
    assert head(x).abs().max() <= 16.0 + 1e-4
    assert torch.allclose(head(x), 16.0 * head.cosines(x))
    rows = torch.randn(3, 2, 16)  # the newest chunk: classes 6, 7, 8
    rows[1, 1] = 3 * rows[1, 0]  # both proxies of class 7 point the same way
    head.init_rows(rows)
    f = 2 * rows[1, 0][None]  # a feature along them scores sigma there (norms do not count)
    assert head(f)[0, 7].item() == pytest.approx(16.0, abs=1e-4)


def test_growth_keeps_old_logits_and_old_parameter_objects():
    head = grown(k=3, sizes=(4,))
    x = torch.randn(5, 16)
    before, first = head(x), head.weights[0]
    head.grow(2)
    assert head.weights[0] is first
    assert torch.allclose(head(x)[:, :4], before, atol=1e-6)


def test_old_new_and_scale_parameters_split_the_head():
    head = grown(k=2)
    old, new, scale = head.old_parameters(), head.new_parameters(), head.scale_parameters()
    assert [p is q for p, q in zip(old, list(head.weights)[:2], strict=True)] == [True, True]
    assert len(new) == 1 and new[0] is head.weights[2] and scale == [head.scale]
    ids = {id(p) for p in [*old, *new, *scale]}
    assert ids == {id(p) for p in head.parameters()} and len(ids) == 4
    assert CosineHead(16).new_parameters() == [] and CosineHead(16).old_parameters() == []


def test_an_optimiser_can_freeze_the_old_chunks():
    head = grown(k=2)
    old_before = [p.detach().clone() for p in head.old_parameters()]
    new_before = head.new_parameters()[0].detach().clone()
    opt = torch.optim.SGD([{"params": head.old_parameters(), "lr": 0.0},
                           {"params": head.new_parameters() + head.scale_parameters(), "lr": 0.5}])
    x, y = torch.randn(8, 16), torch.tensor([6, 7, 8, 0, 1, 6, 7, 8])
    F.cross_entropy(head(x), y).backward()
    assert all(p.grad is not None for p in head.parameters())  # gradient reaches every chunk
    opt.step()
    assert all(torch.equal(p, q) for p, q in zip(head.old_parameters(), old_before, strict=True))
    assert not torch.equal(head.new_parameters()[0], new_before)
    assert head.scale.item() != 1.0


def test_fixed_scale_is_a_buffer():
    head = CosineHead(16, scale_init=10.0, learn_scale=False, num_classes=3)
    assert head.scale_parameters() == [] and "scale" in head.state_dict()
    assert all(p is not head.scale for p in head.parameters())
    x = torch.randn(2, 16, requires_grad=True)
    head(x).sum().backward()
    assert x.grad is not None and head.weights[0].grad is not None
    assert torch.allclose(head(x), 10.0 * head.cosines(x))


def test_init_rows_sets_the_newest_chunk_only():
    head = grown(k=1, sizes=(3, 2))
    first = head.weights[0].detach().clone()
    means = torch.randn(2, 16)
    head.init_rows(means)
    assert torch.equal(head.weights[0], first) and torch.equal(head.weights[1], means)
    assert torch.allclose(head.cosines(means)[:, 3:].diagonal(), torch.ones(2), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(2, 1, 16\)"):
        head.init_rows(torch.randn(3, 16))
    with pytest.raises(ValueError, match="k = 3"):
        grown(k=3).init_rows(torch.randn(3, 16))
    with pytest.raises(ValueError, match="grow first"):
        CosineHead(16).init_rows(torch.randn(1, 16))


def test_bad_arguments_fail():
    with pytest.raises(ValueError, match="merge"):
        CosineHead(16, merge="sum")
    with pytest.raises(ValueError, match="proxies"):
        CosineHead(16, proxies=0)
    with pytest.raises(ValueError, match="n_new"):
        CosineHead(16).grow(0)


def test_a_grown_head_loads_into_a_fresh_one(tmp_path):
    head = grown(k=2, scale_init=4.0)
    with torch.no_grad():
        head.scale.fill_(7.0)
    torch.save(head.state_dict(), tmp_path / "head.pt")
    fresh = CosineHead(16, proxies=2)
    fresh.load_state_dict(torch.load(tmp_path / "head.pt", weights_only=True))
    x = torch.randn(3, 16)
    assert fresh.chunk_sizes == [4, 2, 3] and torch.equal(fresh(x), head(x))
    with pytest.raises(RuntimeError):  # a head with a different feature size refuses it
        CosineHead(8, proxies=2).load_state_dict(head.state_dict())


def test_growth_follows_dtype_and_device():
    head = grown(k=2, sizes=(2,)).double()
    head.grow(3)
    assert all(w.dtype == torch.float64 for w in head.weights)
    assert head(torch.randn(2, 16, dtype=torch.float64)).dtype == torch.float64
    if torch.cuda.is_available():
        head = head.cuda()
        head.grow(1)
        assert head.weights[-1].is_cuda and head(torch.randn(2, 16).double().cuda()).shape == (2, 6)
