"""GEM's projection: the constraints hold, v >= margin, and it agrees with a brute-force
solution of the primal (enumeration of active sets), singular Gram matrices included."""

import itertools

import numpy as np
import pytest
import torch

from audiocil.solvers.gem import project_gradient


def brute_force(g: np.ndarray, G: np.ndarray) -> np.ndarray:
    """argmin_z ||z - g|| s.t. G z >= 0: the optimum is the projection of g onto the
    subspace {G_S z = 0} of its active set S, so take the closest feasible such projection."""
    best, best_d = None, np.inf
    for r in range(G.shape[0] + 1):
        for S in itertools.combinations(range(G.shape[0]), r):
            Gs = G[list(S)]
            z = g - Gs.T @ (np.linalg.pinv(Gs @ Gs.T) @ (Gs @ g)) if S else g.copy()
            if (G @ z >= -1e-9).all() and np.linalg.norm(z - g) < best_d:
                best, best_d = z, np.linalg.norm(z - g)
    return best


def check(g: torch.Tensor, G: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    g_tilde, v = project_gradient(g, G, margin)
    assert (G.double() @ g_tilde.double() >= -1e-9).all()
    if (G @ g >= 0).all():  # nothing violated: g is returned, whatever the margin
        assert g_tilde is g and not v.any()
        return g_tilde
    assert (v >= margin - 1e-12).all()
    assert torch.allclose(g_tilde.double(), g.double() + G.double().T @ v, atol=1e-10)
    # the projection of g' = g + margin * sum_k g_k onto the cone {z : G z >= 0}
    g_shift = (g.double() + margin * G.double().sum(0)).numpy()
    want = brute_force(g_shift, G.double().numpy())
    np.testing.assert_allclose(g_tilde.double().numpy(), want, atol=1e-8)
    return g_tilde


def test_no_violation_returns_g_itself_and_zero_duals():
    g = torch.tensor([1.0, 2.0, 0.0])
    G = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 5.0]])
    g_tilde, v = project_gradient(g, G, margin=0.5)
    assert g_tilde is g and torch.equal(v, torch.zeros(2, dtype=torch.float64))


def test_single_violated_constraint_is_the_half_space_projection():
    g = torch.tensor([1.0, -1.0], dtype=torch.float64)
    G = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    g_tilde, v = project_gradient(g, G)
    assert torch.allclose(g_tilde, torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert v.tolist() == pytest.approx([1.0])


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_random_cases_agree_with_brute_force(seed, margin):
    rng = np.random.default_rng(seed)
    K, P = int(rng.integers(1, 6)), int(rng.integers(2, 8))
    G = torch.from_numpy(rng.standard_normal((K, P)))
    g = torch.from_numpy(rng.standard_normal(P))
    check(g, G, margin)


@pytest.mark.parametrize("case", ["identical", "opposite", "more_tasks_than_dims",
                                  "zero_gradient", "collinear_scaled"])
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_singular_gram_matrices(case, margin):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(4), rng.standard_normal(4)
    G = {"identical": [a, a, b],
         "opposite": [a, -a, b],
         "more_tasks_than_dims": list(rng.standard_normal((7, 4))),
         "zero_gradient": [a, np.zeros(4)],
         "collinear_scaled": [a, 3 * a, a + b, 2 * (a + b)]}[case]
    G = torch.from_numpy(np.stack(G))
    g = -torch.from_numpy(a + 0.3 * b)  # violates the constraint of a
    assert (G @ g < 0).any()
    assert np.linalg.matrix_rank((G @ G.T).numpy()) < G.shape[0]
    g_tilde = check(g, G, margin)
    if case == "opposite":  # the cone is the hyperplane a.z = 0 (intersected with b.z >= 0)
        assert abs(float(torch.from_numpy(a) @ g_tilde)) < 1e-9


def test_float32_input_keeps_its_dtype_and_a_large_p():
    gen = torch.Generator().manual_seed(0)
    G = torch.randn(5, 200_000, generator=gen)
    g = -G[0] + 0.1 * torch.randn(200_000, generator=gen)
    g_tilde, v = project_gradient(g, G)
    assert g_tilde.dtype == torch.float32 and v.dtype == torch.float64
    dots = G.double() @ g_tilde.double()
    assert (dots >= -1e-3 * G.norm(dim=1).double() * g_tilde.norm().double()).all()


def test_bad_shapes_and_margin():
    with pytest.raises(ValueError):
        project_gradient(torch.zeros(3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        project_gradient(torch.zeros(3), torch.zeros(2, 3), margin=-1.0)
