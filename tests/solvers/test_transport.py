"""COIL's transport: the plan's marginals hold for |new| != |old|, and the transported rows'
mean norm equals the old rows'."""

import pytest
import torch

from audiocil.solvers.transport import sinkhorn_plan, transport_weights


def _means(n: int, seed: int, d: int = 16) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("n_src", "n_tgt"), [(10, 10), (10, 4), (3, 8)])
def test_plan_marginals_and_shape(n_src, n_tgt):
    plan = sinkhorn_plan(_means(n_src, 0), _means(n_tgt, 1), reg=0.464)
    assert plan.shape == (n_src, n_tgt) and plan.dtype == torch.float64
    assert (plan >= 0).all()
    assert torch.allclose(plan.sum(1), torch.full((n_src,), 1 / n_src, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(plan.sum(0), torch.full((n_tgt,), 1 / n_tgt, dtype=torch.float64), atol=1e-6)


def test_plan_moves_mass_to_the_nearest_class_when_reg_is_small():
    src = _means(4, 2)
    tgt = src[[2, 0, 3, 1]] + 0.01 * _means(4, 3)  # a permutation of the sources
    plan = sinkhorn_plan(src, tgt, reg=0.02)
    assert plan.argmax(dim=1).tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize(("n_old", "n_new"), [(10, 10), (10, 5), (4, 9)])
def test_transported_rows_keep_the_old_mean_norm(n_old, n_new):
    plan = sinkhorn_plan(_means(n_old, 4), _means(n_new, 5))
    w_old = 3 * _means(n_old, 6)
    rows, gamma = transport_weights(plan, w_old)
    assert rows.shape == (n_new, 16) and rows.dtype == w_old.dtype
    assert rows.norm(dim=1).mean().item() == pytest.approx(w_old.norm(dim=1).mean().item(), rel=1e-6)
    assert gamma > 0
    rows2, _ = transport_weights(plan, w_old, target_norm=2.0)
    assert rows2.norm(dim=1).mean().item() == pytest.approx(2.0, rel=1e-6)
    assert torch.allclose(rows2 / rows2.norm(dim=1, keepdim=True), rows / rows.norm(dim=1, keepdim=True),
                          atol=1e-6)


def test_barycentric_rows_for_a_permutation_plan():
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    plan = torch.tensor([[0.0, 0.5], [0.5, 0.0]], dtype=torch.float64)
    rows, gamma = transport_weights(plan, w, normalize_rows=False)
    # the columns swap the classes; the mean norm (1.5) is already the source's
    assert torch.allclose(rows, torch.tensor([[0.0, 2.0], [1.0, 0.0]], dtype=torch.float64))
    assert gamma == pytest.approx(1.0)


def test_the_reference_masses_cannot_be_met_when_the_sizes_differ():
    # PyCIL gives the 4 target classes mass 1/10 each (total 0.4 against 1): no plan has
    # both marginals; Sinkhorn's scalings blow up and POT returns an iterate whose columns
    # do not carry the masses asked for. Hence sinkhorn_plan's 1/|target|.
    import ot

    src, tgt = _means(10, 7), _means(4, 8)
    cost = ot.dist(src.double(), tgt.double(), metric="minkowski", p=3)
    a, b = (torch.full((n,), 0.1, dtype=torch.float64) for n in (10, 4))
    with pytest.warns(UserWarning, match="numerical errors"):
        plan = ot.sinkhorn(a, b, cost, 0.464, warn=False)
    assert not torch.allclose(plan.sum(0), b, atol=1e-3)
