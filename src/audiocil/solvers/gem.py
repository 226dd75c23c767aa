"""GEM's gradient projection (Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
Learning", NeurIPS 2017, Sec. 3, Eq. 10-11).

Given the current gradient g (P,) and one gradient per earlier task, the rows of G (K, P),
GEM looks for the update closest to g that does not increase any old task's loss to first
order:

    primal:  min_z 1/2 ||z - g||^2   s.t.  G z >= 0
    dual:    min_v 1/2 v^T (G G^T) v + (G g)^T v   s.t.  v >= margin,   z = g + G^T v

(the Lagrangian ``1/2||z-g||^2 - v^T G z`` is stationary at z = g + G^T v). The margin is
the one of the authors' code: a lower bound gamma on v (the paper adds "a small constant
gamma >= 0 to v*"; gamma = 0.5 in their runs, 0 in PyCIL). With v = gamma + u the dual
becomes the margin-free dual for g' = g + gamma * sum_k g_k, so the result is the projection
of g' onto the cone {z : G z >= 0}: G z >= 0 holds for any margin. A margin in the primal
(G z >= m) is not used, because it can be infeasible, e.g. for two opposite old gradients.

The dual is solved exactly as a non-negative least-squares problem:
``1/2 v^T M v + q^T v = 1/2 ||L v + c||^2 + const``, with M = G G^T = L^T L taken from the
positive part of M's eigendecomposition (rank r <= K, so L is (r, K)) and c = L^{+T} q. This
is exact because q = G g' lies in range(M). scipy's Lawson-Hanson ``nnls`` needs no positive
definite matrix. quadprog, which the reference calls, rejects a singular M (identical or
opposite old gradients, K > P, an all-zero gradient), and the authors' code adds eps*I to
avoid that, which perturbs the solution. Only the (K, K) Gram matrix is formed, so a
gradient with P ~ 1e7 entries costs one pass. All the work is in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls


def _nonnegative_dual(gram: np.ndarray, q: np.ndarray) -> np.ndarray:
    """argmin_{u >= 0} 1/2 u^T gram u + q^T u, for PSD ``gram`` (K, K) and q in its range."""
    lam, vecs = np.linalg.eigh(gram)
    keep = lam > max(float(lam[-1]), 0.0) * gram.shape[0] * np.finfo(np.float64).eps
    root = np.sqrt(lam[keep])
    L = root[:, None] * vecs[:, keep].T  # (r, K), L^T L = gram on its range
    c = (vecs[:, keep].T @ q) / root  # L^T c = q
    u, _ = nnls(L, -c, maxiter=50 * gram.shape[0] + 100)
    return u


@torch.no_grad()
def project_gradient(g: torch.Tensor, G: torch.Tensor,
                     margin: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Project the current gradient so that no old task's loss increases (GEM).

    Args:
        g: (P,) gradient of the current batch's loss, flattened over the parameters.
        G: (K, P) one flattened gradient per old task (its memory's loss), K >= 1.
        margin: gamma >= 0, the lower bound on the dual variables once a constraint is
            violated (the authors' code; 0 in PyCIL, 0.5 in the paper's runs).

    Returns:
        ``(g_tilde, v)``. g_tilde (P,) has g's dtype and device and satisfies
        ``G @ g_tilde >= 0`` up to float error. v (K,) is float64 with ``v >= margin`` and
        ``g_tilde = g + G^T v``. If no constraint is violated (``G @ g >= 0``), g_tilde is g
        itself, unchanged, and v is 0 (as in the paper's and the reference's code).
    """
    if g.dim() != 1 or G.dim() != 2 or G.shape[1] != g.shape[0]:
        raise ValueError(f"project_gradient: g {tuple(g.shape)} and G {tuple(G.shape)}; "
                         "need (P,) and (K, P)")
    if margin < 0:
        raise ValueError(f"project_gradient: margin must be >= 0, got {margin}")
    g64, G64 = g.double(), G.double()
    q = (G64 @ g64).cpu().numpy()
    k = G.shape[0]
    if k == 0 or (q >= 0).all():
        return g, torch.zeros(k, dtype=torch.float64, device=g.device)
    gram = (G64 @ G64.T).cpu().numpy()
    gram = 0.5 * (gram + gram.T)
    u = _nonnegative_dual(gram, q + margin * gram.sum(axis=1))  # q' = G (g + margin G^T 1)
    v = torch.from_numpy(u + margin).to(g.device)
    g_tilde = g64 + G64.T @ v
    return g_tilde.to(g.dtype), v
