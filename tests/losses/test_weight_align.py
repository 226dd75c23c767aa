"""Weight aligning: after aligning, the new rows' mean norm equals the old rows'."""

import pytest
import torch

from audiocil.losses.weight_align import clip_nonnegative_, weight_align


@pytest.mark.parametrize(("n_old", "n_new"), [(10, 10), (30, 5), (2, 7)])
def test_new_and_old_mean_row_norms_are_equal_after_aligning(n_old, n_new):
    g = torch.Generator().manual_seed(n_old)
    w = torch.cat([torch.randn(n_old, 16, generator=g), 4 * torch.randn(n_new, 16, generator=g)])
    before = w.clone()
    gamma = weight_align(w, n_new)
    norms = w.norm(dim=1)
    assert norms[n_old:].mean().item() == pytest.approx(norms[:n_old].mean().item(), rel=1e-6)
    assert torch.equal(w[:n_old], before[:n_old])
    assert torch.allclose(w[n_old:], gamma * before[n_old:])
    assert gamma < 1  # the new rows were 4x longer


def test_nothing_to_align():
    w = torch.randn(4, 3)
    before = w.clone()
    assert weight_align(w, 0) == 1.0 and weight_align(w, 4) == 1.0
    assert torch.equal(w, before)


def test_der_still_exports_it():
    from audiocil.methods.der import weight_align as from_der

    assert from_der is weight_align


def test_clip_nonnegative_in_place():
    w = torch.tensor([[-1.0, 2.0], [0.5, -0.1]])
    assert clip_nonnegative_(w) is w
    assert w.tolist() == [[0.0, 2.0], [0.5, 0.0]]
