"""Analytic learning: the recursive ridge equals the joint ridge in any batching and order;
DS-AL with C = 0 is ACIL's ridge on relu(buffer); its compensation targets are cleansed."""

import pytest
import torch

from audiocil.solvers.ridge import DualStreamRidge, RandomBuffer, RecursiveRidge


def joint_ridge(X: torch.Tensor, Y: torch.Tensor, gamma: float) -> torch.Tensor:
    A = X.T @ X + gamma * torch.eye(X.shape[1], dtype=X.dtype)
    return torch.linalg.solve(A, X.T @ Y)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def tasks(seed: int = 0, dim: int = 24, sizes=(4, 3, 3), n_per_class: int = 15):
    """Gaussian class clusters, task by task: a list of (X (N, dim), labels (N,))."""
    g = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(sum(sizes), dim, generator=g, dtype=torch.float64)
    out, first = [], 0
    for size in sizes:
        y = torch.arange(first, first + size).repeat_interleave(n_per_class)
        out.append((means[y] + torch.randn(len(y), dim, generator=g, dtype=torch.float64), y))
        first += size
    return out


def one_hot(y: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, n).double()


def test_random_buffer_is_seeded_float64_and_bounded():
    a, b = RandomBuffer(16, 64, seed=3), RandomBuffer(16, 64, seed=3)
    assert torch.equal(a.weight, b.weight) and a.weight.dtype == torch.float64
    assert a.weight.abs().max() <= 1 / 4 and a.weight.abs().max() > 0.2  # U(+-1/sqrt(16))
    assert not torch.equal(a.weight, RandomBuffer(16, 64, seed=4).weight)
    x = torch.randn(5, 16)
    assert a(x).dtype == torch.float64 and (a(x) >= 0).all()
    z = RandomBuffer(16, 64, activation=None, seed=3)(x)
    assert torch.allclose(torch.relu(z), a(x)) and (z < 0).any()


@pytest.mark.parametrize("batch", [7, 20, 1000])
@pytest.mark.parametrize("shuffle", [False, True])
def test_recursive_ridge_equals_joint_ridge_in_any_batching_and_order(batch, shuffle):
    data = tasks()
    buf = RandomBuffer(24, 40, seed=0)
    ridge, gamma = RecursiveRidge(40, gamma=0.1), 0.1
    seen_X, seen_y = [], []
    for t, (X, y) in enumerate(data):
        Xb = buf(X)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(t)) if shuffle \
            else torch.arange(len(y))
        n_classes = int(y.max()) + 1  # classes seen so far: W grows each task
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            ridge.update(Xb[idx], one_hot(y[idx], n_classes))
        seen_X.append(Xb)
        seen_y.append(y)
        Xall, yall = torch.cat(seen_X), torch.cat(seen_y)
        want = joint_ridge(Xall, one_hot(yall, n_classes), gamma)
        assert ridge.W.shape == want.shape
        assert rel_err(ridge.W, want) < 1e-8
        inv = torch.linalg.inv(Xall.T @ Xall + gamma * torch.eye(40, dtype=torch.float64))
        assert rel_err(ridge.R, inv) < 1e-8
    assert (ridge.predict(buf(data[0][0])).argmax(1) == data[0][1]).float().mean() > 0.9


def test_recursive_ridge_is_order_free_across_tasks_too():
    data = tasks(seed=3)
    X, y = torch.cat([X for X, _ in data]), torch.cat([y for _, y in data])
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    ridge = RecursiveRidge(24, gamma=0.5)
    for i in range(0, len(y), 9):  # classes of all tasks mixed, later ones first at times
        idx = perm[i:i + 9]
        ridge.update(X[idx], one_hot(y[idx], int(y[idx].max()) + 1))
    assert rel_err(ridge.W, joint_ridge(X, one_hot(y, 10), 0.5)) < 1e-8


def test_narrow_targets_are_zero_padded_and_state_dict_round_trips():
    (X, y), = tasks(sizes=(5,))
    ridge = RecursiveRidge(24, gamma=1.0)
    ridge.update(X[:40], one_hot(y[:40], 5))
    ridge.update(X[40:], one_hot(y[40:], 5)[:, :3])  # 3 columns: the last 2 are zeros
    want = torch.cat([one_hot(y[:40], 5), torch.nn.functional.pad(one_hot(y[40:], 5)[:, :3], (0, 2))])
    assert rel_err(ridge.W, joint_ridge(X, want, 1.0)) < 1e-10
    fresh = RecursiveRidge(24, gamma=1.0)
    fresh.load_state_dict(ridge.state_dict())
    assert torch.equal(fresh.W, ridge.W) and torch.equal(fresh.R, ridge.R)


def test_dsal_with_c_zero_equals_joint_ridge_on_relu_buffer():
    data = tasks(seed=1)
    buf = RandomBuffer(24, 40, activation=None, seed=1)
    dsal = DualStreamRidge(40, gamma_main=0.1, gamma_comp=0.1, compensation_ratio=0.0)
    known = 0
    for X, y in data:
        n = int(y.max()) + 1
        for i in range(0, len(y), 16):
            dsal.update(buf(X[i:i + 16]), one_hot(y[i:i + 16], n), known)
        known = n
    Xall, yall = torch.cat([X for X, _ in data]), torch.cat([y for _, y in data])
    want = joint_ridge(torch.relu(buf(Xall)), one_hot(yall, known), 0.1)
    assert rel_err(dsal.main.W, want) < 1e-8
    assert torch.allclose(dsal(buf(Xall)), torch.relu(buf(Xall)) @ want, atol=1e-8)


def test_dsal_compensation_targets_are_cleansed_and_fitted():
    data = tasks(seed=2)
    buf = RandomBuffer(24, 40, activation=None, seed=2)
    dsal = DualStreamRidge(40, compensation_ratio=0.6)
    (X0, y0), (X1, y1) = data[0], data[1]
    dsal.update(buf(X0), one_hot(y0, 4), known=0)
    # task 0 alone: the compensation stream is the ridge fit of tanh(Xb) to the residual
    res = one_hot(y0, 4) - dsal.main.predict(torch.relu(buf(X0)))
    assert rel_err(dsal.comp.W, joint_ridge(torch.tanh(buf(X0)), res, 0.1)) < 1e-8
    dsal.update(buf(X1), one_hot(y1, 7), known=4)
    targets = dsal.compensation_targets(buf(X1), one_hot(y1, 7), known=4)
    assert targets.shape == (len(y1), 7)
    assert not targets[:, :4].any() and targets[:, 4:].abs().sum() > 0
    logits = dsal(buf(X1))
    want = dsal.main.predict(torch.relu(buf(X1))) + 0.6 * dsal.comp.predict(torch.tanh(buf(X1)))
    assert torch.allclose(logits, want)


def test_dsal_state_dict_round_trips_into_a_fresh_model():
    (X, y), = tasks(seed=4, sizes=(3,))
    buf = RandomBuffer(24, 40, activation=None, seed=4)
    dsal = DualStreamRidge(40)
    dsal.update(buf(X), one_hot(y, 3), known=0)
    fresh = DualStreamRidge(40)
    fresh.load_state_dict(dsal.state_dict())
    assert torch.equal(fresh(buf(X)), dsal(buf(X)))
