import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiocil.data.memory import ExemplarMemory, FeatureBank, herding_select, herding_select_classes
from audiocil.heads.functional import class_mean


def reference_herding(features: torch.Tensor, m: int) -> list[int]:
    """iCaRL's herding, one class, one candidate at a time (the loop the batched one replaces)."""
    feats = F.normalize(features.double(), dim=1)
    mu = feats.mean(dim=0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    for k in range(1, min(m, len(feats)) + 1):
        best, best_d = -1, float("inf")
        for i in range(len(feats)):
            if i in chosen:
                continue
            d = float(((mu - (running + feats[i]) / k) ** 2).sum())
            if d < best_d:  # strict: the first of equal distances wins
                best, best_d = i, d
        chosen.append(best)
        running += feats[best]
    return chosen


def random_classes(seed: int) -> list[torch.Tensor]:
    """Classes of random sizes (0, 1, ...) with duplicated rows, scaled copies (equal once
    normalised) and a class of identical rows: ties everywhere."""
    g = torch.Generator().manual_seed(seed)
    dim = int(torch.randint(2, 40, (1,), generator=g))
    out = []
    for n in (0, 1, 2, 7, 13, 30):
        f = torch.randn(n, dim, generator=g)
        if n >= 7:
            f[3] = f[1]                # a duplicate
            f[5] = 2.5 * f[2]          # the same direction
            f[n - 1] = f[0]
        out.append(f)
    out.append(torch.randn(1, dim, generator=g).repeat(9, 1))  # nothing but ties
    order = torch.randperm(len(out), generator=g).tolist()
    return [out[i] for i in order]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("m", [0, 1, 4, 12, 50])
def test_batched_herding_picks_what_one_class_at_a_time_picks(seed, m):
    classes = random_classes(seed)
    counts = [len(f) for f in classes]
    want = [reference_herding(f, m) for f in classes]
    for block in (None, 1, 3, len(classes)):  # the CPU's default blocks, and all at once
        got = herding_select_classes(torch.cat(classes), counts, m, block=block)
        assert got.dtype == torch.long and got.shape == (len(classes), min(m, max(counts)))
        for row, w in zip(got.tolist(), want, strict=True):
            assert row[:len(w)] == w
            assert all(i == -1 for i in row[len(w):])
    for f, w in zip(classes, want, strict=True):
        assert herding_select(f, m) == w


def test_batched_herding_on_realistic_sizes_and_float32_inputs():
    torch.manual_seed(3)
    counts = [40, 37, 40, 1, 25]
    feats = torch.randn(sum(counts), 64)  # float32, as embeddings come
    feats[10] = feats[11]
    got = herding_select_classes(feats, counts, 20)
    a = 0
    for row, n in zip(got.tolist(), counts, strict=True):
        want = reference_herding(feats[a:a + n], 20)
        assert row[:len(want)] == want
        a += n
    with pytest.raises(ValueError, match="counts sum"):
        herding_select_classes(feats, [1, 2], 3)


def test_feature_bank_embeds_each_clip_once_and_gives_class_means_figures():
    torch.manual_seed(0)
    table = torch.randn(100, 6)
    calls: list[list[int]] = []

    def embed(idx):
        calls.append(idx.tolist())
        return table[torch.from_numpy(idx)]

    bank = FeatureBank(embed)
    assert torch.equal(bank(np.array([7, 3, 3, 50])), table[[7, 3, 3, 50]])
    assert torch.equal(bank(np.array([50, 8, 3])), table[[50, 8, 3]])
    assert calls == [[3, 7, 50], [8]] and bank.computed == 4
    groups = {0: np.array([3, 7, 9]), 2: np.array([60, 8]), 3: np.array([], dtype=np.int64)}
    means = bank.class_means(groups, 4, 6)
    assert calls[-1] == [9, 60]  # only the clips it did not hold, in one call
    assert means.shape == (4, 6)
    assert torch.equal(means[0], class_mean(table[[3, 7, 9]]))
    assert torch.equal(means[2], class_mean(table[[60, 8]]))
    assert torch.equal(means[1], torch.zeros(6)) and torch.equal(means[3], torch.zeros(6))
    assert torch.equal(FeatureBank(embed).class_means({}, 3, 6), torch.zeros(3, 6))


def test_memory_herding_embeds_every_new_class_in_one_call():
    torch.manual_seed(1)
    table = torch.randn(90, 5)
    calls = []
    mem = ExemplarMemory(size=12, selection="herding")
    mem.update({1: np.arange(30, 60), 0: np.arange(0, 30), 2: np.arange(60, 90)},
               lambda idx: calls.append(idx) or table[torch.from_numpy(idx)], n_classes=3)
    assert len(calls) == 1 and calls[0].tolist() == list(range(90))
    for c in range(3):
        want = reference_herding(table[30 * c:30 * c + 30], 4)
        assert mem.exemplars[c].tolist() == [30 * c + i for i in want]


def test_herding_picks_the_mean_first_and_is_deterministic():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071], [1.0, 0.1]])
    order = herding_select(feats, 4)
    assert order[0] == 2  # closest to the class mean direction
    assert sorted(order) == [0, 1, 2, 3]
    assert herding_select(feats, 2) == order[:2]


def test_memory_budget_is_shared_and_shrinks():
    mem = ExemplarMemory(size=20, selection="random", seed=0)
    embed = lambda idx: torch.randn(len(idx), 4)  # noqa: E731 (not used by random)
    mem.update({0: np.arange(0, 30), 1: np.arange(30, 60)}, embed, n_classes=2)
    assert len(mem) == 20 and len(mem.exemplars[0]) == 10
    kept0 = mem.exemplars[0].copy()
    mem.update({2: np.arange(60, 90), 3: np.arange(90, 120)}, embed, n_classes=4)
    assert len(mem) == 20 and all(len(v) == 5 for v in mem.exemplars.values())
    assert mem.exemplars[0].tolist() == kept0[:5].tolist()  # shrinking keeps the best first
    assert set(mem.exemplars[3]) <= set(range(90, 120))
    assert mem.nbytes(sample_nbytes=100) == {"index_bytes": 160, "data_bytes": 2000}


def test_memory_fixed_per_class_and_herding():
    torch.manual_seed(0)
    feats = torch.randn(50, 8)
    mem = ExemplarMemory(size=None, per_class=3, selection="herding")
    mem.update({5: np.arange(100, 150)}, lambda idx: feats[idx - 100], n_classes=1)
    assert mem.exemplars[5].tolist() == (np.array(herding_select(feats, 3)) + 100).tolist()
    state = mem.state_dict()
    other = ExemplarMemory(size=None, per_class=3)
    other.load_state_dict(state)
    assert other.indices().tolist() == mem.indices().tolist()


def test_memory_config_errors():
    with pytest.raises(ValueError, match="exactly one"):
        ExemplarMemory(size=10, per_class=2)
    with pytest.raises(ValueError, match="herding"):
        ExemplarMemory(size=10, selection="best")
