"""FeTrIL: pairing by cosine, and pseudo-classes whose means are the stored means."""

import torch

from audiocil.losses.fetril import nearest_new_class, pseudo_features


def test_nearest_new_class_is_by_cosine_not_distance():
    old = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    new = torch.tensor([[10.0, 0.5], [0.1, 0.2], [-1.0, 0.0]])  # new[1] is near in L2 only
    assert nearest_new_class(old, new).tolist() == [0, 1, 1]


def test_each_pseudo_class_mean_is_the_stored_mean():
    g = torch.Generator().manual_seed(0)
    new_feats = [torch.randn(30, 8, generator=g, dtype=torch.float64) + 3 * k for k in range(3)]
    new_means = torch.stack([f.mean(0) for f in new_feats])
    old_means = torch.randn(5, 8, generator=g, dtype=torch.float64)
    pairs = nearest_new_class(old_means, new_means)
    for c, n in enumerate(pairs.tolist()):
        pseudo = pseudo_features(new_feats[n], new_means[n], old_means[c])
        assert pseudo.shape == new_feats[n].shape
        assert torch.allclose(pseudo.mean(0), old_means[c], atol=1e-12, rtol=0)
        # the translation keeps the new class's spread around its mean
        assert torch.allclose(pseudo - old_means[c], new_feats[n] - new_means[n])
